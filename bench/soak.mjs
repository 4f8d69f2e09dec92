#!/usr/bin/env node
// Sustained load: concurrent pushes and pulls of real images by the real client (skopeo)
// through berth (workers: auto) to the real Distribution registry (htpasswd auth), for a
// bounded time. Then it checks: no failed operation, every pulled layer byte-identical to
// what was pushed, berth's open file descriptors back at their level before the load, its
// memory no longer growing (below), and no upstream connection left open once the
// keep-alive pool has aged.
//
// A process keeps the memory it grew to, so "no longer growing" means two things: what
// survives a full collection in each worker (bench/lib/heapProbe.mjs, asked by a signal)
// is back within 8 MiB of what it was before the load, and the resident memory after the
// load is within 16 MiB of the highest it reached in the load's first 60%, by when it has
// grown to its working size (about two minutes here): it no longer grows with the load.
//
// With SOAK_FAULTS=1 (npm run bench:faults) it is a fault soak: meanwhile a script restarts
// the registry, kills a worker, renews the certificate and sends SIGHUP, one every
// SOAK_FAULT_SECONDS, in turn. Clients retry as real ones do (skopeo's --retry-times 3, then
// the whole push up to 3 times, as a CI job would); once the faults stop, every image a
// client reported pushed is pulled back and compared. It reports pushes attempted,
// succeeded, failed, images verified, and berth's memory and file descriptors at start and
// end; it fails if a reported push does not pull back identical, or if anything grew.
//
// Needs: docker-registry, skopeo, htpasswd (Debian: docker-registry skopeo apache2-utils)
// and a build (npm run build). Run: npm run bench:soak (or bench:faults)
// Environment: SOAK_SECONDS (300; 120 with faults), SOAK_CLIENTS (4), SOAK_LAYER_MB (8),
// SOAK_FAULTS (0), SOAK_FAULT_SECONDS (6).
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import selfsigned from 'selfsigned';
import { injectFaults, replaceFile, withRetries } from './lib/faults.mjs';
import { writeOciImage } from './lib/oci.mjs';
import { scratch } from './lib/scratch.mjs';
import { NODE_FLAGS } from './lib/nodeFlags.mjs';
import { processTree } from './lib/processes.mjs';

const FAULTS = process.env.SOAK_FAULTS === '1';
const SECONDS = Number(process.env.SOAK_SECONDS ?? (FAULTS ? 120 : 300));
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 4);
const LAYER = Number(process.env.SOAK_LAYER_MB ?? 8) * 2 ** 20;
/** The part of the load by whose end a process has grown to its working size. */
const SETTLING = 0.6;
const FAULT_EVERY_MS = Number(process.env.SOAK_FAULT_SECONDS ?? 6) * 1000;
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

const { work, children } = scratch('berth-soak-', 'SIGKILL');

