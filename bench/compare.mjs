#!/usr/bin/env node
// berth against nginx, side by side, in front of the same fast upstream (bench/upstream.mjs).
// nginx is configured like Harbor's /v2/ location: buffering off both ways, HTTP/1.1 and
// keep-alive to the upstream, client_max_body_size 0, one worker per core. Both serve the
// same ECDSA P-256 certificate with the same TLS suites. Every measurement alternates
// between the two fronts, round after round, and the report gives medians and
// berth/nginx ratios, since this machine is shared and noisy.
//
// Reference rows: the naive undici proxy (bench/naive-undici.mjs) in one process and in as
// many as berth's workers: what Node itself can do with the least a proxy must do. For new
// connections also a floor (bench/bare-tls.mjs): Node's https server doing nothing else, in one
// process and in as many as berth's workers, measured with the handshakes only.
// Needs: curl, wrk, openssl and nginx (Debian: apt-get install curl wrk openssl nginx-light),
// Node 22.19 or later (undici 8), and a build (npm run build). Run: npm run bench:compare
// Environment: BENCH_ROUNDS (3), BENCH_SIZE_MB (2048), BENCH_SMALL_SIZE_MB (200),
// BENCH_CONCURRENCY (8), BENCH_SECONDS (10, for wrk and handshakes), BENCH_WORKERS (auto),
// BENCH_ONLY (all; a comma list of upload, download, uploadN, downloadN, uploadNSmall, small, handshakes),
// BENCH_BERTH_ALSO (none; "label=DIR,…": other berth builds, each a checkout with dist/ built,
// measured as fronts of their own, "berth@label", for a same-run A/B of two versions).
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import selfsigned from 'selfsigned';
import { scratch } from './lib/scratch.mjs';
import { NODE_FLAGS } from './lib/nodeFlags.mjs';
import { processTree } from './lib/processes.mjs';

const env = (name, fallback) => Number(process.env[name] ?? fallback);
const ROUNDS = env('BENCH_ROUNDS', 3);
const SIZE = env('BENCH_SIZE_MB', 2048) * 2 ** 20;
const SMALL_SIZE = env('BENCH_SMALL_SIZE_MB', 200) * 2 ** 20;
const CONCURRENCY = env('BENCH_CONCURRENCY', 8);
const SECONDS = env('BENCH_SECONDS', 10);
const WORKERS = process.env.BENCH_WORKERS ?? 'auto';
// BENCH_ONLY=small,handshakes runs only those measurements (minutes instead of half an hour),
// and reports and judges only their rows.
const MEASUREMENTS = ['upload', 'download', 'uploadN', 'downloadN', 'uploadNSmall', 'small', 'handshakes'];
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').map((m) => m.trim()).filter(Boolean);
for (const m of ONLY) {
  if (!MEASUREMENTS.includes(m)) {
    console.error(`bench: BENCH_ONLY: unknown measurement ${m}; known: ${MEASUREMENTS.join(', ')}`);
    process.exit(2);
  }
}
const wanted = (m) => ONLY.length === 0 || ONLY.includes(m);
const ALSO = (process.env.BENCH_BERTH_ALSO ?? '')
  .split(',')
  .map((item) => item.trim())
  .filter(Boolean)
  .map((item) => {
    const [label, dir] = item.split('=');
    const entry = dir === undefined ? undefined : path.resolve(dir, 'dist', 'cli.js');
    if (!label || entry === undefined || !fs.existsSync(entry)) {
      console.error(`bench: BENCH_BERTH_ALSO: expected label=DIR with DIR/dist/cli.js built, got "${item}"`);
      process.exit(2);
    }
    return { name: `berth@${label}`, entry };
  });
const CORES = os.availableParallelism();
const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'dist', 'cli.js');
const TICK = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim() || 100);

for (const tool of ['curl', 'wrk', 'openssl', 'nginx']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`bench: ${tool} is missing (Debian: apt-get install curl wrk openssl nginx-light)`);
    process.exit(2);
  }
}
if (!fs.existsSync(cli)) {
  console.error('bench: dist/cli.js is missing; run npm run build');
  process.exit(2);
}

const { work, children } = scratch('berth-compare-');

