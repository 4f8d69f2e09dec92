import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { findRunningServer } from '../../../src/commands/running.js';

// The discovery of `berth check --as-running` over a /proc laid out as in a container:
// berth as PID 1, or under an init (docker run --init, tini), with cluster workers.

interface Process {
  readonly cmdline: readonly string[];
  readonly environ?: readonly string[] | 'unreadable';
  readonly cwd?: string;
  readonly children?: readonly number[];
  readonly parent?: number;
}

function fakeProc(processes: Record<number, Process>): string {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-proc-'));
  for (const [pid, p] of Object.entries(processes)) {
    const dir = path.join(proc, pid);
    fs.mkdirSync(path.join(dir, 'task', pid), { recursive: true });
    fs.writeFileSync(path.join(dir, 'cmdline'), p.cmdline.map((a) => `${a}\0`).join(''));
    if (p.environ !== 'unreadable') fs.writeFileSync(path.join(dir, 'environ'), (p.environ ?? []).map((a) => `${a}\0`).join(''));
    if (p.cwd) fs.symlinkSync(p.cwd, path.join(dir, 'cwd'));
    fs.writeFileSync(path.join(dir, 'task', pid, 'children'), (p.children ?? []).join(' ') + (p.children?.length ? ' ' : ''));
    fs.writeFileSync(path.join(dir, 'stat'), `${pid} (node) S ${p.parent ?? 0} 1 1 0 -1 4194560\n`);
  }
  return proc;
}

const NODE = ['node', '--disable-warning=DEP0060', '--max-semi-space-size=4'];
const server = (...args: string[]): Process => ({
  cmdline: [...NODE, 'dist/cli.js', ...args],
  environ: ['PATH=/usr/bin', 'BERTH_UPSTREAM=http://harbor-nginx:8080', 'BERTH_LISTEN=:8443', 'HOME=/home/node'],
  cwd: '/app',
  children: [7, 8],
});
const worker: Process = { cmdline: [...NODE, 'dist/cli.js', '--upstream', 'http://x'], environ: ['NODE_UNIQUE_ID=1', 'BERTH_UPSTREAM=http://x'], parent: 1 };

t.test('berth as PID 1 (the image entrypoint): its arguments, BERTH_* variables and directory', async (t) => {
  const proc = fakeProc({ 1: server('--admin-listen', ':9444', '--config', 'conf/berth.yaml'), 7: worker, 8: worker });
  t.same(findRunningServer({ proc }), {
    pid: 1,
    args: ['--admin-listen', ':9444', '--config', 'conf/berth.yaml'],
    env: { BERTH_UPSTREAM: 'http://harbor-nginx:8080', BERTH_LISTEN: ':8443' },
    cwd: '/app',
  });
});

t.test('under an init: the one berth server among its children; workers and subcommands are not servers', async (t) => {
  const proc = fakeProc({
    1: { cmdline: ['/sbin/docker-init', '--', 'node', 'dist/cli.js'], children: [6, 9] },
    6: { ...server(), children: [7, 8] },
    7: worker,
    8: worker,
    9: { cmdline: [...NODE, 'dist/cli.js', 'check', '--as-running'] },
  });
  t.match(findRunningServer({ proc }), { pid: 6, args: [] });
});

t.test('installed as a command: node …/bin/berth', async (t) => {
  const proc = fakeProc({ 1: { cmdline: ['node', '--disable-warning=DEP0060', '/usr/local/bin/berth', '--workers', '1'] } });
  t.match(findRunningServer({ proc }), { pid: 1, args: ['--workers', '1'], env: {} });
});

t.test("another user's process: no environment, no directory; the check keeps its own", async (t) => {
  const proc = fakeProc({ 1: { cmdline: ['node', 'dist/cli.js'], environ: 'unreadable' } });
  t.same(findRunningServer({ proc }), { pid: 1, args: [], env: undefined, cwd: undefined });
});

t.test('nothing to find, or too much: a clear error', async (t) => {
  t.throws(() => findRunningServer({ proc: fakeProc({ 1: { cmdline: ['/sbin/tini', '--', 'sh'], children: [5] }, 5: { cmdline: ['sh'] } }) }), {
    message: 'no berth server found: PID 1 is "/sbin/tini -- sh", and none of its children is berth',
  });
  t.throws(() => findRunningServer({ proc: fakeProc({ 1: { cmdline: ['systemd'], children: [20, 30] }, 20: server(), 30: server() }) }), {
    message: 'several berth servers run here (pids 20, 30): name one with --as-running=PID',
  });
  const proc = fakeProc({ 1: server(), 7: worker, 12: { cmdline: ['node', 'dist/cli.js', 'doctor'] } });
  t.match(findRunningServer({ proc, pid: 1 }), { pid: 1 });
  t.throws(() => findRunningServer({ proc, pid: 7 }), { message: 'process 7 is a worker of the berth server 1: use --as-running=1' });
  t.throws(() => findRunningServer({ proc, pid: 12 }), { message: 'process 12 is not a berth server ("node dist/cli.js doctor")' });
  t.throws(() => findRunningServer({ proc, pid: 99 }), { message: 'process 99 is not a berth server (not readable)' });
});
