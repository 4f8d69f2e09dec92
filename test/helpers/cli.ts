import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WORKER_V8_FLAGS } from '../../src/server/cluster.js';

/** The built entry point; `npm test` builds it first (pretest). */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
/** As the shebang, npm start and the image run it (test/unit/server/worker-flags.test.ts holds them to this list). */
export const NODE_FLAGS = WORKER_V8_FLAGS;

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Environment without any BERTH_* from the developer's shell. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_')));
  return { ...env, ...extra };
}

export function runCli(args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Finished> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does)`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], { cwd: options.cwd, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface RunningCli {
  readonly child: ChildProcess;
  readonly port: number;
  /** The admin listener's port; 0 when it is off. */
  readonly adminPort: number;
  /** Every JSON log line so far, from the primary and the workers. */
  readonly lines: Record<string, unknown>[];
  /** Resolves with the first log line (written already or later) that matches. */
  waitForLine(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

/** Starts berth as a child and resolves once it logs that it is serving, with its port. */
export function startCli(args: readonly string[], options: { cwd?: string; env?: Record<string, string>; nodeFlags?: readonly string[]; wrapper?: readonly string[] } = {}): Promise<RunningCli> {
  return new Promise((resolve, reject) => {
    // Tests run side by side: each berth gets its own admin port unless a test picks one.
    const own = args.includes('--admin-listen') || options.env?.BERTH_ADMIN_LISTEN !== undefined;
    // A wrapper (e.g. prlimit with its options) runs node as its last argument.
    const [command, ...wrapperArgs] = [...(options.wrapper ?? []), process.execPath];
    const nodeArgs = [...(options.nodeFlags ?? NODE_FLAGS), CLI, ...args, ...(own ? [] : ['--admin-listen', '127.0.0.1:0'])];
    const child = spawn(command!, [...wrapperArgs, ...nodeArgs], { cwd: options.cwd, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Record<string, unknown>[] = [];
    const events = new EventEmitter();
    // Scans by index: several lines can arrive in one chunk, emitted before a waiter re-arms.
    const waitForLine = async (match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
      for (let i = 0; ; i++) {
        while (i >= lines.length) await once(events, 'line');
        if (match(lines[i]!)) return lines[i]!;
      }
    };
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        events.emit('line', line);
        if (line.msg === 'berth is serving') {
          const port = (address: unknown): number => Number(/:(\d+)$/.exec(String(address))?.[1] ?? 0);
          resolve({ child, port: port(line.listen), adminPort: port(line.admin), lines, waitForLine });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`berth exited with ${code}: ${stderr}`)));
  });
}

/**
 * Sends SIGTERM and resolves with the exit code once the process has exited and its
 * output is all read. A berth still running after 30 s is killed, and the test fails
 * with its process tree's last words rather than a bare timeout.
 */
export async function stopCli(child: ChildProcess): Promise<number | null> {
  const closed = once(child, 'close') as Promise<[number | null]>;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<'stuck'>((resolve) => (timer = setTimeout(() => resolve('stuck'), 30_000)));
  const outcome = await Promise.race([closed, stuck]);
  clearTimeout(timer);
  if (outcome !== 'stuck') return outcome[0];
  const tree = spawnSync('ps', ['-o', 'pid,ppid,stat,args', '--ppid', String(child.pid), '-p', String(child.pid)]).stdout?.toString() ?? '';
  child.kill('SIGKILL');
  for (const worker of tree.split('\n').slice(1)) {
    const pid = Number(worker.trim().split(/\s+/)[0]);
    if (pid && pid !== child.pid) process.kill(pid, 'SIGKILL');
  }
  throw new Error(`berth did not stop within 30 s of SIGTERM; processes:\n${tree}`);
}
