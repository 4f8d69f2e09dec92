import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Test } from 'tap';

/** One request as the upstream's own parser framed it. */
export interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  /** The upstream connection it came on (0, 1, …, in order of connection). */
  readonly connection: number;
}

export interface Recorder {
  readonly url: string;
  /** Every request the upstream parsed, complete with its body, in order. */
  readonly requests: Recorded[];
  /** The exact bytes berth wrote on each upstream connection. */
  readonly bytes: Buffer[][];
  /** What the upstream's parser refused (bytes it could not read as a request). */
  readonly parseErrors: string[];
}

/**
 * A recording upstream: a plain Node HTTP server that answers every request `200 {}` and
 * keeps, per connection, the bytes it received and the requests its parser made of them.
 * It shows what berth really forwards: a body sent without framing shows up as one more
 * request, or as bytes the parser refused.
 */
export async function startRecorder(t: Test): Promise<Recorder> {
  const requests: Recorded[] = [];
  const bytes: Buffer[][] = [];
  const parseErrors: string[] = [];
  const ids = new WeakMap<Socket, number>();
  const server = http.createServer({ requestTimeout: 0, maxHeaderSize: 256 * 1024 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks), connection: ids.get(req.socket) ?? -1 });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}');
    });
  });
  server.maxHeadersCount = 0;
  server.on('connection', (socket: Socket) => {
    const received: Buffer[] = [];
    ids.set(socket, bytes.length);
    bytes.push(received);
    socket.on('data', (d: Buffer) => received.push(d));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A reset, or a connection closed mid-request (berth dropping the upstream side of a
    // request it gave up), is no parse error.
    if (err.code?.startsWith('HPE_') && err.code !== 'HPE_INVALID_EOF_STATE') parseErrors.push(err.code);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    bytes,
    parseErrors,
  };
}
