#!/usr/bin/env node
// Bytes of JavaScript heap allocated per small request, by the function that allocated them:
// berth (one process) against the naive undici proxy, under the same wrk load as
// bench:compare's small requests. Unlike CPU time on this shared machine, what a request
// allocates hardly moves between runs, and what it allocates its process must later collect
// (the young-generation collections: a tenth of berth's CPU on small requests).
// V8's sampling heap profiler, through the inspector, keeps the samples of objects already
// collected (includeObjectsCollectedByMinorGC/MajorGC): all that was allocated, not only
// what is still alive.
// Needs: wrk (Debian: apt-get install wrk), Node 22 or later (its WebSocket).
// Environment: ALLOC_SECONDS (5, per measurement), ALLOC_ROUNDS (3), ALLOC_TOP (15, functions
// listed per front), BENCH_BERTH_ALSO (as bench:compare: "label=DIR,…", other builds).
import { spawn, execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratch } from './lib/scratch.mjs';
import { NODE_FLAGS } from './lib/nodeFlags.mjs';
import { berthBuilds, localhostCertificate, requireCommands } from './lib/fronts.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.ALLOC_SECONDS ?? 5);
const ROUNDS = Number(process.env.ALLOC_ROUNDS ?? 3);
const TOP = Number(process.env.ALLOC_TOP ?? 15);
const builds = berthBuilds();
requireCommands(['wrk'], 'wrk');

const { work, children } = scratch('berth-alloc-');

const files = await localhostCertificate(work);

/** Starts a process; resolves with what `pattern` matched in its output (stdout and stderr). */
function started(args, pattern, options = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.push(child);
  return new Promise((resolve, reject) => {
    const found = {};
    let text = '';
    const onData = (d) => {
      text += d;
      for (const [key, re] of Object.entries(pattern)) {
        const m = re.exec(text);
        if (m && found[key] === undefined) found[key] = m[1];
      }
      if (Object.keys(pattern).every((key) => found[key] !== undefined)) {
        child.stdout.resume();
        child.stderr.resume();
        resolve({ child, ...found });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${text}`)));
  });
}

const upstream = await started([path.join(here, 'upstream.mjs')], { port: /"port":(\d+)/ });
const inspector = /Debugger listening on (ws:\/\/\S+)/;
const fronts = [];
for (const build of builds) {
  const args = [...NODE_FLAGS, '--expose-gc', '--inspect=127.0.0.1:0', build.entry, '--upstream', `http://127.0.0.1:${upstream.port}`, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--cert', files.cert, '--key', files.key, '--workers', '1'];
  fronts.push({ name: build.name, ...(await started(args, { port: /"listen":"https:\/\/127\.0\.0\.1:(\d+)"/, ws: inspector }, { cwd: work })) });
}
fronts.push({ name: 'naive', ...(await started([...NODE_FLAGS, '--inspect=127.0.0.1:0', path.join(here, 'naive-undici.mjs'), files.cert, files.key, upstream.port, '1'], { port: /"port":(\d+)/, ws: inspector })) });

function wrk(port, seconds) {
  return new Promise((resolve, reject) => {
    execFile('wrk', ['-t2', '-c64', `-d${seconds}s`, `https://localhost:${port}/v2/`], (err, stdout) => {
      if (err) return reject(err);
      if (/Non-2xx/.test(stdout)) return reject(new Error(`failed requests: ${stdout}`));
      resolve(Number(/(\d+) requests in/.exec(stdout)[1]));
    });
  });
}

/** A Chrome DevTools Protocol session with a process's inspector. */
async function devtools(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', reject, { once: true });
  });
  let id = 0;
  const pending = new Map();
  ws.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.id !== undefined && pending.has(message.id)) {
      pending.get(message.id)(message);
      pending.delete(message.id);
    }
  });
  return {
    call: (method, params = {}) => new Promise((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    }),
    close: () => ws.close(),
  };
}

const where = (frame) => `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*node_modules\//, '').replace(/^.*\/(dist|bench)\//, '$1/').replace(/^file:\/\//, '')}:${frame.lineNumber + 1}`;

async function measure(front) {
  const session = await devtools(front.ws);
  await wrk(front.port, 5); // compiled and warm before counting (the first round's warm-up is the longest)
  await session.call('HeapProfiler.enable');
  await session.call('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
  const requests = await wrk(front.port, SECONDS);
  const { result } = await session.call('HeapProfiler.stopSampling');
  session.close();
  const bySite = new Map();
  let total = 0;
  const walk = (node) => {
    if (node.selfSize > 0) {
      const key = where(node.callFrame);
      bySite.set(key, (bySite.get(key) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    for (const child of node.children) walk(child);
  };
  walk(result.profile.head);
  return { perRequest: total / requests, bySite: new Map([...bySite].map(([key, bytes]) => [key, bytes / requests])), requests };
}

const results = new Map(fronts.map((f) => [f.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const front of round % 2 ? [...fronts].reverse() : fronts) {
    const r = await measure(front);
    results.get(front.name).push(r);
    console.log(`round ${round + 1} ${front.name}: ${(r.perRequest / 1024).toFixed(1)} KiB per request (${r.requests} requests)`);
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return Number.isInteger(middle) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[Math.floor(middle)];
};
const naive = median(results.get('naive').map((r) => r.perRequest));
console.log(`\n| front | KiB allocated per small request (median of ${ROUNDS}) | × naive |\n| --- | ---: | ---: |`);
for (const front of fronts) {
  const value = median(results.get(front.name).map((r) => r.perRequest));
  console.log(`| ${front.name} | ${(value / 1024).toFixed(1)} | ${(value / naive).toFixed(2)} |`);
}
for (const front of fronts) {
  const last = results.get(front.name).at(-1);
  console.log(`\n${front.name}: where it allocates, bytes per request (last round)`);
  for (const [site, bytes] of [...last.bySite].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${String(Math.round(bytes)).padStart(7)}  ${site}`);
}
process.exit(0);
