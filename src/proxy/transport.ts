import type http from 'node:http';
import type { BodyFraming } from './context.js';
import { ProxyError, classify } from './errors.js';
import { IdleSweep, type Watched } from './idleSweep.js';
import type { ExchangeSink, UpstreamConnection } from './upstream/connection.js';
import { UpstreamPool } from './upstream/pool.js';
import type { ParsedHead } from './upstream/responseHead.js';

/**
 * The upstream transport: berth's own HTTP/1.1 client (proxy/upstream/), with the body
 * streamed both ways under backpressure. It replaced undici's `Pool.dispatch`, which spent
 * about two fifths of a small request's CPU in a proxy that does nothing else (README, "The
 * transport"). What a generic proxy library gets wrong for a registry (README, "What goes
 * wrong behind a TLS front") cannot come back through an option:
 * - path and query go out byte-exact: `path` is the upstream request's path, never
 *   joined or re-encoded (the registry's `_state` is HMAC-signed);
 * - headers are the request's own, as the passes left them: nothing is added but
 *   `connection: keep-alive` and, for a body berth re-chunks, `transfer-encoding: chunked`;
 * - the body goes out only when the handler says berth saw it framed, and never more of it
 *   than its Content-Length; else the upstream request ends after its headers;
 * - the upstream's answer is read strictly (upstream/responseHead.ts): what could be framed
 *   two ways is refused, and a connection is reused only after an answer that ended exactly
 *   where its framing said;
 * - the upstream request dies with the client response, whenever the client leaves;
 * - no time limit but berth's: `timeouts.upstreamResponse` is one inactivity limit over the
 *   exchange, renewed by every chunk sent or received (IdleSweep), and
 *   `timeouts.upstreamConnect` bounds opening a connection;
 * - HTTP/1.1 only, one request at a time on a connection;
 * - a 101 that switches protocols (berth forwards no Upgrade) is the upstream's error, and
 *   so is a 100 (berth forwards no Expect); 102 and 103 are skipped;
 * - a GET or HEAD whose connection the upstream closes or resets before its answer's head
 *   is in (a kept-alive connection it cut as berth reused it: a Go server's or a balancer's
 *   idle timeout announces nothing) is sent once more, on a new connection, as nginx's
 *   `proxy_next_upstream error` does; a request with a body never is (its bytes are gone,
 *   and only the client can send them again).
 */

export interface TransportOptions {
  readonly upstream: URL;
  /** Connect timeout, ms. */
  readonly connectTimeout: number;
  /** Inactivity on an exchange with the upstream, ms; 0 = none. */
  readonly responseTimeout: number;
  /** An exception out of berth's own code while reading an answer (a bug): the exchange is dropped. */
  readonly onBug?: (err: unknown) => void;
  /** A GET or HEAD is sent again on a new connection: the one it went out on was cut before the answer's head. */
  readonly onRetry?: (retry: { readonly method: string; readonly path: string; readonly cause: unknown }) => void;
}

/** The upstream's status line and header lines, as received. */
export interface ResponseHead {
  readonly status: number;
  readonly statusMessage: string;
  /**
   * name, value, name, value… in the upstream's order and case, duplicates kept: an array
   * made for this answer, which the handler changes in place (its response passes).
   */
  readonly rawHeaders: string[];
}

export interface Exchange {
  /**
   * The upstream's answer began. The callee writes its head to the client response and
   * returns true for the transport to stream the body into it; false when it refused the
   * answer, which the transport then drops with its connection.
   */
  onResponse(head: ResponseHead): boolean;
  /** Bytes of the answer's body, as they go to the client. */
  onResponseBytes(count: number): void;
  /** The answer is complete, and ended on the client response. */
  onResponseEnd(): void;
  /** The exchange failed: before the answer began, or during its body. Called at most once. */
  onError(error: unknown): void;
}

export interface Forwarding {
  /** Ends the exchange early: the upstream connection, mid-request, is dropped. */
  abort(): void;
}

