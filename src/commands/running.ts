import fs from 'node:fs';
import path from 'node:path';

/**
 * The berth server running beside a `berth check --as-running`: its flags, its BERTH_*
 * environment and its working directory, read from /proc. In a container the health
 * check runs as a new process that sees the image's ENV but not the flags given to
 * `docker run` after the image name; reading them from the server makes the check test
 * what is actually running, however it was configured.
 */
export interface RunningServer {
  readonly pid: number;
  /** What follows the script on its command line. */
  readonly args: readonly string[];
  /** Its BERTH_* variables; undefined when not readable (another user's process). */
  readonly env: Readonly<Record<string, string>> | undefined;
  /** Its working directory (relative paths in its flags are relative to it), when readable. */
  readonly cwd: string | undefined;
}

/** What berth's command line looks like: node [node options] …/cli.js or …/berth, then berth's own arguments. */
const SCRIPT = /(^|\/)(cli\.js|berth)$/;
const SUBCOMMANDS = new Set(['check', 'doctor']);

/**
 * Finds the server: the given pid, or else PID 1 (berth is the entrypoint) or, when PID 1
 * is an init (docker run --init, tini), the one berth server among its children. Cluster
 * workers (NODE_UNIQUE_ID set) are not servers of their own. Throws with what it found.
 */
export function findRunningServer(options: { pid?: number; proc?: string } = {}): RunningServer {
  const proc = options.proc ?? '/proc';
  if (options.pid !== undefined) {
    const server = serverAt(proc, options.pid);
    if (server) return server;
    const parent = parentOf(proc, options.pid);
    if (isWorker(proc, options.pid) && parent !== undefined && serverAt(proc, parent)) {
      throw new Error(`process ${options.pid} is a worker of the berth server ${parent}: use --as-running=${parent}`);
    }
    throw new Error(`process ${options.pid} is not a berth server (${describe(proc, options.pid)})`);
  }
  const first = serverAt(proc, 1);
  if (first) return first;
  const servers = childrenOf(proc, 1)
    .map((pid) => serverAt(proc, pid))
    .filter((s): s is RunningServer => s !== undefined);
  if (servers.length === 1) return servers[0]!;
  if (servers.length === 0) throw new Error(`no berth server found: PID 1 is ${describe(proc, 1)}, and none of its children is berth`);
  throw new Error(`several berth servers run here (pids ${servers.map((s) => s.pid).join(', ')}): name one with --as-running=PID`);
}

function serverAt(proc: string, pid: number): RunningServer | undefined {
  const argv = readNulSeparated(path.join(proc, String(pid), 'cmdline'));
  if (argv === undefined || argv.length === 0) return undefined; // gone, or a kernel thread
  // Past the interpreter and its options to the script.
  let i = 1;
  while (i < argv.length && argv[i]!.startsWith('-')) i++;
  if (!SCRIPT.test(argv[i] ?? '')) return undefined;
  const args = argv.slice(i + 1);
  if (SUBCOMMANDS.has(args[0] ?? '')) return undefined;
  const environ = readNulSeparated(path.join(proc, String(pid), 'environ'));
  const env: Record<string, string> = {};
  let worker = false;
  for (const entry of environ ?? []) {
    const eq = entry.indexOf('=');
    if (eq < 1) continue;
    const name = entry.slice(0, eq);
    if (name === 'NODE_UNIQUE_ID') worker = true;
    if (name.startsWith('BERTH_')) env[name] = entry.slice(eq + 1);
  }
  if (worker) return undefined;
  let cwd: string | undefined;
  try {
    cwd = fs.readlinkSync(path.join(proc, String(pid), 'cwd'));
  } catch {
    cwd = undefined;
  }
  return { pid, args, env: environ === undefined ? undefined : env, cwd };
}

function isWorker(proc: string, pid: number): boolean {
  return (readNulSeparated(path.join(proc, String(pid), 'environ')) ?? []).some((entry) => entry.startsWith('NODE_UNIQUE_ID='));
}

/** The parent's pid, from /proc/<pid>/stat (its fourth field, after the parenthesised name). */
function parentOf(proc: string, pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(path.join(proc, String(pid), 'stat'), 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function childrenOf(proc: string, pid: number): number[] {
  try {
    return fs
      .readFileSync(path.join(proc, String(pid), 'task', String(pid), 'children'), 'utf8')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function readNulSeparated(file: string): string[] | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text === '' ? [] : text.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

function describe(proc: string, pid: number): string {
  const argv = readNulSeparated(path.join(proc, String(pid), 'cmdline'));
  return argv === undefined ? 'not readable' : `"${argv.join(' ').slice(0, 120)}"`;
}
