#!/usr/bin/env node
// Machine instructions per small request, by function: berth (one process, or INSTR_WORKERS)
// against the naive undici proxy, each run alone under valgrind's callgrind, under the small-request load of
// bench:compare (wrk, keep-alive). CPU time on this shared machine moves by a fifth between
// runs of the same build; the instructions a request executes move by a few percent, so two
// builds, or berth and the naive proxy, are told apart by what their code does, not by the
// neighbours' load. (Instructions are not time: a cache miss or a slow system call costs more
// than its instructions say. bench:compare's CPU per request stays the figure the targets
// are set in.)
// What is counted: every instruction the process executes in user space while the load
// runs, on every thread (V8's compiler and collector threads too, which valgrind runs one
// at a time), divided by the requests the upstream answered meanwhile; the TLS handshakes
// of wrk's connections fall outside the window. Names: Node's --perf-basic-prof map for
// JavaScript (and regular expressions) compiled by V8, symbols for the node binary and C
// libraries.
// Needs: valgrind and wrk (Debian: apt-get install valgrind wrk), Node 22 or later.
// Environment: INSTR_WARM_SECONDS (40: V8 compiles the hot code under valgrind's ~50x
// slowdown), INSTR_SECONDS (40), INSTR_CONNECTIONS (16), INSTR_TOP (25 functions listed per
// front), INSTR_WORKERS (1: berth's workers, and the naive proxy's cluster processes; with
// more, every process is traced and their instructions summed), BENCH_BERTH_ALSO
// ("label=DIR,…", as bench:compare: other builds).
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { scratch } from './lib/scratch.mjs';
import { NODE_FLAGS } from './lib/nodeFlags.mjs';
import { berthBuilds, localhostCertificate, requireCommands } from './lib/fronts.mjs';
import { processTree } from './lib/processes.mjs';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const WARM = Number(process.env.INSTR_WARM_SECONDS ?? 40);
const SECONDS = Number(process.env.INSTR_SECONDS ?? 40);
const CONNECTIONS = Number(process.env.INSTR_CONNECTIONS ?? 16);
const TOP = Number(process.env.INSTR_TOP ?? 25);
const WORKERS = Number(process.env.INSTR_WORKERS ?? 1);
const builds = berthBuilds();
requireCommands(['wrk', 'valgrind', 'callgrind_control'], 'valgrind wrk');

const { work, children } = scratch('berth-instructions-', 'SIGKILL');
const maps = [];
process.on('exit', () => maps.forEach((file) => fs.rmSync(file, { force: true })));

const files = await localhostCertificate(work);