export interface Transport {
  /**
   * Sends the request upstream with its headers as they are. `body` 'none': the upstream
   * request ends after its headers and nothing of `req` is ever read for it.
   */
  forward(req: http.IncomingMessage, res: http.ServerResponse, exchange: Exchange, body: BodyFraming): Forwarding;
  /**
   * New time limits (a settings reload): the connect timeout for connections opened from
   * now on, the inactivity limit for exchanges that start from now on (those under way
   * keep the limit they started with).
   */
  setTimeouts(timeouts: { readonly connect: number; readonly response: number }): void;
  close(): void;
}

export function createTransport(options: TransportOptions): Transport {
  const sweepFor = (limit: number): IdleSweep<UpstreamExchange> | undefined => (limit > 0 ? new IdleSweep<UpstreamExchange>(limit) : undefined);
  let responseTimeout = options.responseTimeout;
  const pool = new UpstreamPool(options.upstream, options.connectTimeout, (err) => options.onBug?.(err));
  // An exchange keeps the sweep it started under: a replaced one stops once its last exchange ends.
  let idle = sweepFor(responseTimeout);
  const owner: ExchangeOwner = { pool, onRetry: options.onRetry };
  return {
    forward(req, res, exchange, body) {
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      const empty = body === 'none' || (body === 'length' && req.headers['content-length'] === '0');
      const framing = empty ? undefined : body;
      const upstreamExchange = new UpstreamExchange(req, res, exchange, idle, owner, method, path, framing);
      let head: string;
      try {
        head = requestHead(method, path, req.headers, framing === 'chunked');
      } catch (err) {
        upstreamExchange.onFail(err as Error, false);
        return upstreamExchange;
      }
      upstreamExchange.send(head, empty && (method === 'GET' || method === 'HEAD'));
      return upstreamExchange;
    },
    setTimeouts(timeouts) {
      pool.connectTimeout = timeouts.connect;
      if (timeouts.response === responseTimeout) return;
      responseTimeout = timeouts.response;
      idle = sweepFor(responseTimeout);
    },
    close() {
      idle?.stop();
      pool.close();
    },
  };
}

/** What every exchange shares: the pool, and who hears of a retry. */
interface ExchangeOwner {
  readonly pool: UpstreamPool;
  readonly onRetry: TransportOptions['onRetry'];
}

/** A value the upstream would read as more than one header line, or none. */
const LINE_BREAK = /[\0\r\n]/;
/** A request target that would not be one token on the request line. */
const NOT_A_TARGET = /[\0-\x20\x7f]/;

/**
 * The request line and header lines for the upstream. The passes have removed the
 * hop-by-hop headers and Expect; Node's parser checked every name and value it read, and the
 * passes write only checked values, but a line break in a value would make a second request
 * of it, so that is checked once more here.
 */
