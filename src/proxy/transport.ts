import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { ProxyError } from './errors.js';

/**
 * The upstream transport: one request on berth's keep-alive agent per client request,
 * the body streamed into it with backpressure. It is Node's own HTTP client and nothing
 * more (README, "Why not http-proxy"): what a generic proxy library gets wrong for a
 * registry (README, "What goes wrong behind a TLS front") cannot come back through an option.
 * - path and query go out byte-exact: `req.url` is the upstream request's path, never
 *   joined or re-encoded (the registry's `_state` is HMAC-signed);
 * - headers are the request's own, as the passes left them: nothing is appended;
 * - the body goes out only when the handler says berth saw it framed, else the upstream
 *   request ends after its headers;
 * - the upstream request dies with the client response, whenever the client leaves;
 * - a 101 that switches protocols (berth forwards no Upgrade) is the upstream's error.
 */

export interface TransportOptions {
  readonly upstream: URL;
  /** Connect timeout, ms. */
  readonly connectTimeout: number;
  /** Inactivity on the upstream connection, ms; 0 = none. */
  readonly responseTimeout: number;
}

export interface Exchange {
  /** The upstream's response headers have arrived; the callee owns proxyRes from here. */
  onResponse(proxyRes: http.IncomingMessage): void;
  /** The upstream request failed (before or after a response began). */
  onError(error: unknown): void;
}

export interface Transport {
  /**
   * Sends the request upstream. `body` false: the upstream request ends after its headers
   * and nothing of `req` is ever written to it (berth saw no framing for a body).
   */
  forward(req: http.IncomingMessage, res: http.ServerResponse, exchange: Exchange, body: boolean): void;
  close(): void;
}

/** How long an unused upstream connection is kept: well under common upstream idle limits (nginx: 75 s). */
const FREE_SOCKET_MS = 30_000;

export function createTransport(options: TransportOptions): Transport {
  const secure = options.upstream.protocol === 'https:';
  const agentOptions = { keepAlive: true, scheduling: 'lifo' as const, timeout: FREE_SOCKET_MS, maxFreeSockets: 256 };
  const agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  const request = secure ? https.request : http.request;
  const hostname = options.upstream.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = options.upstream.port || (secure ? '443' : '80');

  return {
    forward(req, res, exchange, body) {
      let proxyReq: http.ClientRequest;
      try {
        proxyReq = request({ agent, hostname, port, method: req.method, path: req.url, headers: req.headers });
      } catch (err) {
        // Node refuses a path or header it would not write (never one its parser let in).
        exchange.onError(new ProxyError('internal', { cause: err, detail: (err as NodeJS.ErrnoException).code }));
        return;
      }
      let failed = false;
      const fail = (err: unknown): void => {
        if (failed) return;
        failed = true;
        exchange.onError(err);
      };
      proxyReq.on('error', fail);
      req.on('error', fail);
      proxyReq.setTimeout(options.responseTimeout, () => proxyReq.destroy(new ProxyError('upstream_timeout')));
      proxyReq.once('socket', (socket: Socket) => watchConnect(proxyReq, socket, options.connectTimeout));
      proxyReq.once('response', (proxyRes: http.IncomingMessage) => exchange.onResponse(proxyRes));
      // Without a listener Node would drop the socket and leave the client waiting.
      proxyReq.once('upgrade', (_proxyRes: http.IncomingMessage, socket: Socket) => {
        socket.destroy();
        fail(new ProxyError('upstream_bad_response', { detail: 'status 101 to a request that asked for no upgrade' }));
      });
      // The client left (at any moment, not only while its body arrives): so does the upstream request.
      const clientGone = (): void => {
        if (!res.writableFinished && !proxyReq.destroyed) proxyReq.destroy(new ProxyError('client_gone'));
      };
      if (res.destroyed || req.socket.destroyed) clientGone();
      else res.once('close', clientGone);
      if (body) req.pipe(proxyReq);
      else proxyReq.end();
    },
    close() {
      agent.destroy();
    },
  };
}

/** The connect timeout, while the upstream socket is still connecting. */
function watchConnect(proxyReq: http.ClientRequest, socket: Socket, connectTimeout: number): void {
  if (!socket.connecting) return;
  const timer = setTimeout(() => proxyReq.destroy(new ProxyError('upstream_connect_timeout')), connectTimeout);
  timer.unref();
  socket.once('connect', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
}