/** Starts `command`; resolves with the first group `pattern` matched in its output (stdout and stderr). */
function started(command, args, pattern, options = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.push(child);
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d) => {
      text += d;
      const m = pattern.exec(text);
      if (!m) return;
      child.stdout.off('data', onData).resume();
      child.stderr.off('data', onData).resume();
      resolve({ child, port: Number(m[1]) });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${text}`)));
  });
}

const upstream = await started(process.execPath, [path.join(here, 'upstream.mjs')], /"port":(\d+)/);
const answered = async () => Number(await (await fetch(`http://127.0.0.1:${upstream.port}/bench/count`)).text());

function wrk(port, seconds) {
  return new Promise((resolve, reject) => {
    execFile('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '60s', `https://localhost:${port}/v2/`], (err, stdout) => {
      if (err) return reject(err);
      if (/Non-2xx|Socket errors/.test(stdout)) return reject(new Error(`failed requests: ${stdout}`));
      resolve(stdout);
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One front under callgrind: instructions per request in a window of steady load, and its parts by function. */
async function measure(name, args, pattern) {
  const out = path.join(work, `callgrind.${name.replace(/\W/g, '_')}`);
  // With workers, each process (valgrind follows the forks) writes its own file: `${out}.PID`.
  const valgrind = ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', '--dump-instr=no', `--callgrind-out-file=${out}.%p`, ...(WORKERS > 1 ? ['--trace-children=yes'] : [])];
  const front = await started('valgrind', [...valgrind, process.execPath, ...NODE_FLAGS, '--perf-basic-prof', ...args], pattern, { cwd: work });
  await wrk(front.port, WARM);
  const load = wrk(front.port, SECONDS + 10);
  await sleep(4000); // wrk's connections are up (their handshakes stay out of the count)
  const pids = processTree(front.child.pid);
  maps.push(...pids.map((pid) => `/tmp/perf-${pid}.map`));
  const before = await answered();
  for (const pid of pids) await run('callgrind_control', ['-i', 'on', String(pid)]);
  await sleep(SECONDS * 1000);
  for (const pid of pids) await run('callgrind_control', ['-i', 'off', String(pid)]);
  const requests = (await answered()) - before;
  await load;
  for (const pid of pids) await run('callgrind_control', ['-d', String(pid)]);
  await sleep(1000);
  for (const pid of pids.slice(1)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  front.child.kill('SIGKILL');
  await new Promise((resolve) => front.child.once('exit', resolve));
  const named = new Map();
  for (const pid of pids) {
    const own = `${path.basename(out)}.${pid}`;
    const self = selfCost(fs.readdirSync(work).filter((f) => f === own || f.startsWith(`${own}.`)).map((f) => path.join(work, f)));
    let inProcess = 0;
    for (const [name, value] of byName(self, perfMap(`/tmp/perf-${pid}.map`))) {
      named.set(name, (named.get(name) ?? 0) + value);
      inProcess += value;
    }
    if (pids.length > 1) console.log(`${name}: process ${pid}${pid === front.child.pid ? ' (the primary)' : ''}: ${Math.round(inProcess / requests)} instructions per request`);
  }
  let total = 0;
  for (const value of named.values()) total += value;
  return { name, requests, perRequest: total / requests, named: new Map([...named].map(([key, value]) => [key, value / requests])) };
}

/**
 * Instructions executed in each function itself (callgrind's "self" cost), by the name
 * callgrind gave it: a symbol, or for code without one (V8's compiled JavaScript) its address.
 */
function selfCost(outputs) {
  const cost = new Map();
  for (const file of outputs) {
    const names = new Map();
    let fn;
    let callLine = false;
    for (const line of fs.readFileSync(file, 'latin1').split('\n')) {
      if (line.startsWith('fn=') || line.startsWith('cfn=')) {
        const m = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line);
        if (!m) continue;
        if (m[2] !== undefined) names.set(m[1], m[2]);
        if (line.startsWith('fn=')) fn = names.get(m[1]);
      } else if (line.startsWith('calls=')) {
        callLine = true; // the next cost line is the call's inclusive cost, not this function's own
      } else if (/^[0-9+*-]/.test(line)) {
        if (callLine) callLine = false;
        else if (fn !== undefined) cost.set(fn, (cost.get(fn) ?? 0) + Number(line.split(' ')[1] ?? 0));
      }
    }
  }
  return cost;
}

/** Node's --perf-basic-prof map: start address, size and name of each piece of code V8 made. */
function perfMap(file) {
  const entries = fs.readFileSync(file, 'latin1').split('\n').filter(Boolean).map((line) => {
    const [start, size, ...name] = line.split(' ');
    return { start: parseInt(start, 16), end: parseInt(start, 16) + parseInt(size, 16), name: name.join(' ') };
  });
  return entries.sort((a, b) => a.start - b.start);
}

function byName(cost, map) {
  const find = (address) => {
    let lo = 0;
    let hi = map.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (map[mid].start <= address) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && address < map[hi].end ? map[hi].name : undefined;
  };
  const named = new Map();
  for (const [fn, value] of cost) {
    const address = /^0x([0-9a-f]+)$/.exec(fn);
    let name = address ? find(parseInt(address[1], 16)) ?? '(compiled code, not in the map)' : fn;
    // One name for a function whatever V8's tier ran it (~ interpreted, ^ baseline, + Maglev, * TurboFan).
    name = name.replace(/^JS:[~^+*]'?/, '').replace(/ (?:file:\/\/)?\S*\/(dist|node_modules)\//, ' $1/').replace(/:\d+:\d+$/, '').replace(/\(anonymous namespace\)::/g, '').replace(/\(.*$/s, (args) => (address ? args : '')).replace(/'\d+$/, '').slice(0, 110);
    named.set(name, (named.get(name) ?? 0) + value);
  }
  return named;
}

const serving = (args) => [...args, '--upstream', `http://127.0.0.1:${upstream.port}`, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--cert', files.cert, '--key', files.key, '--workers', String(WORKERS)];
const results = [];
for (const build of builds) {
  results.push(await measure(build.name, serving(['--expose-gc', build.entry]), /"listen":"https:\/\/127\.0\.0\.1:(\d+)"/));
  console.log(`${build.name}: ${Math.round(results.at(-1).perRequest)} instructions per request (${results.at(-1).requests} requests)`);
}
results.push(await measure('naive', [path.join(here, 'naive-undici.mjs'), files.cert, files.key, upstream.port, String(WORKERS)], /"port":(\d+)/));
console.log(`naive: ${Math.round(results.at(-1).perRequest)} instructions per request (${results.at(-1).requests} requests)`);

/**
 * What V8 does beside running the code, by the names of its C++: collecting garbage and
 * compiling (both come in bursts: whether a major collection falls in the window moves a
 * front's total by a tenth), and the rest, the work of the requests themselves.
 */
const KINDS = [
  ['collecting', /Scaveng|Marking|Sweep|MarkCompact|Evacuat|RememberedSet|SlotSet|BodyDescriptorBase|OnMoveEvent|heap::base::|v8::internal::Heap::|MemoryAllocator|ArrayBufferSweeper|MinorMS|PagedSpace|LargeObjectSpace|CppHeap|cppgc::/],
  ['compiling', /v8::internal::compiler::|maglev::|baseline::|v8::internal::Compiler|RegExpCompiler|RegExpBytecode|Parser|Scanner|interpreter::BytecodeGenerator|Zone::|v8::internal::wasm::/],
];
const kindOf = (name) => KINDS.find(([, re]) => re.test(name))?.[0] ?? 'running';
const parts = (result) => {
  const sums = { running: 0, collecting: 0, compiling: 0 };
  for (const [name, value] of result.named) sums[kindOf(name)] += value;
  return sums;
};
const naive = results.at(-1);
const own = (result) => [...result.named].filter(([name]) => / dist\//.test(name)).reduce((sum, [, value]) => sum + value, 0);
const naiveParts = parts(naive);
console.log(`\n| front | instructions per small request | × naive | running the requests | × naive | collecting garbage | compiling | in berth's own functions |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`);
for (const r of results) {
  const p = parts(r);
  console.log(`| ${r.name} | ${Math.round(r.perRequest)} | ${(r.perRequest / naive.perRequest).toFixed(3)} | ${Math.round(p.running)} | ${(p.running / naiveParts.running).toFixed(3)} | ${Math.round(p.collecting)} | ${Math.round(p.compiling)} | ${r === naive ? '' : Math.round(own(r))} |`);
}
for (const r of results) {
  console.log(`\n${r.name}: instructions per request in each function itself (its callees not counted)`);
  for (const [name, value] of [...r.named].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${String(Math.round(value)).padStart(7)}  ${name}`);
}
/** The functions whose own instructions differ most between two fronts. */
function differences(a, b) {
  console.log(`\n${a.name} against ${b.name}: the largest differences, instructions per request`);
  const names = new Set([...a.named.keys(), ...b.named.keys()]);
  const diff = [...names].map((name) => [name, (a.named.get(name) ?? 0) - (b.named.get(name) ?? 0)]).sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
  for (const [name, value] of diff.slice(0, TOP)) console.log(`${(value > 0 ? '+' : '') + Math.round(value)}`.padStart(7) + `  ${name}`);
}
for (const r of results.slice(0, -1)) differences(r, naive);
for (const r of results.slice(1, -1)) differences(results[0], r);
process.exit(0);
