#!/usr/bin/env node
// Resident memory of berth while large bodies stream through it.
//
// Starts an upstream sink/source in this process and berth (dist/cli.js, workers: 1, so the
// process measured is the one that serves) as a child with
// a certificate from a CA made here, then streams: a 2 GiB chunked upload, a 2 GiB
// Content-Length upload, a 2 GiB download, and a 2 GiB upload into an upstream that
// reads slowly (backpressure). berth's resident memory is sampled from /proc every 50 ms;
// its peak (VmHWM) is reported against the baseline measured in the same run: berth after
// start-up and one small request. Target: peak under 150 MB whatever the body size.
//
// Run: npm run bench                   (BENCH_GIB=1 for a shorter run)
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import selfsigned from 'selfsigned';
import { NODE_FLAGS } from './lib/nodeFlags.mjs';

const GiB = 1 << 30;
const size = Math.floor(Number(process.env.BENCH_GIB ?? 2) * GiB);
const LIMIT_MB = 150;
const label = size % GiB === 0 ? `${size / GiB} GiB` : `${Math.round(size / (1 << 20))} MiB`;
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function proc(pid, field) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)[1]) * 1024;
}
const mb = (bytes) => (bytes / 1e6).toFixed(1);

async function pki() {
  const now = Date.now();
  const ext = (ca) => ca
    ? [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }]
    : [{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true }, { name: 'extKeyUsage', serverAuth: true },
       { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }];
  const base = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: new Date(now - 60_000), notAfterDate: new Date(now + 86_400_000) };
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'bench CA' }], { ...base, extensions: ext(true) });
  const leaf = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { ...base, ca: { key: ca.private, cert: ca.cert }, extensions: ext(false) });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'));
  fs.writeFileSync(path.join(dir, 'c.crt'), leaf.cert);
  fs.writeFileSync(path.join(dir, 'c.key'), leaf.private);
  return { ca: ca.cert, cert: path.join(dir, 'c.crt'), key: path.join(dir, 'c.key'), dir };
}

// Upstream: /sink reads and discards (slowly for /slow-sink), /source sends `size` bytes.
const chunk = crypto.randomBytes(1 << 20);
const upstream = http.createServer({ requestTimeout: 0 }, (req, res) => {
  if (req.url.startsWith('/v2/source')) {
    res.writeHead(200, { 'content-length': String(size) });
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  let got = 0;
  const slow = req.url.startsWith('/v2/slow');
  req.on('data', (c) => {
    got += c.length;
    if (slow) { req.pause(); setTimeout(() => req.resume(), 1); } // a pause after every read: a disk several times slower than the client
  });
  req.on('end', () => res.writeHead(202, { 'content-type': 'text/plain' }).end(String(got)));
});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));

const { ca, cert, key, dir } = await pki();
const child = spawn(process.execPath, [...NODE_FLAGS, cli, '--upstream', `http://127.0.0.1:${upstream.address().port}`, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--cert', cert, '--key', key, '--workers', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => child.kill('SIGKILL'));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
const port = await new Promise((resolve, reject) => {
  let text = '';
  const onData = (d) => {
    text += d;
    const match = /"listen":"https:\/\/127\.0\.0\.1:(\d+)"/.exec(text);
    if (match) {
      child.stdout.off('data', onData);
      child.stdout.resume();
      resolve(Number(match[1]));
    }
  };
  child.stdout.on('data', onData);
  child.once('exit', (code) => reject(new Error(`berth exited with ${code}`)));
});

const agent = new https.Agent({ keepAlive: true, ca, servername: 'localhost' });
function request(method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const headers = { host: `localhost:${port}` };
    if (body?.length !== undefined) headers['content-length'] = String(body.length);
    const req = https.request({ host: '127.0.0.1', port, method, path: urlPath, agent, headers }, (res) => {
      let bytes = 0;
      let text = '';
      res.on('data', (c) => {
        bytes += c.length;
        if (text.length < 32) text += c.toString('latin1', 0, 32);
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes, text }));
    });
    req.on('error', reject);
    if (!body) return req.end();
    let sent = 0;
    const write = () => {
      while (sent < body.total) {
        const n = Math.min(chunk.length, body.total - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
}

await request('GET', '/v2/');
const baseline = proc(child.pid, 'VmRSS');
const rows = [];
async function measure(name, run) {
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, proc(child.pid, 'VmRSS'))), 50);
  const started = process.hrtime.bigint();
  const result = await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  peak = Math.max(peak, proc(child.pid, 'VmRSS'));
  rows.push({ name, peak, seconds, result });
}

await measure(`${label} upload, chunked`, () => request('PATCH', '/v2/bench/blobs/uploads/a', { total: size }));
await measure(`${label} upload, Content-Length`, () => request('PUT', '/v2/bench/blobs/uploads/b?digest=x', { total: size, length: size }));
await measure(`${label} download`, () => request('GET', '/v2/source/blobs/sha256:x'));
await measure(`${label} upload, slow upstream`, () => request('PATCH', '/v2/slow/blobs/uploads/c', { total: size }));
const hwm = proc(child.pid, 'VmHWM');

let failed = 0;
console.log(`berth resident memory while bodies stream through it (baseline after start-up: ${mb(baseline)} MB)`);
console.log('case'.padEnd(36), 'peak RSS MB'.padStart(12), 'peak/baseline'.padStart(14), 'MB/s'.padStart(8), '  ok');
for (const r of rows) {
  const moved = size;
  // Uploads: the upstream answers with the byte count it read; downloads: count what arrived.
  const arrived = r.name.includes('download') ? r.result.bytes : Number(r.result.text);
  const ok = r.result.status < 300 && arrived === moved;
  if (!ok) failed++;
  console.log(r.name.padEnd(36), mb(r.peak).padStart(12), (r.peak / baseline).toFixed(2).padStart(14), (moved / 1e6 / r.seconds).toFixed(0).padStart(8), ok ? '  yes' : `  no (${r.result.status})`);
}
console.log(`peak resident memory over the whole run (VmHWM): ${mb(hwm)} MB; target under ${LIMIT_MB} MB: ${hwm < LIMIT_MB * 1e6 ? 'met' : 'NOT met'}`);

agent.destroy();
child.kill('SIGTERM');
upstream.close();
fs.rmSync(dir, { recursive: true, force: true });
process.exitCode = hwm < LIMIT_MB * 1e6 && failed === 0 ? 0 : 1;