// ---- certificates: one CA, one ECDSA P-256 server certificate for localhost
const now = Date.now();
const base = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: new Date(now - 60_000), notAfterDate: new Date(now + 86_400_000) };
const ca = await selfsigned.generate([{ name: 'commonName', value: 'bench CA' }], {
  ...base,
  extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
});
const leaf = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
  ...base,
  ca: { key: ca.private, cert: ca.cert },
  extensions: [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] },
  ],
});
const files = { ca: path.join(work, 'ca.crt'), cert: path.join(work, 'server.crt'), key: path.join(work, 'server.key') };
fs.writeFileSync(files.ca, ca.cert);
fs.writeFileSync(files.cert, leaf.cert);
fs.writeFileSync(files.key, leaf.private, { mode: 0o600 });

// ---- bodies: sparse files, read from the page cache
const bodies = { big: path.join(work, 'big.bin'), small: path.join(work, 'small.bin') };
fs.writeFileSync(bodies.big, '');
fs.truncateSync(bodies.big, SIZE);
fs.writeFileSync(bodies.small, '');
fs.truncateSync(bodies.small, SMALL_SIZE);

// ---- processes
function firstLine(child) {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', function onData(d) {
      text += d;
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve(text.slice(0, nl));
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}

const upstream = spawn(process.execPath, [path.join(here, 'upstream.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
children.push(upstream);
const upstreamPort = JSON.parse(await firstLine(upstream)).port;

async function startBerth(name = 'berth', entry = cli) {
  const child = spawn(
    process.execPath,
    [...NODE_FLAGS, entry, '--upstream', `http://127.0.0.1:${upstreamPort}`, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--cert', files.cert, '--key', files.key, '--workers', WORKERS],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: work },
  );
  children.push(child);
  const port = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', function onData(d) {
      text += d;
      const match = /"listen":"https:\/\/127\.0\.0\.1:(\d+)"/.exec(text);
      if (match) {
        child.stdout.off('data', onData);
        child.stdout.resume(); // access lines are written and dropped, as nginx's go to a file
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
  return { name, port, pid: child.pid };
}

/** The naive undici proxy (bench/naive-undici.mjs): Node's ceiling as a TLS front, in `workers` processes. */
async function startNaive(workers) {
  const child = spawn(process.execPath, [...NODE_FLAGS, path.join(here, 'naive-undici.mjs'), files.cert, files.key, String(upstreamPort), String(workers)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const { port } = JSON.parse(await firstLine(child));
  return { name: workers === 1 ? 'naive' : `naive×${workers}`, port, pid: child.pid };
}

/** Node's https server and nothing else (bench/bare-tls.mjs), in `workers` processes: the floor for new connections. */
async function startBare(workers) {
  const child = spawn(process.execPath, [...NODE_FLAGS, path.join(here, 'bare-tls.mjs'), files.cert, files.key, String(workers)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const { port } = JSON.parse(await firstLine(child));
  return { name: workers === 1 ? 'bare' : `bare×${workers}`, port, pid: child.pid };
}

async function startNginx() {
  const port = await freePort();
  const conf = path.join(work, 'nginx.conf');
  const ciphers = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305';
  fs.writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes ${CORES};
daemon off;
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log ${work}/nginx-access.log;
  client_body_temp_path ${work}/nginx-body;
  proxy_temp_path ${work}/nginx-proxy;
  fastcgi_temp_path ${work}/nginx-fastcgi;
  uwsgi_temp_path ${work}/nginx-uwsgi;
  scgi_temp_path ${work}/nginx-scgi;
  upstream registry { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${files.cert};
    ssl_certificate_key ${files.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${ciphers};
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_prefer_server_ciphers off;
    client_max_body_size 0;
    chunked_transfer_encoding on;
    location /v2/ {
      proxy_pass http://registry/v2/;
      proxy_set_header Host $http_host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', work], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  for (let i = 0; i < 100; i++) {
    if (spawnSync('curl', ['-sS', '-o', '/dev/null', '--cacert', files.ca, `https://localhost:${port}/v2/`]).status === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { name: 'nginx', port, pid: child.pid };
}

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---- process accounting: a front is its main process and its children (processTree)
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      /* gone */
    }
  }
  return ticks / TICK;
}
/**
 * A process's resident memory, and of it the private part (RssAnon: heap, buffers) and the
 * file-backed part (RssFile: mostly the pages of the node binary it ran, shared with every
 * other process running the same binary).
 */
function memory(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return { rss: 0, anon: 0, file: 0 };
  }
}

/** Runs fn while sampling the front's memory: total over its processes, and the largest one. */
async function observed(front, fn) {
  const pids = processTree(front.pid);
  let total = 0;
  let largest = 0;
  let largestAnon = 0;
  let largestFile = 0;
  const sample = () => {
    const each = pids.map(memory);
    total = Math.max(total, each.reduce((a, b) => a + b.rss, 0));
    largest = Math.max(largest, ...each.map((m) => m.rss));
    largestAnon = Math.max(largestAnon, ...each.map((m) => m.anon));
    largestFile = Math.max(largestFile, ...each.map((m) => m.file));
  };
  const timer = setInterval(sample, 50);
  const cpu0 = cpuSeconds(pids);
  const t0 = process.hrtime.bigint();
  const result = await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(timer);
  sample();
  return { result, seconds, cpu: cpuSeconds(pids) - cpu0, total, largest, largestAnon, largestFile };
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

const curlTls = ['-sS', '--fail', '--cacert', files.ca, '-o', '/dev/null'];
const upload = (front, file, i) =>
  run('curl', [...curlTls, '-w', '%{size_upload}', '-T', file, `https://localhost:${front.port}/v2/bench/blobs/uploads/u${i}?_state=s%3D&digest=sha256%3A0`]);
const download = (front, size) => run('curl', [...curlTls, '-w', '%{size_download}', `https://localhost:${front.port}/v2/bench/blobs/${size}`]);

async function transfer(front, kind, count, size) {
  const file = size === SIZE ? bodies.big : bodies.small;
  const o = await observed(front, () => Promise.all(Array.from({ length: count }, (_, i) => (kind === 'upload' ? upload(front, file, i) : download(front, size)))));
  const bytes = o.result.reduce((a, b) => a + Number(b), 0);
  if (bytes !== count * size) throw new Error(`${front.name} ${kind}: moved ${bytes} of ${count * size} bytes`);
  return { mbps: bytes / 1e6 / o.seconds, cpuPerGB: o.cpu / (bytes / 1e9), total: o.total, largest: o.largest, largestAnon: o.largestAnon, largestFile: o.largestFile };
}

async function small(front) {
  const o = await observed(front, () => run('wrk', ['-t2', '-c64', `-d${SECONDS}s`, '--latency', `https://localhost:${front.port}/v2/`]));
  const out = o.result;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const count = Number(/(\d+) requests in/.exec(out)[1]);
  const [, value, unit] = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99ms = Number(value) * { us: 0.001, ms: 1, s: 1000 }[unit];
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (errors) throw new Error(`${front.name}: ${errors[1]} failed small requests`);
  return { rps, p99ms, cpuUs: (o.cpu * 1e6) / count };
}

async function handshakes(front) {
  // Full handshakes (no resumption), two clients at once so both fronts can use both cores.
  const once = () => run('openssl', ['s_time', '-connect', `127.0.0.1:${front.port}`, '-new', '-time', String(SECONDS), '-CAfile', files.ca]);
  const o = await observed(front, () => Promise.all([once(), once()]));
  let rate = 0;
  let count = 0;
  for (const out of o.result) {
    const m = /(\d+) connections in ([\d.]+) real seconds/.exec(out);
    rate += Number(m[1]) / Number(m[2]);
    count += Number(m[1]);
  }
  return { rate, cpuUs: (o.cpu * 1e6) / count };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const naiveWorkers = WORKERS === 'auto' ? CORES : Number(WORKERS);
const fronts = [await startBerth(), await startNginx(), await startNaive(1)];
if (naiveWorkers > 1) fronts.push(await startNaive(naiveWorkers));
const cluster = fronts.at(-1).name;
for (const build of ALSO) fronts.push(await startBerth(build.name, build.entry));
const floors = wanted('handshakes') ? [await startBare(1), ...(naiveWorkers > 1 ? [await startBare(naiveWorkers)] : [])] : [];
console.log(`bench: ${ROUNDS} rounds, ${SIZE / 2 ** 20} MiB bodies, ${CONCURRENCY} concurrent, ${CORES} cores, berth workers ${WORKERS}, nginx ${CORES} workers, reference: ${fronts.filter((f) => f.name.startsWith('naive')).map((f) => f.name).join(', ')}${ALSO.length ? `, other builds: ${ALSO.map((b) => b.name).join(', ')}` : ''}`);

// Warm every front up (JIT, connection pools) so the first measured round is not its first load.
for (const front of fronts) await run('wrk', ['-t2', '-c64', '-d2s', `https://localhost:${front.port}/v2/`]);

const results = Object.fromEntries(fronts.map((f) => [f.name, []]));
for (let round = 1; round <= ROUNDS; round++) {
  // Rotate which front goes first, so none always gets the warmer machine.
  const order = fronts.map((_, i) => fronts[(i + round - 1) % fronts.length]);
  for (const front of order) {
    const r = {};
    if (wanted('upload')) r.upload = await transfer(front, 'upload', 1, SIZE);
    if (wanted('download')) r.download = await transfer(front, 'download', 1, SIZE);
    if (wanted('uploadN')) r.uploadN = await transfer(front, 'upload', CONCURRENCY, SIZE);
    if (wanted('downloadN')) r.downloadN = await transfer(front, 'download', CONCURRENCY, SIZE);
    if (wanted('uploadNSmall')) r.uploadNSmall = await transfer(front, 'upload', CONCURRENCY, SMALL_SIZE);
    if (wanted('small')) r.small = await small(front);
    if (wanted('handshakes')) r.handshakes = await handshakes(front);
    results[front.name].push(r);
    const said = [];
    if (r.upload) said.push(`upload ${r.upload.mbps.toFixed(0)} MB/s`);
    if (r.download) said.push(`download ${r.download.mbps.toFixed(0)} MB/s`);
    if (r.small) said.push(`${r.small.rps.toFixed(0)} req/s (${r.small.cpuUs.toFixed(0)} µs CPU each)`);
    if (r.handshakes) said.push(`${r.handshakes.rate.toFixed(0)} handshakes/s (${r.handshakes.cpuUs.toFixed(0)} µs CPU each)`);
    console.log(`round ${round} ${front.name}: ${said.join(', ') || 'done'}`);
  }
  for (const floor of round % 2 ? floors : [...floors].reverse()) {
    const r = { handshakes: await handshakes(floor) };
    (results[floor.name] ??= []).push(r);
    console.log(`round ${round} ${floor.name}: ${r.handshakes.rate.toFixed(0)} handshakes/s (${r.handshakes.cpuUs.toFixed(0)} µs CPU each)`);
  }
}

const MiB = 2 ** 20;
// [measure, pick, better, target: [against, bound] or null]; "against" is nginx, the naive
// cluster ("cluster"), the naive proxy in one process ("naive"), or an absolute bound ("abs").
const rows = [
  ['single upload MB/s', (r) => r.upload.mbps, 'higher', ['nginx', 0.7]],
  ['single download MB/s', (r) => r.download.mbps, 'higher', ['nginx', 0.85]],
  [`${CONCURRENCY} concurrent uploads MB/s`, (r) => r.uploadN.mbps, 'higher', ['nginx', 0.6]],
  [`${CONCURRENCY} concurrent downloads MB/s`, (r) => r.downloadN.mbps, 'higher', ['nginx', 0.6]],
  ['proxy CPU s per GB uploaded', (r) => r.upload.cpuPerGB, 'lower', ['nginx', 1.6]],
  [`peak RSS, all processes, ${CONCURRENCY} uploads (MiB)`, (r) => r.uploadN.total / MiB, 'info', null],
  [`peak RSS, largest process, ${CONCURRENCY} uploads (MiB)`, (r) => r.uploadN.largest / MiB, 'lower', ['abs', 80]],
  [`  of it private (RssAnon: heap, buffers), peak (MiB)`, (r) => r.uploadN.largestAnon / MiB, 'info', null],
  [`  of it file-backed (RssFile: the program's pages, shared), peak (MiB)`, (r) => r.uploadN.largestFile / MiB, 'info', null],
  [`peak RSS, largest process, ${CONCURRENCY} downloads (MiB)`, (r) => r.downloadN.largest / MiB, 'info', null],
  ['small GETs req/s (64 conns, keep-alive)', (r) => r.small.rps, 'higher', ['cluster', 1.0]],
  ['small GETs req/s, against nginx', (r) => r.small.rps, 'higher', ['nginx', 0.5]],
  ['small GETs p99 latency ms', (r) => r.small.p99ms, 'lower', ['nginx', 3]],
  ['proxy CPU µs per small request', (r) => r.small.cpuUs, 'lower', ['abs', 100]],
  ['full TLS handshakes/s', (r) => r.handshakes.rate, 'higher', ['nginx', 0.6]],
  ['proxy CPU µs per new TLS connection', (r) => r.handshakes.cpuUs, 'lower', ['naive', 1.3]],
];
const names = fronts.map((f) => f.name);
/** Whether a round holds the measurement a row picks (a row's pick throws on a missing one). */
const hasData = (pick, r) => {
  try {
    return Number.isFinite(pick(r));
  } catch {
    return false;
  }
};
const fmt = (x) => x.toFixed(x < 10 ? 2 : 0);
console.log('');
console.log(`| measure | ${names.join(' | ')} | berth/nginx | berth/${cluster} | target |`);
console.log(`| --- |${names.map(() => ' ---: |').join('')} ---: | ---: | --- |`);
let missed = 0;
for (const [name, pick, better, target] of rows) {
  if (results.berth.some((r) => !hasData(pick, r))) continue; // not measured (BENCH_ONLY)
  const m = Object.fromEntries(names.map((n) => [n, median(results[n].map(pick))]));
  let verdict = '';
  if (target) {
    const [against, bound] = target;
    const value = against === 'abs' ? m.berth : m.berth / m[against === 'cluster' ? cluster : against];
    const met = better === 'higher' ? value >= bound : value <= bound;
    if (!met) missed++;
    const what = against === 'abs' ? '' : ` × ${against === 'cluster' ? cluster : against}`;
    verdict = `${better === 'higher' ? '≥' : '≤'} ${bound}${what} ${met ? 'met' : 'NOT met'}`;
  }
  console.log(`| ${name} | ${names.map((n) => fmt(m[n])).join(' | ')} | ${(m.berth / m.nginx).toFixed(2)} | ${(m.berth / m[cluster]).toFixed(2)} | ${verdict} |`);
}
if (wanted('uploadN') && wanted('uploadNSmall')) {
  const largest = median(results.berth.map((r) => r.uploadN.largest / MiB));
  const largestSmall = median(results.berth.map((r) => r.uploadNSmall.largest / MiB));
  const flat = Math.abs(largest - largestSmall) <= 10;
  if (!flat) missed++;
  console.log(
    `| berth largest process, ${CONCURRENCY}×${SIZE / MiB} MiB vs ${CONCURRENCY}×${SMALL_SIZE / MiB} MiB uploads (MiB) | ${largest.toFixed(0)} | ${largestSmall.toFixed(0)} | | | | | within 10 (flat in body size): ${flat ? 'met' : 'NOT met'} |`,
  );
}
if (floors.length > 0) {
  // Not a target: what any Node front pays per new connection here, before work of its own.
  const cpu = (name) => median(results[name].map((r) => r.handshakes.cpuUs));
  const [one, many] = [floors[0].name, floors.at(-1).name];
  console.log('');
  console.log(`floor for new connections (bench/bare-tls.mjs: Node's https server alone): ${floors.map((f) => `${f.name} ${cpu(f.name).toFixed(0)} µs CPU each`).join(', ')}`);
  if (many !== one) console.log(`  ${many} / ${one}: ${(cpu(many) / cpu(one)).toFixed(2)} (what spreading connections over processes costs on this machine)`);
  console.log(`  berth / ${many}: ${(cpu('berth') / cpu(many)).toFixed(2)}, naive / ${one}: ${(cpu('naive') / cpu(one)).toFixed(2)} (each front's own work per connection)`);
}
console.log('');
if (ONLY.length > 0) console.log(`partial run (BENCH_ONLY=${ONLY.join(',')}): only these rows were judged`);
console.log(missed === 0 ? 'every target met' : `${missed} target(s) not met`);
process.exit(missed === 0 ? 0 : 1);
