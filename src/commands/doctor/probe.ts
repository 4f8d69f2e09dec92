import crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { http } from '../../net/httpModule.js';
import https from 'node:https';

/** Somewhere doctor sends requests: the upstream directly, the running berth, or a token service. */
export interface Endpoint {
  readonly name: 'upstream' | 'berth' | 'realm' | 'storage';
  /** Where to connect: http(s)://host:port. */
  readonly connect: URL;
  /** TLS SNI to send and the name the certificate must cover (berth: publicOrigin's host). */
  readonly servername?: string;
  /** CAs to verify an https endpoint with; Node's default roots when unset. */
  readonly ca?: readonly string[];
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The first 64 KiB of the body, as text. */
  readonly body: string;
  /** From the first request byte to the last response byte, ms. */
  readonly ms: number;
}

export interface Ask {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** A body, or a number of random bytes to stream (with backpressure) as the body. */
  readonly body?: Buffer | number;
  readonly timeoutMs: number;
}

const BODY_KEEP = 64 * 1024;
const CHUNK = 1 << 20;

/** One request on a new connection. Rejects with the socket or timeout error (its code says which). */
export function send(endpoint: Endpoint, ask: Ask): Promise<Reply> {
  const started = process.hrtime.bigint();
  const url = endpoint.connect;
  const secure = url.protocol === 'https:';
  const headers: Record<string, string> = { ...ask.headers };
  if (typeof ask.body === 'number') headers['content-length'] = String(ask.body);
  else if (ask.body) headers['content-length'] = String(ask.body.length);
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      {
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port || (secure ? 443 : 80),
        method: ask.method ?? 'GET',
        path: ask.path,
        headers,
        agent: false,
        timeout: ask.timeoutMs,
        // Verified as a client verifies it: a certificate clients would refuse fails here too.
        ...(secure ? { servername: endpoint.servername ?? url.hostname, ...(endpoint.ca ? { ca: [...endpoint.ca] } : {}) } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < BODY_KEEP) body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${ask.timeoutMs} ms`), { code: 'TIMEOUT' })));
    req.on('error', reject);
    if (typeof ask.body !== 'number') {
      req.end(ask.body);
      return;
    }
    const chunk = crypto.randomBytes(Math.min(CHUNK, Math.max(1, ask.body)));
    let left = ask.body;
    const pump = (): void => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/** The error code of a failed request, or its message. */
export function errorCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code === 'TIMEOUT' ? e.message : (e.code ?? e.message);
}

/** One WWW-Authenticate challenge: its scheme and parameters (realm, service, scope). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

export function parseChallenge(value: string | undefined): Challenge | undefined {
  if (!value) return undefined;
  const match = /^\s*([A-Za-z][\w-]*)\s*(.*)$/.exec(value);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const p of match[2]!.matchAll(/([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3]!;
  return { scheme: match[1]!.toLowerCase(), params };
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
