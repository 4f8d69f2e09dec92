import net from 'node:net';

/** A loopback port free right now, for a process that must be told its port in advance. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on 127.0.0.1:port; throws after ~5 s or when `gone()` says the process died. */
export async function waitForPort(port: number, gone: () => string | undefined): Promise<void> {
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true))).on('error', () => resolve(false));
    });
    if (up) return;
    const why = gone();
    if (i > 100 || why !== undefined) throw new Error(why ?? `nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