// ---- certificates
const now = Date.now();
const base = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: new Date(now - 60_000), notAfterDate: new Date(now + 86_400_000) };
const ca = await selfsigned.generate([{ name: 'commonName', value: 'soak CA' }], {
  ...base,
  extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
});
const leafOptions = {
  ...base,
  ca: { key: ca.private, cert: ca.cert },
  extensions: [{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true }, { name: 'extKeyUsage', serverAuth: true }, { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
};
const leaf = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], leafOptions);
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
let registry;
/** Starts docker-registry on registry.yml; resolves with the port it listens on. */
function startRegistry() {
  registry = spawn('docker-registry', ['serve', path.join(work, 'registry.yml')], { env: registryEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(registry);
  return waitFor(registry, /listening on 127\.0\.0\.1:(\d+)/, 'docker-registry', true);
}
const registryPort = await startRegistry();
/** Stops the registry (SIGTERM, as an orchestrator does) and starts it again on its port, with its storage. */
async function restartRegistry() {
  const exited = new Promise((resolve) => registry.once('exit', resolve));
  registry.kill('SIGTERM');
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  registry.kill('SIGKILL');
  fs.writeFileSync(path.join(work, 'registry.yml'), fs.readFileSync(path.join(work, 'registry.yml'), 'utf8').replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${registryPort}`));
  const started = startRegistry();
  const late = new Promise((_, reject) => setTimeout(() => reject(new Error('the registry did not listen again within 30 s')), 30_000).unref());
  await Promise.race([started, late]);
}

// ---- berth
const berth = spawn(
  process.execPath,
  [...NODE_FLAGS, cli, '--workers', 'auto', '--upstream', `http://127.0.0.1:${registryPort}`, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--cert', path.join(work, 'tls.crt'), '--key', path.join(work, 'tls.key')],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: work,
    env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(path.join(here, 'lib', 'heapProbe.mjs')).href}`.trim(), SOAK_HEAP_DIR: work },
  },
);
children.push(berth);
const berthPort = await waitFor(berth, /"listen":"https:\/\/127\.0\.0\.1:(\d+)"/, 'berth', false);
let failedRequests = 0;
/** Workers that have answered a request (a fault kills only a serving one). */
const serving = new Set();
berth.stdout.on('data', (d) => {
  for (const line of d.toString().split('\n')) {
    if (!/"msg":"request"/.test(line)) continue;
    if (/"status":5\d\d/.test(line)) failedRequests++;
    const pid = /"pid":(\d+)/.exec(line);
    if (pid) serving.add(Number(pid[1]));
  }
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

const copy = (from, to, certFlag) => skopeo(['copy', '--quiet', '--retry-times', FAULTS ? '3' : '0', '--policy', policyFile, '--authfile', authFile, certFlag, caDir, from, to]);

/** Pushes a fresh image; resolves with what to verify it by, and how many pushes it took. */
async function push(name) {
  const src = path.join(work, `${name}-src`);
  const diffIds = writeOciImage(src, [LAYER, 64 * 1024, 4096], 'soak').layerDigests;
  const ref = `docker://${host}/soak/${name}:v1`;
  try {
    const tries = await withRetries(FAULTS ? 3 : 1, 2000, () => copy(`oci:${src}:soak`, ref, '--dest-cert-dir'));
    return { ref, diffIds, tries };
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
}

/** Pulls an image back and compares its layers with those pushed. */
async function pullAndVerify({ ref, diffIds }, name) {
  const back = path.join(work, `${name}-back`);
  try {
    await withRetries(FAULTS ? 3 : 1, 2000, () => copy(ref, `oci:${back}:soak`, '--src-cert-dir'));
    verify(back, diffIds);
  } finally {
    fs.rmSync(back, { recursive: true, force: true });
  }
}

async function roundTrip(name) {
  await pullAndVerify(await push(name), name);
  return LAYER + 64 * 1024 + 4096;
}

// ---- process accounting
const berthProcesses = () => processTree(berth.pid);
const rssOf = (pid) => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const fdsOf = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
/** Memory and descriptors of berth's live processes (a killed worker, gone or a zombie, is left out). */
function snapshot() {
  const live = [];
  for (const pid of berthProcesses()) {
    try {
      live.push([pid, { rss: rssOf(pid), fds: fdsOf(pid) }]);
    } catch {
      /* exited meanwhile */
    }
  }
  return Object.fromEntries(live);
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
/**
 * What survives a full collection in each worker: heap in use and memory outside it
 * (Buffers, TLS contexts), asked of bench/lib/heapProbe.mjs by SIGUSR2 (berth's workers run
 * with --expose-gc). Resolves pid -> { heap, outside } in bytes; a worker that does not answer in
 * 10 s is missing.
 */
async function liveMemory() {
  const workers = berthProcesses().filter((pid) => pid !== berth.pid);
  const files = new Map(workers.map((pid) => [pid, path.join(work, `heap.${pid}.json`)]));
  for (const [pid, file] of files) {
    fs.rmSync(file, { force: true });
    process.kill(pid, 'SIGUSR2');
  }
  const live = {};
  for (const deadline = Date.now() + 10_000; Object.keys(live).length < files.size && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 100));
    for (const [pid, file] of files) {
      if (live[pid] !== undefined || !fs.existsSync(file)) continue;
      const report = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (!report.gc) throw new Error(`worker ${pid} runs without --expose-gc: its live memory cannot be measured`);
      live[pid] = { heap: report.heapUsed, outside: report.external };
    }
  }
  return live;
}
const MiB = 2 ** 20;
const fmt = (s) => Object.entries(s).map(([pid, v]) => `${pid === String(berth.pid) ? 'primary' : `worker ${pid}`}: ${(v.rss / MiB).toFixed(0)} MiB, ${v.fds} fds`).join('; ');
const alive = (m) => m.heap + m.outside;
const fmtLive = (live) => Object.entries(live).map(([pid, m]) => `worker ${pid} ${(alive(m) / MiB).toFixed(1)} MiB (heap ${(m.heap / MiB).toFixed(1)}, outside it ${(m.outside / MiB).toFixed(1)})`).join(', ');

// ---- warm up, baseline, load
await roundTrip('warmup');
await new Promise((r) => setTimeout(r, 2000));
const before = snapshot();
const liveBefore = FAULTS ? {} : await liveMemory();
console.log(`soak${FAULTS ? ` with faults every ${FAULT_EVERY_MS / 1000} s` : ''}: ${SECONDS} s, ${CLIENTS} clients, layers of ${LAYER / MiB} MiB + 64 KiB + 4 KiB, berth workers auto (${berthProcesses().length - 1})`);
console.log(`before: ${fmt(before)}${FAULTS ? '' : `; alive after a full collection: ${fmtLive(liveBefore)}`}`);

const peak = {};
/** The peaks within the load's first SETTLING part: the size each process grew to for it. */
const settled = {};
let mostUpstream = 0;
const loadStart = Date.now();
const deadline = loadStart + SECONDS * 1000;
const settledBy = loadStart + SETTLING * SECONDS * 1000;
const sampler = setInterval(() => {
  const settling = Date.now() <= settledBy;
  for (const [pid, v] of Object.entries(snapshot())) {
    peak[pid] = Math.max(peak[pid] ?? 0, v.rss);
    if (settling) settled[pid] = Math.max(settled[pid] ?? 0, v.rss);
  }
  mostUpstream = Math.max(mostUpstream, upstreamConnections());
}, 500);
const results = { ok: 0, failed: 0, bytes: 0, errors: [] };
/** Fault mode: pushes attempted, reported pushed (with how many tries), failed; then verified or lost. */
const pushes = { attempted: 0, firstTry: 0, afterRetries: 0, failed: 0, verified: 0, lost: [] };
const pushed = [];
let faults;
if (FAULTS) {
  faults = injectFaults(
    [
      {
        name: 'worker killed',
        run: () => {
          const workers = berthProcesses().filter((pid) => pid !== berth.pid && serving.has(pid));
          if (workers.length === 0) throw new Error('no serving worker');
          process.kill(workers[Math.floor(Math.random() * workers.length)], 'SIGKILL');
        },
      },
      {
        name: 'certificate renewed',
        run: async () => {
          const renewed = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], leafOptions);
          replaceFile(path.join(work, 'tls.key'), renewed.private, 0o600);
          replaceFile(path.join(work, 'tls.crt'), renewed.cert);
        },
      },
      { name: 'registry restarted', run: restartRegistry },
      { name: 'SIGHUP', run: () => void berth.kill('SIGHUP') },
    ],
    FAULT_EVERY_MS,
    (line) => console.log(`  ${new Date().toISOString().slice(11, 19)} ${line}`),
  );
}
await Promise.all(
  Array.from({ length: CLIENTS }, async (_, c) => {
    for (let i = 0; Date.now() < deadline; i++) {
      const name = `c${c}-${i}`;
      if (FAULTS) {
        pushes.attempted++;
        try {
          const image = await push(name);
          pushed.push({ ...image, name });
          if (image.tries === 1) pushes.firstTry++;
          else pushes.afterRetries++;
        } catch (err) {
          pushes.failed++;
          results.errors.push(err.message.slice(0, 300));
        }
        continue;
      }
      try {
        results.bytes += await roundTrip(name);
        results.ok++;
      } catch (err) {
        results.failed++;
        results.errors.push(err.message.slice(0, 300));
      }
    }
  }),
);
if (FAULTS) {
  await faults.stop();
  console.log(`faults: ${Object.entries(faults.injected).map(([k, v]) => `${k} ×${v}`).join(', ')}${faults.failed.length ? `; not injected: ${faults.failed.join('; ')}` : ''}`);
  // Every image a client reported pushed, pulled back once the faults have stopped.
  for (const image of pushed) {
    try {
      await pullAndVerify(image, `verify-${image.name}`);
      pushes.verified++;
    } catch (err) {
      pushes.lost.push(`${image.name}: ${err.message.slice(0, 200)}`);
    }
  }
  clearInterval(sampler); // after the pulls, so that their load counts in the peaks
  console.log(`pushes: ${pushes.attempted} attempted, ${pushes.firstTry + pushes.afterRetries} reported pushed (${pushes.firstTry} at the first try, ${pushes.afterRetries} after a whole-push retry), ${pushes.failed} failed after 3 tries; ${pushes.verified} of ${pushed.length} pulled back byte-identical${pushes.lost.length ? `; LOST: ${pushes.lost.join('; ')}` : ''}; berth answered ${failedRequests} requests with 5xx`);
} else {
  clearInterval(sampler);
  console.log(`load: ${results.ok} push+pull round trips verified, ${results.failed} failed, ${(results.bytes / MiB).toFixed(0)} MiB of layers each way; berth answered ${failedRequests} requests with 5xx`);
}
console.log(`upstream connections during the load: up to ${mostUpstream} (so the count below can see them)`);
console.log(`peak RSS: ${Object.entries(peak).map(([pid, v]) => `${pid === String(berth.pid) ? 'primary' : `worker ${pid}`} ${(v / MiB).toFixed(0)} MiB`).join('; ')}`);
for (const e of results.errors.slice(0, 5)) console.log(`  error: ${e}`);

