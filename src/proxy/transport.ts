import type { EventEmitter } from 'node:events';
import type http from 'node:http';
import type { Readable } from 'node:stream';
import { buildConnector, Client, Pool, util, type Dispatcher } from 'undici';
import type { BodyFraming } from './context.js';
import { ProxyError, classify } from './errors.js';
import { IdleSweep, type Watched } from './idleSweep.js';
import { RequestBody } from './requestBody.js';

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
 * - a 101 that switches protocols (berth forwards no Upgrade) is the upstream's error;
 * - a GET or HEAD whose connection the upstream closes or resets before its answer's head
 *   is in (a kept-alive connection it cut as berth reused it: a Go server's or a balancer's
 *   idle timeout announces nothing) is sent once more, on a new connection of its own, as
 *   nginx's `proxy_next_upstream error` does; a request with a body never is (its bytes are
 *   gone, and only the client can send them again).
 */

export interface TransportOptions {
  readonly upstream: URL;
  /** Connect timeout, ms. */
  readonly connectTimeout: number;
  /** Inactivity on an exchange with the upstream, ms; 0 = none. */
  readonly responseTimeout: number;
  /** An exception out of berth's own code in an undici callback (a bug): the exchange is dropped. */
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

/** How long an unused upstream connection is kept: well under common upstream idle limits (nginx: 75 s). */
const FREE_SOCKET_MS = 30_000;

export function createTransport(options: TransportOptions): Transport {
  const connectorFor = (timeout: number): buildConnector.connector => buildConnector({ timeout, allowH2: false });
  let connector = connectorFor(options.connectTimeout);
  const sweepFor = (limit: number): IdleSweep<UpstreamExchange> | undefined => (limit > 0 ? new IdleSweep<UpstreamExchange>(limit) : undefined);
  let responseTimeout = options.responseTimeout;
  const clientOptions: Client.Options = {
    pipelining: 1,
    allowH2: false,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: FREE_SOCKET_MS,
    keepAliveMaxTimeout: FREE_SOCKET_MS,
    // A connector of berth's own (the one undici builds from these options), so that a
    // reload can change its timeout.
    connect: (opts, callback) => connector(opts, callback),
  };
  // undici reports an exception thrown by a handler callback on the client: without a
  // listener it would end the process.
  const clientFor = (origin: string | URL, opts: Client.Options): Client => {
    const client = new Client(origin, opts);
    (client as unknown as EventEmitter).on('error', (err: unknown) => options.onBug?.(err));
    return client;
  };
  // URL's origin getter builds a new string on every read.
  const origin = options.upstream.origin;
  const pool = new Pool(origin, { ...clientOptions, factory: clientFor });
  // The connections made for retries, each for one request: closed with the transport.
  const retries = new Set<Client>();
  // An exchange keeps the sweep it started under: a replaced one stops once its last exchange ends.
  let idle = sweepFor(responseTimeout);
  // One function for every retry, rather than a closure per GET that is almost never called.
  const resend: Resend = (request, upstreamExchange, cause) => {
    options.onRetry?.({ method: request.method, path: request.path, cause });
    const client = clientFor(origin, clientOptions);
    retries.add(client);
    client.dispatch(request, upstreamExchange);
    // Closes once the request is done: a connection for this one request only.
    void client.close().catch(() => {}).finally(() => retries.delete(client));
  };
  return {
    forward(req, res, exchange, body) {
      const empty = body === 'none' || (body === 'length' && req.headers['content-length'] === '0');
      const method = req.method ?? 'GET';
      const request: Dispatcher.DispatchOptions = {
        origin,
        method,
        path: req.url ?? '/',
        headers: req.headers,
        // A stream to undici (its test: pipe and on), but never the request itself (RequestBody).
        body: empty ? null : (new RequestBody(req) as unknown as Readable),
      };
      // A GET or HEAD may be sent once more (UpstreamExchange.onResponseError).
      const upstreamExchange = new UpstreamExchange(req, res, exchange, idle, empty && (method === 'GET' || method === 'HEAD') ? request : undefined, resend);
      pool.dispatch(request, upstreamExchange);
      return upstreamExchange;
    },
    setTimeouts(timeouts) {
      connector = connectorFor(timeouts.connect);
      if (timeouts.response === responseTimeout) return;
      responseTimeout = timeouts.response;
      idle = sweepFor(responseTimeout);
    },
    close() {
      idle?.stop();
      void pool.destroy().catch(() => {});
      for (const client of retries) void client.destroy().catch(() => {});
    },
  };
}

/** Sends a request once more, on a new connection of its own. */
type Resend = (request: Dispatcher.DispatchOptions, exchange: UpstreamExchange, cause: unknown) => void;

/** One request on the pool: relays undici's events to the handler and the body to the client. */
class UpstreamExchange implements Dispatcher.DispatchHandler, Forwarding, Watched<UpstreamExchange> {
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
  /** Resumes the upstream's answer once the client response drains; made the first time it fills. */
  private resume: (() => void) | undefined;
  private readonly clientGone = (): void => {
    if (!this.done && !this.res.writableFinished) this.stop(new ProxyError('client_gone'));
  };

