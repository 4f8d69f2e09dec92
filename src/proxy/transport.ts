import type { EventEmitter } from 'node:events';
import type http from 'node:http';
import type { Readable } from 'node:stream';
import { Client, Pool, type Dispatcher } from 'undici';
import type { BodyFraming } from './context.js';
import { ProxyError } from './errors.js';

/**
 * The upstream transport: undici's `Pool.dispatch`, the API undici offers for proxies,
 * with the body streamed both ways under backpressure (README, "The transport": about a
 * third less CPU per small request than Node's own client). What a generic proxy library
 * gets wrong for a registry (README, "What goes wrong behind a TLS front") cannot come
 * back through an option:
 * - path and query go out byte-exact: `path` is the upstream request's path, never
 *   joined or re-encoded (the registry's `_state` is HMAC-signed);
 * - headers are the request's own, as the passes left them: nothing is appended but
 *   undici's own framing (`content-length` or chunked, exactly as berth read the body);
 * - the body goes out only when the handler says berth saw it framed, else the upstream
 *   request ends after its headers;
 * - the upstream request dies with the client response, whenever the client leaves;
 * - no time limit but berth's: undici's header and body timeouts (300 s by default: a
 *   registry may hash a big blob for longer before answering the final PUT) are off, and
 *   `timeouts.upstreamResponse` is one inactivity limit over the exchange, renewed by
 *   every chunk sent or received (IdleSweep);
 * - HTTP/1.1 only (undici 8 would offer h2 to an https upstream), no pipelining;
 * - a 101 that switches protocols (berth forwards no Upgrade) is the upstream's error.
 */

export interface TransportOptions {
  readonly upstream: URL;
  /** Connect timeout, ms. */
  readonly connectTimeout: number;
  /** Inactivity on an exchange with the upstream, ms; 0 = none. */
  readonly responseTimeout: number;
  /** An exception out of berth's own code in an undici callback (a bug): the exchange is dropped. */
  readonly onBug?: (err: unknown) => void;
}

/** The upstream's status line and header lines, as received. */
export interface ResponseHead {
  readonly status: number;
  readonly statusMessage: string;
  /** name, value, name, value… in the upstream's order and case, duplicates kept. */
  readonly rawHeaders: readonly string[];
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
  close(): void;
}

/** How long an unused upstream connection is kept: well under common upstream idle limits (nginx: 75 s). */
const FREE_SOCKET_MS = 30_000;

export function createTransport(options: TransportOptions): Transport {
  const pool = new Pool(options.upstream.origin, {
    pipelining: 1,
    allowH2: false,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: FREE_SOCKET_MS,
    keepAliveMaxTimeout: FREE_SOCKET_MS,
    connect: { timeout: options.connectTimeout },
    // undici reports an exception thrown by a handler callback on the client: without a
    // listener it would end the process.
    factory: (origin, opts) => {
      const client = new Client(origin, opts);
      (client as unknown as EventEmitter).on('error', (err: unknown) => options.onBug?.(err));
      return client;
    },
  });
  const idle = options.responseTimeout > 0 ? new IdleSweep(options.responseTimeout) : undefined;
  return {
    forward(req, res, exchange, body) {
      const upstreamExchange = new UpstreamExchange(req, res, exchange, idle);
      const empty = body === 'none' || (body === 'length' && req.headers['content-length'] === '0');
      pool.dispatch(
        {
          origin: options.upstream.origin,
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          headers: req.headers,
          // A stream to undici (its test: pipe and on), but never the request itself (RequestBody).
          body: empty ? null : (new RequestBody(req) as unknown as Readable),
        },
        upstreamExchange,
      );
      return upstreamExchange;
    },
    close() {
      idle?.stop();
      void pool.destroy().catch(() => {});
    },
  };
}

/**
 * berth's inactivity limit on exchanges with the upstream (timeouts.upstreamResponse): one
 * interval for all of them instead of a timer per request refreshed by every chunk, which
 * would put timer work on the body path. A chunk only marks its exchange active; a sweep
 * (every limit/8, at most every second) ends an exchange that has been quiet since the
 * sweep before the limit ran out. So an exchange ends after between the limit and the
 * limit plus one sweep of silence, never before.
 */
class IdleSweep {
  /**
   * The exchanges watched, as a list threaded through them. (A Set here made V8 carry the
   * exchanges, with their requests and responses, into the old generation: 4.5 KB promoted
   * per small request against 1.4–3.5 with this list and 2.1 with a timer per exchange, and
   * about three times the full collections; measured with v8.GCProfiler.)
   */
  private first: UpstreamExchange | undefined;
  private readonly every: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly limit: number) {
    this.every = Math.max(5, Math.min(1000, Math.ceil(limit / 8)));
  }

  watch(exchange: UpstreamExchange): void {
    exchange.active = true;
    exchange.watched = true;
    exchange.nextWatched = this.first;
    exchange.previousWatched = undefined;
    if (this.first) this.first.previousWatched = exchange;
    this.first = exchange;
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.every);
      this.timer.unref();
    }
  }

  unwatch(exchange: UpstreamExchange): void {
    if (!exchange.watched) return;
    exchange.watched = false;
    const { previousWatched: previous, nextWatched: next } = exchange;
    if (previous) previous.nextWatched = next;
    else this.first = next;
    if (next) next.previousWatched = previous;
    exchange.previousWatched = undefined;
    exchange.nextWatched = undefined;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    if (this.first === undefined) return this.stop();
    const now = performance.now();
    let exchange: UpstreamExchange | undefined = this.first;
    while (exchange !== undefined) {
      const next: UpstreamExchange | undefined = exchange.nextWatched;
      if (exchange.active) {
        exchange.active = false;
        exchange.quietSince = now;
      } else if (now - exchange.quietSince >= this.limit) {
        this.unwatch(exchange);
        exchange.timedOut();
      }
      exchange = next;
    }
  }
}