export function requestHead(method: string, path: string, headers: http.IncomingHttpHeaders, chunked: boolean): string {
  if (path.length === 0 || NOT_A_TARGET.test(path)) throw new ProxyError('bad_target', { detail: 'request target with a blank or control byte' });
  let head = `${method} ${path} HTTP/1.1\r\nconnection: keep-alive\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') {
      if (LINE_BREAK.test(value)) throw lineBreak(name);
      head += `${name}: ${value}\r\n`;
    } else {
      for (const one of value) {
        if (LINE_BREAK.test(one)) throw lineBreak(name);
        head += `${name}: ${one}\r\n`;
      }
    }
  }
  if (chunked) head += 'transfer-encoding: chunked\r\n';
  return head + '\r\n';
}

const lineBreak = (name: string): ProxyError => new ProxyError('internal', { detail: `a line break in the value of ${name}, not forwarded` });

/** One request on the pool: relays the connection's events to the handler and the body to the client. */
class UpstreamExchange implements ExchangeSink, Forwarding, Watched<UpstreamExchange> {
  private connection: UpstreamConnection | undefined = undefined;
  private done = false;
  /** Bytes moved since the last sweep (IdleSweep). */
  active = true;
  /** When a sweep first found it quiet, ms (performance.now()). */
  quietSince = 0;
  /** Its place in the IdleSweep's list. */
  watched = false;
  previousWatched: UpstreamExchange | undefined;
  nextWatched: UpstreamExchange | undefined;
  /** The head, kept while the request may be sent once more (a GET or HEAD, until its answer begins). */
  private again: string | undefined = undefined;
  /** Resumes the upstream's answer once the client response drains; made the first time it fills. */
  private resume: (() => void) | undefined;
  private readonly clientGone = (): void => {
    if (!this.done && !this.res.writableFinished) this.stop(new ProxyError('client_gone'));
  };

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly exchange: Exchange,
    private readonly idle: IdleSweep<UpstreamExchange> | undefined,
    private readonly owner: ExchangeOwner,
    private readonly method: string,
    private readonly path: string,
    private readonly framing: 'length' | 'chunked' | undefined,
  ) {
    idle?.watch(this);
    // The client left (at any moment, not only while its body arrives): so does the upstream
    // request. (on, not once: once wraps the listener in two objects per request; finish removes it.)
    res.on('close', this.clientGone);
  }

  /** Sends the request; `retriable`: once more on a new connection if the first is cut before an answer. */
  send(head: string, retriable: boolean): void {
    if (retriable) this.again = head;
    this.sendOn(false, head);
    // The client left before the exchange began.
    if (this.res.destroyed || this.req.socket?.destroyed) this.clientGone();
  }

  private sendOn(fresh: boolean, head: string): void {
    const connection = this.owner.pool.acquire(fresh);
    if (connection === undefined) {
      this.onFail(new ProxyError('upstream_unreachable', { detail: 'the transport is closed' }), false);
      return;
    }
    this.connection = connection;
    connection.start(this, this.method, head, this.req, this.framing);
  }

  /** The upstream has been quiet for timeouts.upstreamResponse (IdleSweep). */
  timedOut(): void {
    this.stop(new ProxyError('upstream_timeout'));
  }

  abort(): void {
    if (this.done) {
      // The answer is complete but the request body is not (an early answer): the connection,
      // mid-body, is dropped. (A no-op once the connection is done with this exchange.)
      this.connection?.abort(this);
      return;
    }
    this.done = true;
    this.finish();
    this.connection?.abort(this);
  }

  onSent(): void {
    this.active = true;
  }

  onHead(head: ParsedHead): boolean {
    if (this.done) return false;
    this.active = true;
    this.again = undefined;
    const relayed = this.exchange.onResponse({ status: head.status, statusMessage: head.statusMessage, rawHeaders: head.rawHeaders });
    if (!relayed && !this.done) {
      this.done = true;
      this.finish();
    }
    return relayed;
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return true;
    this.active = true;
    this.exchange.onResponseBytes(chunk.length);
    if (this.res.write(chunk)) return true;
    this.res.once('drain', (this.resume ??= () => this.connection?.resume(this)));
    return false;
  }

  onEnd(): void {
    if (this.done) return;
    this.done = true;
    this.finish();
    this.res.end();
    this.exchange.onResponseEnd();
  }

  onFail(error: Error, answered: boolean): void {
    if (this.done) return;
    const again = this.again;
    if (again !== undefined && !answered && classify(error).kind === 'upstream_reset' && !this.res.destroyed) {
      // Cut before any byte of the answer: sent once more, on a new connection.
      this.again = undefined;
      this.owner.onRetry?.({ method: this.method, path: this.path, cause: error });
      this.sendOn(true, again);
      return;
    }
    this.done = true;
    this.finish();
    this.exchange.onError(error);
  }

  /** berth ends the exchange with a reason of its own: the handler hears it as the error. */
  private stop(reason: ProxyError): void {
    if (this.done) return;
    this.connection?.abort(this);
    this.again = undefined;
    this.onFail(reason, true);
  }

  private finish(): void {
    this.idle?.unwatch(this);
    this.res.off('close', this.clientGone);
    if (this.resume) this.res.off('drain', this.resume);
  }
}
