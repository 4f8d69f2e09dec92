#!/usr/bin/env node
// Sustained load: concurrent pushes and pulls of real images by the real client (skopeo)
// through berth (workers: auto) to the real Distribution registry (htpasswd auth), for a
// bounded time. Then it checks: no failed operation, every pulled layer byte-identical to
// what was pushed, berth's resident memory and open file descriptors back at their level
// before the load, and no upstream connection left open once the keep-alive pool has aged.
//
// Needs: docker-registry, skopeo, htpasswd (Debian: docker-registry skopeo apache2-utils)
// and a build (npm run build). Run: npm run bench:soak
// Environment: SOAK_SECONDS (120), SOAK_CLIENTS (4), SOAK_LAYER_MB (8).
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import selfsigned from 'selfsigned';
import { writeOciImage } from './lib/oci.mjs';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 120);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 4);
const LAYER = Number(process.env.SOAK_LAYER_MB ?? 8) * 2 ** 20;
/** berth keeps an unused upstream connection this long (src/proxy/transport.ts), plus a margin. */
const POOL_AGE_MS = 35_000;
const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'dist', 'cli.js');

for (const tool of ['docker-registry', 'skopeo', 'htpasswd']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`soak: ${tool} is missing (Debian: apt-get install docker-registry skopeo apache2-utils)`);
    process.exit(2);
  }
}
if (!fs.existsSync(cli)) {
  console.error('soak: dist/cli.js is missing; run npm run build');
  process.exit(2);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-soak-'));
const children = [];
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

// ---- certificates
const now = Date.now();
const base = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: new Date(now - 60_000), notAfterDate: new Date(now + 86_400_000) };
const ca = await selfsigned.generate([{ name: 'commonName', value: 'soak CA' }], {
  ...base,
  extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
});
const leaf = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
  ...base,
  ca: { key: ca.private, cert: ca.cert },
  extensions: [{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true }, { name: 'extKeyUsage', serverAuth: true }, { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
});
const caDir = path.join(work, 'ca');
fs.mkdirSync(caDir);
fs.writeFileSync(path.join(caDir, 'ca.crt'), ca.cert);
fs.writeFileSync(path.join(work, 'tls.crt'), leaf.cert);
fs.writeFileSync(path.join(work, 'tls.key'), leaf.private, { mode: 0o600 });