/** One request on the pool: relays undici's events to the handler and the body to the client. */
class UpstreamExchange implements Dispatcher.DispatchHandler, Forwarding {
  private controller: Dispatcher.DispatchController | undefined;
  private done = false;
  /** Bytes moved since the last sweep (IdleSweep). */
  active = true;
  /** When a sweep first found it quiet, ms (performance.now()). */
  quietSince = 0;
  /** Its place in the IdleSweep's list. */
  watched = false;
  previousWatched: UpstreamExchange | undefined;
  nextWatched: UpstreamExchange | undefined;
  private readonly resume = (): void => this.controller?.resume();
  private readonly clientGone = (): void => {
    if (!this.done && !this.res.writableFinished) this.stop(new ProxyError('client_gone'));
  };

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly exchange: Exchange,
    private readonly idle: IdleSweep | undefined,
  ) {
    idle?.watch(this);
    // The client left (at any moment, not only while its body arrives): so does the upstream request.
    res.once('close', this.clientGone);
  }

  /** The upstream has been quiet for timeouts.upstreamResponse. */
  timedOut(): void {
    this.stop(new ProxyError('upstream_timeout'));
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.finish();
    this.controller?.abort(new ProxyError('client_gone'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Ended while queued for a connection: it never starts.
    if (this.done) controller.abort(new ProxyError('client_gone'));
    else if (this.res.destroyed || this.req.socket?.destroyed) this.clientGone();
  }

  onBodySent(): void {
    this.active = true;
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, _headers: unknown, statusMessage?: string): void {
    if (this.done) return;
    this.active = true;
    // An informational answer (103 Early Hints, 102): the final one follows; Node's client
    // did not relay them either. (undici fails a 100 nobody asked for; a 101, or a status
    // under 100, goes to the handler, which refuses it.)
    if (status > 101 && status < 200) return;
    const relayed = this.exchange.onResponse({ status, statusMessage: statusMessage ?? '', rawHeaders: rawStrings(controller.rawHeaders) });
    if (!relayed) this.abort();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    this.active = true;
    this.exchange.onResponseBytes(chunk.length);
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', this.resume);
    }
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.done = true;
    this.finish();
    this.res.end();
    this.exchange.onResponseEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    if (this.done) return;
    this.done = true;
    this.finish();
    this.exchange.onError(error);
  }

  /** berth ends the exchange with a reason of its own: the handler hears it as the error. */
  private stop(reason: ProxyError): void {
    if (this.done) return;
    if (this.controller) this.controller.abort(reason);
    else this.onResponseError(null, reason);
  }

  private finish(): void {
    this.idle?.unwatch(this);
    this.res.off('close', this.clientGone);
    this.res.off('drain', this.resume);
  }
}

/**
 * The client's request body as undici reads a stream body: its 'data', 'end', 'error' and
 * 'close', paused and resumed under backpressure. What undici does to a body it is done
 * with (destroy it) stays here: the client's request, whose rest berth may still have to
 * read (an early answer, berth's own error), is left to the handler.
 */
type Listener = (...args: any[]) => void; // eslint-disable-line @typescript-eslint/no-explicit-any -- an EventEmitter listener

class RequestBody {
  destroyed = false;
  constructor(private readonly req: http.IncomingMessage) {
    // Nothing flows before undici listens: it attaches only once a connection is there.
    req.pause();
  }
  on(event: string, listener: Listener): this {
    this.req.on(event, listener);
    return this;
  }
  removeListener(event: string, listener: Listener): this {
    this.req.removeListener(event, listener);
    return this;
  }
  off(event: string, listener: Listener): this {
    return this.removeListener(event, listener);
  }
  pause(): void {
    this.req.pause();
  }
  resume(): void {
    if (!this.destroyed) this.req.resume();
  }
  /** Present only for undici's test of what a stream is; never piped. */
  pipe(): never {
    throw new Error('RequestBody is read by undici, not piped');
  }
  get errored(): Error | null {
    return this.req.errored;
  }
  get readableEnded(): boolean {
    return this.req.readableEnded;
  }
  get closed(): boolean {
    return this.req.closed;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

function rawStrings(raw: Dispatcher.DispatchController['rawHeaders']): string[] {
  if (!Array.isArray(raw)) return [];
  const out = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const item = raw[i]!;
    out[i] = typeof item === 'string' ? item : item.toString('latin1');
  }
  return out;
}