console.log(`waiting ${POOL_AGE_MS / 1000} s for berth's idle upstream connections to age out ...`);
await new Promise((r) => setTimeout(r, POOL_AGE_MS));
const after = snapshot();
const left = upstreamConnections();
const liveAfter = FAULTS ? {} : await liveMemory();
console.log(`after: ${fmt(after)}; upstream connections open: ${left}${FAULTS ? '' : `; alive after a full collection: ${fmtLive(liveAfter)}`}`);

const problems = [];
if (FAULTS) {
  // Data: every push a client was told succeeded pulls back identical.
  if (pushes.lost.length > 0 || pushes.verified === 0) problems.push(`${pushes.lost.length} reported pushes did not pull back identical, ${pushes.verified} did`);
  // Resources: workers were replaced, so the bound is per role: the primary against itself,
  // the workers' descriptors against the most a worker held before.
  const worst = (snap, key) => Math.max(...Object.entries(snap).filter(([pid]) => pid !== String(berth.pid)).map(([, v]) => v[key]));
  const primary = String(berth.pid);
  if (after[primary].fds > before[primary].fds) problems.push(`primary: ${after[primary].fds} fds after, ${before[primary].fds} before`);
  if (after[primary].rss > before[primary].rss + 16 * MiB) problems.push(`primary: ${(after[primary].rss / MiB).toFixed(0)} MiB after, ${(before[primary].rss / MiB).toFixed(0)} MiB before`);
  if (worst(after, 'fds') > worst(before, 'fds')) problems.push(`a worker holds ${worst(after, 'fds')} fds after, at most ${worst(before, 'fds')} before`);
  // A worker left to carry the load while the other was being replaced peaks higher than
  // workers sharing it, and keeps that memory (V8 does not hand its heap back at once): the
  // bound is that no worker grew after the load, beyond its own peak during it.
  for (const [pid, a] of Object.entries(after)) {
    if (pid !== primary && a.rss > (peak[pid] ?? 0) + 16 * MiB) problems.push(`worker ${pid}: ${(a.rss / MiB).toFixed(0)} MiB after the load, ${((peak[pid] ?? 0) / MiB).toFixed(0)} MiB at its peak during it`);
  }
  if (Object.keys(after).length !== Object.keys(before).length) problems.push(`${Object.keys(after).length} processes after, ${Object.keys(before).length} before`);
} else {
  if (results.failed > 0 || results.ok === 0) problems.push(`${results.failed} failed operations, ${results.ok} verified`);
  if (failedRequests > 0) problems.push(`${failedRequests} 5xx answers`);
  for (const [pid, b] of Object.entries(before)) {
    const a = after[pid];
    if (!a) {
      problems.push(`process ${pid} is gone`);
      continue;
    }
    if (a.fds > b.fds) problems.push(`process ${pid}: ${a.fds} fds after, ${b.fds} before`);
    // Resident memory grows to a working size early in the load and is kept: after the
    // load it must not exceed that size, reached in the load's first part, by more than 16 MiB.
    const grown = settled[pid] ?? b.rss;
    if (a.rss > grown + 16 * MiB) problems.push(`process ${pid}: ${(a.rss / MiB).toFixed(0)} MiB after, ${(grown / MiB).toFixed(0)} MiB at most in the load's first ${SETTLING * 100}%, ${(b.rss / MiB).toFixed(0)} MiB before`);
    if (pid === String(berth.pid)) continue;
    // What is still alive, against before the load: a leak shows here whatever V8 kept.
    if (liveAfter[pid] === undefined || liveBefore[pid] === undefined) problems.push(`worker ${pid}: its live memory was not reported`);
    else if (alive(liveAfter[pid]) > alive(liveBefore[pid]) + 8 * MiB) problems.push(`worker ${pid}: ${(alive(liveAfter[pid]) / MiB).toFixed(1)} MiB alive after a full collection, ${(alive(liveBefore[pid]) / MiB).toFixed(1)} MiB before`);
  }
}
if (left > 0) problems.push(`${left} upstream connections still open`);
console.log(problems.length === 0 ? 'soak: all well' : `soak: ${problems.join('; ')}`);
process.exit(problems.length === 0 ? 0 : 1);
