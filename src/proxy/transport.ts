import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import { ProxyError } from './errors.js';

/**
 * The one module that knows http-proxy. It opens the upstream request with berth's
 * keep-alive agent and streams the request body into it with backpressure; everything
 * http-proxy gets wrong for a registry (REGISTRY-NOTES.md) is handled here or in the
 * passes, never through its header or rewrite options:
 * - path and query go out byte-exact: http-proxy joins paths with a regex that collapses
 *   "//", so berth hands it the outgoing options object with `path` fixed to req.url;
 * - only its `stream` pass runs: `XHeaders` appends to client-sent forwarded headers and
 *   `deleteLength` would send a chunked DELETE body behind `Content-Length: 0`;
 * - the response is handled by the caller (`selfHandleResponse`), since its Location
 *   rewriting skips 202 and 204 and it uses a bare pipe;
 * - the upstream request dies with the client response, whenever the client leaves
 *   (http-proxy only reacts to `aborted`, i.e. while the body is still arriving).
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
  const hostname = options.upstream.hostname.replace(/^\[(.*)\]$/, '$1');
  const target = {
    protocol: options.upstream.protocol,
    host: hostname,
    hostname,
    port: options.upstream.port || (secure ? '443' : '80'),
  };
  const proxy = httpProxy.createProxyServer({
    target: target as unknown as httpProxy.ProxyTargetUrl,
    agent,
    xfwd: false,
    changeOrigin: false,
    toProxy: true,
    prependPath: false,
    selfHandleResponse: true,
    secure: true,
  });
  // `webPasses` is http-proxy's list of incoming passes; see the module comment.
  const internals = proxy as unknown as { webPasses: { name: string }[] };
  internals.webPasses = internals.webPasses.filter((pass) => pass.name === 'stream');

  const exchanges = new WeakMap<http.IncomingMessage, Exchange>();

  // http-proxy skips this event for requests carrying Expect; the hop-by-hop pass removes
  // Expect, so every request gets its timeouts and its tie to the client here.
  proxy.on('proxyReq', (proxyReq, req, res) => {
    if (proxyReq.path !== req.url) {
      // Unreachable while the fixed path below holds; refuse rather than send a changed URL.
      proxyReq.destroy(new ProxyError('internal', { detail: 'request path could not be preserved' }));
      return;
    }
    watchUpstream(proxyReq, options);
    // berth forwards no Upgrade, so a 101 that switches protocols is the upstream's error;
    // without a listener Node would drop the socket and leave the client waiting.
    proxyReq.once('upgrade', (_proxyRes: http.IncomingMessage, socket: Socket) => {
      socket.destroy();
      exchanges.get(req)?.onError(new ProxyError('upstream_bad_response', { detail: 'status 101 to a request that asked for no upgrade' }));
    });
    const clientGone = (): void => {
      if (!res.writableFinished && !proxyReq.destroyed) proxyReq.destroy(new ProxyError('client_gone'));
    };
    if (res.destroyed || req.socket.destroyed) clientGone();
    else res.once('close', clientGone);
  });

  proxy.on('proxyRes', (proxyRes, req) => {
    const exchange = exchanges.get(req);
    if (exchange) exchange.onResponse(proxyRes);
    else proxyRes.destroy();
  });

  // http-proxy reports an upstream reset after the client left here instead of the callback.
  proxy.on('econnreset', () => undefined);

  return {
    forward(req, res, exchange, body) {
      exchanges.set(req, exchange);
      // http-proxy pipes `buffer`, when given, instead of the request.
      const options = body ? { ssl: exactPath(req.url ?? '/') } : { ssl: exactPath(req.url ?? '/'), buffer: NO_BODY };
      proxy.web(req, res, options as httpProxy.ServerOptions, (err) => exchange.onError(err));
    },
    close() {
      agent.destroy();
      proxy.close();
    },
  };
}

/** A source with nothing in it: the upstream request ends after its headers. */
const NO_BODY = { pipe: (destination: http.ClientRequest) => destination.end() };

/**
 * http-proxy builds the upstream request's options on top of `options.ssl` and then sets
 * `path` from its own join of target and request paths, which collapses "//" and would
 * turn "http:/" into "http://". A `path` that keeps the request's own value makes the
 * upstream see the request target byte-for-byte (the registry's `_state` is HMAC-signed).
 */
function exactPath(path: string): object {
  return Object.defineProperty({}, 'path', { enumerable: true, get: () => path, set: () => undefined });
}

/** Connect timeout, then inactivity timeout, on the upstream socket. */
function watchUpstream(proxyReq: http.ClientRequest, options: TransportOptions): void {
  proxyReq.setTimeout(options.responseTimeout, () => proxyReq.destroy(new ProxyError('upstream_timeout')));
  const socket = proxyReq.socket as Socket | null;
  if (socket?.connecting) {
    const timer = setTimeout(() => proxyReq.destroy(new ProxyError('upstream_connect_timeout')), options.connectTimeout);
    timer.unref();
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  }
}