// ---- the registry, with htpasswd auth as a real one has
const user = 'soak';
const password = crypto.randomBytes(12).toString('hex');
fs.writeFileSync(path.join(work, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' }));
fs.writeFileSync(
  path.join(work, 'registry.yml'),
  `version: 0.1
log: { level: info, formatter: text }
storage: { filesystem: { rootdirectory: ${JSON.stringify(path.join(work, 'data'))} }, delete: { enabled: true } }
http: { addr: "127.0.0.1:0", secret: soak-secret }
auth: { htpasswd: { realm: soak, path: ${JSON.stringify(path.join(work, 'htpasswd'))} } }
`,
);
const registryEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
const registry = spawn('docker-registry', ['serve', path.join(work, 'registry.yml')], { env: registryEnv, stdio: ['ignore', 'pipe', 'pipe'] });
children.push(registry);
const registryPort = await waitFor(registry, /listening on 127\.0\.0\.1:(\d+)/, 'docker-registry', true);

// ---- berth
const berth = spawn(
  process.execPath,
  ['--max-semi-space-size=2', cli, '--workers', 'auto', '--upstream', `http://127.0.0.1:${registryPort}`, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--cert', path.join(work, 'tls.crt'), '--key', path.join(work, 'tls.key')],
  { stdio: ['ignore', 'pipe', 'inherit'], cwd: work },
);
children.push(berth);
const berthPort = await waitFor(berth, /"listen":"https:\/\/127\.0\.0\.1:(\d+)"/, 'berth', false);
let failedRequests = 0;
berth.stdout.on('data', (d) => {
  for (const line of d.toString().split('\n')) if (/"msg":"request"/.test(line) && /"status":5\d\d/.test(line)) failedRequests++;
});
const host = `localhost:${berthPort}`;

function waitFor(child, pattern, name, stderrToo) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d) => {
      seen += d.toString();
      const m = pattern.exec(seen);
      if (m) {
        child.stdout.off('data', onData);
        child.stderr?.off('data', onData);
        child.stdout.resume();
        child.stderr?.resume();
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    if (stderrToo) child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${seen.slice(-2000)}`)));
  });
}

// ---- skopeo
const authFile = path.join(work, 'auth.json');
const policyFile = path.join(work, 'policy.json');
fs.writeFileSync(authFile, '{}');
fs.writeFileSync(policyFile, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
function skopeo(args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile('skopeo', args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`skopeo ${args[0]}: ${stderr || err.message}`)) : resolve(stdout)));
    if (input !== undefined) child.stdin.end(input);
  });
}
await skopeo(['login', '--authfile', authFile, '--cert-dir', caDir, '-u', user, '--password-stdin', host], password);

// ---- images: OCI layouts with uncompressed tar layers of random content (bench/lib/oci.mjs)
const sha = (data) => crypto.createHash('sha256').update(data).digest('hex');
/** Pulled layers, gunzipped, against the pushed ones. */
function verify(dir, diffIds) {
  const blob = (digest) => fs.readFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  const got = manifest.layers.map((l) => {
    const data = blob(l.digest);
    if (`sha256:${sha(data)}` !== l.digest) throw new Error(`pulled blob ${l.digest} does not match its digest`);
    return `sha256:${sha(l.mediaType.endsWith('gzip') ? zlib.gunzipSync(data) : data)}`;
  });
  if (JSON.stringify(got) !== JSON.stringify(diffIds)) throw new Error(`pulled layers ${got} differ from pushed ${diffIds}`);
}

async function roundTrip(name) {
  const src = path.join(work, `${name}-src`);
  const back = path.join(work, `${name}-back`);
  const diffIds = writeOciImage(src, [LAYER, 64 * 1024, 4096], 'soak').layerDigests;
  const ref = `docker://${host}/soak/${name}:v1`;
  try {
    await skopeo(['copy', '--quiet', '--policy', policyFile, '--authfile', authFile, '--dest-cert-dir', caDir, `oci:${src}:soak`, ref]);
    await skopeo(['copy', '--quiet', '--policy', policyFile, '--authfile', authFile, '--src-cert-dir', caDir, ref, `oci:${back}:soak`]);
    verify(back, diffIds);
    return LAYER + 64 * 1024 + 4096;
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
    fs.rmSync(back, { recursive: true, force: true });
  }
}

// ---- process accounting
function berthProcesses() {
  const pids = [berth.pid];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === berth.pid) pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}
const rssOf = (pid) => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const fdsOf = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
function snapshot() {
  return Object.fromEntries(berthProcesses().map((pid) => [pid, { rss: rssOf(pid), fds: fdsOf(pid) }]));
}
/** Established TCP connections from berth's processes to the registry. */
function upstreamConnections() {
  const inodes = new Set();
  for (const pid of berthProcesses()) {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const remotePort = parseInt(f[2].split(':')[1], 16);
      if (remotePort === registryPort && f[3] === '01' && inodes.has(f[9])) count++;
    }
  }
  return count;
}
const MiB = 2 ** 20;
const fmt = (s) => Object.entries(s).map(([pid, v]) => `${pid === String(berth.pid) ? 'primary' : `worker ${pid}`}: ${(v.rss / MiB).toFixed(0)} MiB, ${v.fds} fds`).join('; ');

// ---- warm up, baseline, load
await roundTrip('warmup');
await new Promise((r) => setTimeout(r, 2000));
const before = snapshot();
console.log(`soak: ${SECONDS} s, ${CLIENTS} clients, layers of ${LAYER / MiB} MiB + 64 KiB + 4 KiB, berth workers auto (${berthProcesses().length - 1})`);
console.log(`before: ${fmt(before)}`);

const peak = {};
let mostUpstream = 0;
const sampler = setInterval(() => {
  for (const [pid, v] of Object.entries(snapshot())) peak[pid] = Math.max(peak[pid] ?? 0, v.rss);
  mostUpstream = Math.max(mostUpstream, upstreamConnections());
}, 500);
const deadline = Date.now() + SECONDS * 1000;
const results = { ok: 0, failed: 0, bytes: 0, errors: [] };
await Promise.all(
  Array.from({ length: CLIENTS }, async (_, c) => {
    for (let i = 0; Date.now() < deadline; i++) {
      try {
        results.bytes += await roundTrip(`c${c}-${i}`);
        results.ok++;
      } catch (err) {
        results.failed++;
        results.errors.push(err.message.slice(0, 300));
      }
    }
  }),
);
clearInterval(sampler);
console.log(`load: ${results.ok} push+pull round trips verified, ${results.failed} failed, ${(results.bytes / MiB).toFixed(0)} MiB of layers each way; berth answered ${failedRequests} requests with 5xx`);
console.log(`upstream connections during the load: up to ${mostUpstream} (so the count below can see them)`);
console.log(`peak RSS: ${Object.entries(peak).map(([pid, v]) => `${pid === String(berth.pid) ? 'primary' : `worker ${pid}`} ${(v / MiB).toFixed(0)} MiB`).join('; ')}`);
for (const e of results.errors.slice(0, 5)) console.log(`  error: ${e}`);

console.log(`waiting ${POOL_AGE_MS / 1000} s for berth's idle upstream connections to age out ...`);
await new Promise((r) => setTimeout(r, POOL_AGE_MS));
const after = snapshot();
const left = upstreamConnections();
console.log(`after: ${fmt(after)}; upstream connections open: ${left}`);

const problems = [];
if (results.failed > 0 || results.ok === 0) problems.push(`${results.failed} failed operations, ${results.ok} verified`);
if (failedRequests > 0) problems.push(`${failedRequests} 5xx answers`);
for (const [pid, b] of Object.entries(before)) {
  const a = after[pid];
  if (!a) {
    problems.push(`process ${pid} is gone`);
    continue;
  }
  if (a.fds > b.fds) problems.push(`process ${pid}: ${a.fds} fds after, ${b.fds} before`);
  if (a.rss > b.rss + 16 * MiB) problems.push(`process ${pid}: ${(a.rss / MiB).toFixed(0)} MiB after, ${(b.rss / MiB).toFixed(0)} MiB before`);
}
if (left > 0) problems.push(`${left} upstream connections still open`);
console.log(problems.length === 0 ? 'soak: all well' : `soak: ${problems.join('; ')}`);
process.exit(problems.length === 0 ? 0 : 1);
