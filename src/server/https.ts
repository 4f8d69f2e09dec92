import type http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/validate.js';
import { HandshakeFailures } from '../observe/handshakeFailures.js';
import type { ClientIdle } from '../net/clientIdle.js';
import type { Connections } from '../net/connections.js';
import { headerTimeout } from '../net/headerTimeout.js';
import { HEADER_FIELDS_LIMIT } from '../proxy/handler.js';
import { TLS_PROFILE } from '../tls/profile.js';
import type { TicketKeySource } from '../tls/ticketKeys.js';

export interface HttpsServerOptions {
  readonly config: Config;
  /** Unset while ACME has issued none: handshakes fail until one is put into service. */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly logger: Logger;
  readonly handler: http.RequestListener;
  /** timeouts.clientIdle and its exception for requests waiting on the upstream. */
  readonly clientIdle: ClientIdle;
  /** The listener's connections, for the client address in log lines. */
  readonly connections: Connections;
  /** Session ticket keys and their rotation (tls/ticketKeys.ts); Node's random ones when unset. */
  readonly ticketKeys?: TicketKeySource;
}

/** Node's parser limit; berth's own is lower (HEADER_LIMIT, proxy/handler.ts). */
const PARSER_HEADER_LIMIT = 64 * 1024;

/** Answers for parse errors Node reports before a request exists; the connection is closed after. */
const CLIENT_ERROR_STATUS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/** Marks a client socket whose TLS handshake completed. */
const SECURED = Symbol('berth.secured');
type Secured = Socket & { [SECURED]?: boolean };

/** Node 24.12's server option, not yet in the Node 22 types berth builds against. */
const EMPTY_REQUESTS: object = { optimizeEmptyRequests: true };

/**
 * The TLS listener. Node's defaults that break registry pushes are replaced
 * (README, "What goes wrong behind a TLS front"): no whole-request timeout, since a 30 GB
 * push keeps one request open for hours; inactivity limits instead.
 */
export function createHttpsServer(options: HttpsServerOptions): https.Server {
  const { config, logger } = options;
  const server = https.createServer(
    {
      ...TLS_PROFILE,
      ...(options.cert !== undefined && options.key !== undefined ? { cert: options.cert, key: options.key } : {}),
      ...(options.ticketKeys ? { ticketKeys: options.ticketKeys.current() } : {}),
      requestTimeout: 0,
      ...headerTimeout(config.timeouts.headers),
      // Node's own default is 120 s, long enough for idle or dribbling connections to hold
      // every slot of limits.connections (nginx: ssl_handshake_timeout).
      handshakeTimeout: config.timeouts.handshake,
      keepAliveTimeout: config.timeouts.keepAlive,
      // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3, and
      // berth's framing, proxy/request/hopByHop.ts): Node 24 hands it over already ended
      // instead of running the stream's events for an empty body (Node 22 ignores the option).
      ...EMPTY_REQUESTS,
      // Never enable insecureHTTPParser: the strict parser is what keeps smuggled requests out.
      insecureHTTPParser: false,
      // Node's parser cuts anything beyond this with a bare 431; berth's own, lower limit
      // (HEADER_LIMIT in proxy/handler.ts) answers in the registry's error shape, knowing the request's path.
      maxHeaderSize: PARSER_HEADER_LIMIT,
    },
    options.handler,
  );
  options.clientIdle.enforceOn(server);
  // One more than berth serves, so that a request with too many fields is seen as such
  // (HEADER_FIELDS_LIMIT, proxy/handler.ts) and refused.
  server.maxHeadersCount = HEADER_FIELDS_LIMIT + 1;
  if (options.ticketKeys) {
    options.ticketKeys.onChange((keys) => server.setTicketKeys(keys));
    // In a cluster worker, Node replaces a server's ticket keys when it listens with those
    // the primary kept from the first worker ever to listen (net.Server _setServerData); the
    // keys given here are already the shared ones, and may be newer.
    (server as unknown as { _setServerData: (data: unknown) => void })._setServerData = () => undefined;
  }
  // https.Server reports TLS errors (a handshake timeout, a bad ClientHello) as clientError
  // too: before the handshake there is no HTTP to answer in, so the socket is just closed.
  // (A mark on the socket rather than a WeakSet: set on every connection.)
  server.on('secureConnection', (socket: Secured) => (socket[SECURED] = true));
  server.on('clientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: Secured) => {
    if (socket[SECURED] !== true) {
      logger.debug({ err: { code: err.code, message: err.message } }, 'client error before the TLS handshake completed');
      return void socket.destroy();
    }
    if (err.syscall !== undefined) {
      // The connection failed under the parser (a reset, a broken pipe): nothing was refused.
      // A client that resets a kept-alive connection it is done with is common; a request it
      // cut short is logged with its own line (client_gone).
      logger.debug({ client: options.connections.clientOf(socket), code: err.code }, 'client connection failed');
      return void socket.destroy();
    }
    const inFlight = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (err.code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a request that said `Connection: close`: never parsed, never forwarded.
      // The answer in progress is still delivered; the connection closes after it.
      logger.debug({ client: options.connections.clientOf(socket) }, 'bytes after Connection: close ignored');
      if (inFlight && !inFlight.writableFinished) return;
      return void socket.destroy();
    }
    // Never the request's content: only why the parser refused it.
    logger.info({ client: options.connections.clientOf(socket), code: err.code, reason: err.reason ?? err.message }, 'request refused by the HTTP parser');
    // As Node's default does: answer only if no response has started on this connection.
    if (socket.writable && (!inFlight || !inFlight.headersSent)) {
      const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    } else {
      socket.destroy();
    }
  });
  // At warn, summed per minute: a client refusing the certificate must show in the default logs.
  const handshakeFailures = new HandshakeFailures(logger);
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => handshakeFailures.failed(err, options.connections.clientOf(socket)));
  server.on('close', () => handshakeFailures.close());
  return server;
}

/**
 * limits.requestsPerConnection: the last allowed answer says "Connection: close" and the
 * connection is closed after it. (Node's maxRequestsPerSocket sends the header but leaves
 * the connection open until its keep-alive timeout.) Before berth's handler, which may
 * answer at once. Returns the setter a settings reload calls (0 = no limit); requests are
 * counted from the moment a limit is first set.
 */
export function limitRequestsPerConnection(server: https.Server, initial: number): (limit: number) => void {
  let limit = 0;
  let counting = false;
  const served = new WeakMap<Socket, number>();
  const set = (next: number): void => {
    limit = next;
    if (limit === 0 || counting) return;
    counting = true;
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (limit === 0) return;
      const n = (served.get(req.socket) ?? 0) + 1;
      served.set(req.socket, n);
      if (n >= limit) res.shouldKeepAlive = false;
    });
  };
  set(initial);
  return set;
}
