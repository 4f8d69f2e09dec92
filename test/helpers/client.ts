import crypto from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import type { TestBerth } from './berth.js';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

export interface Ask {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string | string[]>;
  readonly body?: Buffer | string | AsyncIterable<Buffer>;
  /** TLS SNI to send (default "localhost"; "" sends none). The certificate is still checked against the test CA. */
  readonly sni?: string;
}

/** One request to berth over TLS verified against the test CA; a new connection each time. */
export function ask(tb: Pick<TestBerth, 'port'> & { readonly pki: { readonly ca: string } }, q: Ask): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: q.sni ?? 'localhost',
        // Another SNI than the certificate's names: keep the CA check, skip the name check.
        ...(q.sni === undefined ? {} : { checkServerIdentity: () => undefined }),
        port: tb.port,
        method: q.method ?? 'GET',
        path: q.path,
        headers: { host: `localhost:${tb.port}`, ...q.headers },
        ca: tb.pki.ca,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    const body = q.body;
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      req.end(body);
      return;
    }
    void (async () => {
      for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      req.end();
    })().catch(reject);
  });
}

/** A raw TLS connection to berth, for requests a well-behaved client would not send. */
export function connectRaw(tb: TestBerth): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: tb.port, ca: tb.pki.ca }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Sends bytes exactly as given over a new TLS connection and resolves with what came
 * back once `done` says the reply is complete (by default: the end of the first header
 * section). The socket is closed afterwards.
 */
export async function rawExchange(tb: TestBerth, request: string, done: (reply: string) => boolean = (r) => r.includes('\r\n\r\n')): Promise<string> {
  const socket = await connectRaw(tb);
  try {
    return await new Promise<string>((resolve, reject) => {
      let reply = '';
      socket.on('data', (d: Buffer) => {
        reply += d.toString('latin1');
        if (done(reply)) resolve(reply);
      });
      socket.on('close', () => reject(new Error(`connection closed; reply so far: ${JSON.stringify(reply)}`)));
      socket.write(request);
    });
  } finally {
    socket.destroy();
  }
}

/**
 * Sends a request whose body is still going out when the answer arrives, the way Docker's
 * client streams a layer: the head (request line and headers, without the blank line) and
 * a first piece, then, once the answer is in, the rest. Resolves with the answer, the
 * client's errors, the bytes sent, and whether the server closed the connection after.
 */
export async function bodyAfterAnswer(socket: net.Socket, head: string, total: number): Promise<{ reply: string; errors: string[]; sent: number; endedByServer: boolean }> {
  const errors: string[] = [];
  socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
  let reply = '';
  socket.on('data', (d: Buffer) => (reply += d.toString()));
  const chunk = crypto.randomBytes(256 << 10);
  socket.write(`${head}Content-Length: ${total}\r\n\r\n`);
  socket.write(chunk);
  while (!reply.includes('\r\n\r\n') && errors.length === 0 && !socket.destroyed) await sleep(5);
  await sleep(100); // time for the server to close the connection, if it were going to
  let sent = chunk.length;
  while (sent < total && errors.length === 0 && !socket.destroyed) {
    if (!socket.write(chunk)) await once(socket, 'drain');
    sent += chunk.length;
  }
  let endedByServer = false;
  if (errors.length === 0 && !socket.destroyed) {
    endedByServer = await Promise.race([once(socket, 'end').then(() => true), sleep(5_000).then(() => false)]);
  }
  socket.destroy();
  return { reply, errors, sent, endedByServer };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Sends bytes exactly as given on a new TLS connection and resolves with everything berth
 * sent back until it closed the connection, or until no byte came for `first` ms (before
 * any reply) or `after` ms (once replying): the test then closes the connection itself.
 */
export async function converse(tb: TestBerth, bytes: string, quiet: { first?: number; after?: number } = {}): Promise<string> {
  const { first = 1500, after = 500 } = quiet;
  const socket = await connectRaw(tb);
  return new Promise((resolve) => {
    let reply = '';
    let timer = setTimeout(() => socket.destroy(), first);
    socket.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(() => socket.destroy(), after);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
    socket.write(bytes, 'latin1');
  });
}