  /** Whether the upstream's answer head arrived (then the exchange is never sent again). */
  private answered = false;

  /**
   * @param again the request, given when it has no body and may be sent twice (GET, HEAD):
   * then `resend` sends it once more at most.
   */
  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly exchange: Exchange,
    private readonly idle: IdleSweep<UpstreamExchange> | undefined,
    private again: Dispatcher.DispatchOptions | undefined,
    private readonly resend: Resend,
  ) {
    idle?.watch(this);
    // The client left (at any moment, not only while its body arrives): so does the upstream
    // request. (on, not once: once wraps the listener in two objects per request; finish removes it.)
    res.on('close', this.clientGone);
  }

  /** The upstream has been quiet for timeouts.upstreamResponse (IdleSweep). */
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

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (this.done) return;
    this.active = true;
    this.answered = true;
    // An informational answer (103 Early Hints, 102): the final one follows; Node's client
    // did not relay them either. (undici fails a 100 nobody asked for; a 101, or a status
    // under 100, goes to the handler, which refuses it.)
    if (status > 101 && status < 200) return;
    const relayed = this.exchange.onResponse({ status, statusMessage: statusMessage ?? '', rawHeaders: headerLines(controller.rawHeaders, headers) });
    if (!relayed) this.abort();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    this.active = true;
    this.exchange.onResponseBytes(chunk.length);
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', (this.resume ??= () => this.controller?.resume()));
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
    const again = this.again;
    if (again && !this.answered && !(error instanceof ProxyError) && classify(error).kind === 'upstream_reset' && !this.res.destroyed) {
      // Cut before any byte of the answer: sent once more, on a new connection.
      this.again = undefined;
      this.controller = undefined;
      this.resend(again, this, error);
      return;
    }
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
    if (this.resume) this.res.off('drain', this.resume);
  }
}

/**
 * The answer's header lines as strings, in the upstream's order and case. undici hands them
 * over as Buffers, and has already read each into its own object of values by lowercased
 * name (`parsed`): a value that name has once is taken from there. A name is spelled as the
 * last answer with the same bytes spelled it (`spellings`), which also knows its lowercased
 * form, undici's key. Each string made from a Buffer is a call into C++ and a new string, two
 * per line without this (a small answer's six lines: 0.65 -> 0.24 KiB allocated).
 */
function headerLines(raw: Dispatcher.DispatchController['rawHeaders'], parsed: Record<string, string | string[] | undefined>): string[] {
  if (!Array.isArray(raw)) return [];
  const out = new Array<string>(raw.length);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (typeof name === 'string') {
      out[i] = name;
      out[i + 1] = typeof value === 'string' ? value : value.toString('latin1');
      continue;
    }
    const spelling = spelled(name);
    out[i] = spelling.name;
    const once = parsed[spelling.key];
    // A string: this name's only line (a repeated name's values are an array).
    out[i + 1] = typeof once === 'string' ? once : typeof value === 'string' ? value : value.toString('latin1');
  }
  return out;
}

/** A header name as an answer spelled it, and lowercased (undici's key for it). */
interface Spelling {
  readonly name: string;
  readonly key: string;
}

/**
 * The header names answers spelled, found by a name's length and first and last bytes (a
 * number: no string to hash), then compared byte by byte: the registry spells its few names
 * the same way every time. (Finding a name's lowercased form first, by undici's own lookup,
 * a tree walked byte by byte, and then its spelling by that form: a small answer's six lines
 * took 6,200 machine instructions, 3,900 now with the rest of onResponseStart; npm run
 * bench:instructions.) Bounded, since an upstream may send any names at all; names that
 * share a slot take turns in it.
 */
const spellings = new Map<number, Spelling>();
const SPELLINGS_KEPT = 256;

function spelled(name: Buffer): Spelling {
  const n = name.length;
  const slot = n === 0 ? 0 : n * 65536 + name[0]! * 256 + name[n - 1]!;
  const known = spellings.get(slot);
  if (known !== undefined && sameBytes(name, known.name)) return known;
  const made: Spelling = { name: name.toString('latin1'), key: util.headerNameToString(name) };
  if (known !== undefined || spellings.size < SPELLINGS_KEPT) spellings.set(slot, made);
  return made;
}

/** Whether `text` (latin1) is these bytes. */
function sameBytes(bytes: Buffer, text: string): boolean {
  if (bytes.length !== text.length) return false;
  for (let j = 0; j < bytes.length; j++) if (bytes[j] !== text.charCodeAt(j)) return false;
  return true;
}
