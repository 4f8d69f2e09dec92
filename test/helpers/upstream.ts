import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

export interface TestUpstream {
  readonly server: http.Server;
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Every request that reached the upstream, with its whole body, in order of completion. */
  readonly seen: Seen[];
}

/**
 * A plain-HTTP upstream written in the test. The handler gets the request with its body
 * already read, unless `streaming` is set, when it gets the raw request to read itself.
 */
export async function startUpstream(
  t: Test,
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void,
  options: { streaming?: boolean } = {},
): Promise<TestUpstream> {
  const seen: Seen[] = [];
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
    if (options.streaming) {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
      handler(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { server, port, url: `http://127.0.0.1:${port}`, seen };
}
