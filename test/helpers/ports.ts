import fs from 'node:fs';
import net from 'node:net';

/**
 * A loopback port free right now, for a process that must be told its port in advance
 * (nginx's and HAProxy's configs, a berth whose publicOrigin or admin flag names it).
 * Another process may take it before that one binds it: start such a process through
 * onFreePort, which notices and tries another port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** An error that says the port was taken first: onFreePort tries another. */
export const PORT_TAKEN = /EADDRINUSE|address already in use|cannot bind|taken by another process/i;

/**
 * Starts something on a port found free, and again on another when the port was taken
 * between the two (the start rejects with an error PORT_TAKEN matches), up to `attempts`.
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    const port = await freePort();
    try {
      return await start(port);
    } catch (err) {
      if (i >= attempts || !PORT_TAKEN.test((err as Error).message)) throw err;
    }
  }
}

/** Whether process `pid` holds a socket listening on TCP `port` (Linux: /proc; elsewhere not known, so true). */
export function listensOn(pid: number, port: number): boolean {
  if (process.platform !== 'linux') return true;
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const listening = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(table, 'latin1');
    } catch {
      continue;
    }
    // local_address is ADDR:PORT in hex; state 0A is LISTEN; the inode is the tenth field.
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${hex}`) && f[3] === '0A') listening.add(f[9]!);
    }
  }
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return listening.has(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
    } catch {
      return false;
    }
  });
}

/**
 * Resolves once something accepts connections on 127.0.0.1:port; throws after ~5 s or when
 * `gone()` says the process died. With `pid`, the listener must be that process's: a port
 * another process took first is reported as taken (onFreePort then tries another).
 */
export async function waitForPort(port: number, gone: () => string | undefined, pid?: number): Promise<void> {
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true))).on('error', () => resolve(false));
    });
    if (up && (pid === undefined || listensOn(pid, port))) return;
    const why = gone();
    if (why !== undefined) throw new Error(why);
    if (i > 100) throw new Error(up ? `port ${port} taken by another process` : `nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
