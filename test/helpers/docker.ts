import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

/**
 * Debian's docker.io as a client-side daemon of the test's own: its own data and exec
 * roots and socket, no bridge, no iptables (it only pushes and pulls, never runs a
 * container). Needs root, as dockerd does; .ci/run installs docker.io.
 */
export interface TestDocker {
  /** docker with this daemon's socket and a private client config (login). */
  run(args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }>;
  readonly socket: string;
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Why the Docker test cannot run here, or undefined when it can. Under CI, a missing daemon fails the run. */
export function dockerMissing(): string | undefined {
  const why =
    which('dockerd') === undefined || which('docker') === undefined ? 'docker.io is not installed (apt-get install docker.io); CI installs it'
    : process.getuid?.() !== 0 ? 'dockerd needs root'
    : undefined;
  if (why !== undefined && process.env.CI) throw new Error(`CI is set but the Docker test cannot run: ${why}`);
  return why;
}

export async function startDocker(t: Test): Promise<TestDocker> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-dockerd-'));
  const socket = path.join(root, 'docker.sock');
  const config = path.join(root, 'client');
  fs.mkdirSync(config);
  const daemon = spawn(
    'dockerd',
    ['--data-root', path.join(root, 'data'), '--exec-root', path.join(root, 'exec'), '--pidfile', path.join(root, 'docker.pid'), '--host', `unix://${socket}`, '--bridge=none', '--iptables=false', '--ip-masq=false'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  daemon.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  t.teardown(async () => {
    if (daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((resolve) => daemon.once('exit', resolve));
    }
    fs.rmSync(root, { recursive: true, force: true });
  });
  const run = (args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = execFile('docker', ['-H', `unix://${socket}`, ...args], { maxBuffer: 64 << 20, env: { ...process.env, DOCKER_CONFIG: config } }, (err, stdout, stderr) => {
        if (err) reject(new Error(`docker ${args.join(' ')} failed: ${stderr || err.message}`));
        else resolve({ stdout, stderr });
      });
      if (input !== undefined) child.stdin!.end(input);
    });
  for (let i = 0; ; i++) {
    if (daemon.exitCode !== null) throw new Error(`dockerd exited (${daemon.exitCode}): ${log}`);
    if (fs.existsSync(socket) && (await run(['version', '--format', '{{.Server.Version}}']).then(() => true, () => false))) break;
    if (i > 100) throw new Error(`dockerd did not answer in 30 s: ${log}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  return { run, socket };
}

/** Makes the daemon trust `caFile` for a registry at host:port, as an operator does; removed after the test. */
export function trustRegistryCa(t: Test, hostPort: string, caFile: string): void {
  const dir = path.join('/etc/docker/certs.d', hostPort);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(caFile, path.join(dir, 'ca.crt'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
}
