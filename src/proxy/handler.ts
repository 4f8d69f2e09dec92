import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { accessLog, type AccessLog, type Exchanged } from '../observe/accessLog.js';
import { explainAnswer, headerOf, warnTokenExpired, type Explained, type UploadClock } from '../observe/explain.js';
import type { InFlight, InFlightEntry } from '../observe/inFlight.js';
import type { RequestObserver } from '../observe/metrics.js';
import type { Operation } from '../observe/operation.js';
import { createContext, type ProxySettings, type RequestContext } from './context.js';
import { ProxyError, classify, sendError } from './errors.js';
import { REQUEST_PASSES, RESPONSE_PASSES } from './passes.js';
import { hasRepeatedLines, restoreRepeatedLines } from './request/repeatedLines.js';
import { newRequestId } from './request/requestId.js';
import type { BodyGarbage } from './bodyGarbage.js';
import type { ResponseContext } from './response/headers.js';
import type { ClientIdle } from '../net/clientIdle.js';
import type { Connections } from '../net/connections.js';
import { lingerUntilBodyIn } from '../net/linger.js';
import type { Exchange, Forwarding, ResponseHead, Transport } from './transport.js';

/**
 * Largest header section berth serves: Node's default, above nginx's usual 8 KiB lines.
 * Larger ones (up to the parser's own cap, server/https.ts) get a registry-shaped 431.
 */
export const HEADER_LIMIT = 16 * 1024;

/**
 * Most header fields berth serves (Apache's LimitRequestFields). Node's parser keeps only
 * the first `maxHeadersCount` fields in req.headers, yet frames the body by a
 * Content-Length or Transfer-Encoding that comes after them: a request with more fields
 * than berth keeps is refused, so berth frames every body by the headers the parser used.
 * (server/https.ts keeps one more than this, so that the excess is seen.)
 */
export const HEADER_FIELDS_LIMIT = 100;

/**
 * The latest response on a connection, kept on its socket, to see whether it is to close the
 * connection. (On the socket rather than in a WeakMap: set and read by every request.)
 */
const LATEST = Symbol('berth.latestResponse');
type Answering = Socket & { [LATEST]?: http.ServerResponse };

export interface HandlerDeps {
  /** Read per request: replaced when the settings are reloaded (Berth.reconfigure). */
  settings: ProxySettings;
  readonly transport: Transport;
  readonly logger: Logger;
  /** The client connections' inactivity limit, told each request's phases. */
  readonly clientIdle: ClientIdle;
  readonly inFlight: InFlight;
  /** The listener's connections: each one's client (PROXY protocol) and refusal (connection caps). */
  readonly connections: Connections;
  readonly observer?: RequestObserver;
  /** Told every body chunk relayed or dropped, to keep relayed chunks from piling up in memory. */
  readonly bodyGarbage?: BodyGarbage;
  /** When this process saw uploads start (observe/explain.ts). */
  readonly uploads: UploadClock;
}

/** Runs the passes in order for one request and streams it through the transport. */
export function createHandler(deps: HandlerDeps): http.RequestListener {
  const log = accessLog(deps.logger);
  return (req, res) => {
    const before = (req.socket as Answering)[LATEST];
    if (before && !before.shouldKeepAlive) {
      // Pipelined behind a response after which the connection closes (berth's own error
      // answer, the client's `Connection: close`): never forwarded, never answered.
      deps.logger.debug({ method: req.method }, 'request after the connection was to close: dropped');
      req.resume();
      return;
    }
    const socket = req.socket; // req.socket is gone once the response closes
    (socket as Answering)[LATEST] = res;
    const ctx = createContext(deps.settings, req, deps.connections.clientOf(socket));
    const served = new Served(req, res, socket, ctx, deps, log);
    const refused = deps.connections.refusalOf(socket);
    const refusal = refused ?? headerRefusal(req);
    if (refusal) {
      countBody(req, served, deps.bodyGarbage);
      served.error = new ProxyError(refusal);
      res.shouldKeepAlive = false;
      sendError(req, res, served.error, refused ? { 'retry-after': '5' } : {});
      return;
    }
    const repeated = hasRepeatedLines(req);
    try {
      for (const pass of REQUEST_PASSES) pass(ctx);
    } catch (err) {
      countBody(req, served, deps.bodyGarbage);
      served.error = classify(err);
      sendError(req, res, served.error);
      return;
    }
    if (repeated) restoreRepeatedLines(req, ctx.headers);
    req.url = ctx.url; // the transport forwards req.url byte-for-byte
    served.forwardedAt = performance.now();
    guardFraming(req, ctx, served, deps.bodyGarbage);
    served.forwarding = deps.transport.forward(req, res, served, ctx.body);
  };
}

/** Why the request's header section is refused, if it is: too large, or more fields than berth keeps. */
function headerRefusal(req: http.IncomingMessage): 'headers_too_large' | 'too_many_headers' | undefined {
  if (req.rawHeaders.length > 2 * HEADER_FIELDS_LIMIT) return 'too_many_headers';
  return headerSize(req) > HEADER_LIMIT ? 'headers_too_large' : undefined;
}

/** What guardFraming counts into and tells. */
export interface FramingWatch {
  bytesIn: number;
  /** More body bytes arrived than the framing berth read allows: runs once. */
  framingBroken(): void;
  /** The whole body is in ('end'), or there was none to wait for. */
  bodyEnded(): void;
}

/**
 * Counts the request's body bytes into `watch` (one 'data' listener per request). berth
 * forwards the body with the framing it read (`ctx.body`); Node's parser delivers the body
 * it framed. Should they ever differ (more bytes than a Content-Length berth saw, or any
 * byte where it saw no body), nothing more is forwarded: `watch.framingBroken` runs once.
 * `garbage` hears of every chunk (BodyGarbage).
 */
export function guardFraming(req: http.IncomingMessage, ctx: RequestContext, watch: FramingWatch, garbage?: BodyGarbage): void {
  if (ctx.body === 'none' && req.readableEnded) {
    // Ended as it arrived: Node 24's server ends a request with neither Content-Length nor
    // Transfer-Encoding, which has no body for its parser either, before berth sees it
    // (optimizeEmptyRequests, server/https.ts), and no 'data' or 'end' follows. Without the
    // two listeners and the stream's turns to emit 'end', a small GET allocates 7% less.
    watch.bodyEnded();
    return;
  }
  const allowed = ctx.body === 'chunked' ? Infinity : ctx.body === 'none' ? 0 : Number(ctx.headers['content-length']);
  let fired = false;
  const counted = (chunk: Buffer): void => {
    watch.bytesIn += chunk.length;
    garbage?.relayed(chunk.length);
    if (watch.bytesIn <= allowed || fired) return;
    fired = true;
    watch.framingBroken();
  };
  req.on('data', counted);
  // No byte follows 'end'. Taken off here, the listener leaves the request's table of
  // listeners in shape; left on a request nobody else read (a GET), Node's clean-up when the
  // response finishes (IncomingMessage._dump) deletes it from the table, which turns the
  // table into a dictionary: 0.45 KiB allocated per small request, and slower events after.
  req.on('end', () => {
    req.removeListener('data', counted);
    watch.bodyEnded();
  });
}

/** Counts the body bytes of a request berth answers itself. */
function countBody(req: http.IncomingMessage, record: Exchanged, garbage: BodyGarbage | undefined): void {
  req.on('data', (chunk: Buffer) => {
    record.bytesIn += chunk.length;
    garbage?.relayed(chunk.length);
  });
}

/**
 * One request as berth serves it, from its arrival to its access line: what the line and
 * the metrics count (Exchanged), what the framing guard tells (FramingWatch), and what the
 * transport tells of the upstream's answer (Exchange), as one object whose methods are the
 * callbacks. (A closure for each callback, and a record beside them, cost 0.9 KiB per small
 * request; npm run bench:alloc.) Its timeouts: the client connection's inactivity limit is
 * told each phase (ClientIdle); the upstream's is the transport's.
 */
class Served implements Exchanged, FramingWatch, Exchange {
  /** performance.now() when the request arrived, ms. */
  readonly started = performance.now();
  bytesIn = 0;
  bytesOut = 0;
  client: string;
  error: ProxyError | undefined = undefined;
  uploadUuid: string | undefined = undefined;
  requestId: string | undefined = undefined;
  forwardedAt: number | undefined = undefined;
  upstreamMs: number | undefined = undefined;
  bodyEndedAt: number | undefined = undefined;
  explained: Explained | undefined = undefined;
  /** The exchange with the upstream, once forwarded. */
  forwarding: Forwarding | undefined = undefined;
  private readonly inFlight: InFlightEntry;
  private readonly operation: Operation | undefined;
  /**
   * A response queued behind another (pipelining: no socket yet) gets no 'close' of its own
   * on Node 22 when the connection closes first (24 destroys queued responses): then its
   * record ends with whichever comes first. Only then: a listener added to and taken off the
   * socket for every request allocated for nothing (npm run bench:alloc, with the socket
   * timeout set only when it differs, clientIdle.ts: 19.7 -> 18.5 KiB per small request).
   */
  private readonly queued: boolean;
  private ended = false;
  /** The response's 'close' (and, when queued, the socket's): the request is over. */
  private readonly end = (): void => this.over();

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    /** req.socket, which is gone once the response closes. */
    private readonly socket: Socket,
    private readonly ctx: RequestContext,
    private readonly deps: HandlerDeps,
    private readonly log: AccessLog,
  ) {
    this.client = ctx.client;
    this.inFlight = deps.inFlight.add(req, res, this);
    this.operation = deps.observer?.started(ctx.method, ctx.url);
    // Per request, since Node resets the socket timeout to 0 after a keep-alive wait.
    // (Its body's end is watched with the body: guardFraming.)
    deps.clientIdle.requestStarted(socket);
    this.queued = res.socket === null;
    res.on('close', this.end);
    if (this.queued) socket.on('close', this.end);
  }

  framingBroken(): void {
    this.error = new ProxyError('bad_framing', { detail: `${this.ctx.body} framing, more body bytes arrived` });
    this.deps.logger.error({ method: this.ctx.method, client: this.ctx.client }, 'the request body does not match the framing berth read: connection closed, nothing more forwarded');
    this.socket.destroy();
  }

  bodyEnded(): void {
    this.bodyEndedAt = performance.now();
    // The body is in and no answer has begun: the wait is the upstream's.
    if (!this.res.headersSent) this.deps.clientIdle.awaitingUpstream(this.socket);
  }

  onResponse(head: ResponseHead): boolean {
    this.upstreamMs = performance.now() - this.forwardedAt!;
    const malformed = malformedStatus(head);
    if (malformed !== undefined) return this.refuseAnswer(malformed);
    // An early answer (nginx's 413, a 401): final, so the upstream has no use for the
    // rest of the body, and the client reads the answer before the connection closes.
    if (!this.req.complete) lingerUntilBodyIn(this.req, this.res);
    return this.relayResponse(head);
  }

  onResponseBytes(count: number): void {
    this.bytesOut += count;
    this.deps.bodyGarbage?.relayed(count);
  }

  /**
   * The upstream's answer is complete but the request body may not be: then stop sending it
   * upstream (that connection, mid-body, cannot be reused) and read and drop the rest.
   */
  onResponseEnd(): void {
    if (this.req.complete || this.socket.destroyed) return;
    this.forwarding?.abort();
    this.req.resume();
  }

  onError(err: unknown): void {
    if (this.res.headersSent) {
      // A failure after the head went out can only be signalled by closing the client connection.
      if (!this.error) this.error = this.socket.destroyed ? new ProxyError('client_gone', { cause: err }) : classify(err);
      this.res.destroy();
    } else this.answerError(err);
  }

  /** The upstream answered: run the response passes and write the head; the transport streams the body. */
  private relayResponse(head: ResponseHead): boolean {
    const { res, ctx, deps } = this;
    deps.clientIdle.answered(this.socket);
    // Read from the lines as the upstream sent them, before the passes change them.
    const uuid = headerOf(head.rawHeaders, 'docker-upload-uuid');
    if (uuid !== undefined) this.uploadUuid = uuid;
    this.explain(head, uuid);
    const out: ResponseContext = {
      status: head.status,
      headers: head.rawHeaders,
      upstream: deps.settings.upstream,
      publicOrigin: ctx.publicOrigin,
      hsts: ctx.hsts,
    };
    for (const pass of RESPONSE_PASSES) pass(out);
    try {
      res.writeHead(out.status, head.statusMessage, out.headers);
    } catch (err) {
      // A header Node will not write (its parser let through what its writer refuses).
      return this.refuseAnswer(`header not writable: ${(err as NodeJS.ErrnoException).code ?? 'unknown'}`);
    }
    return true;
  }

  /** What the answer tells beyond its status, kept for the access line and the metrics (observe/explain.ts). */
  private explain(head: ResponseHead, uuid: string | undefined): void {
    const ctx = this.ctx;
    if (head.status < 300 && ctx.method === 'GET') return; // most answers: nothing to tell, nothing allocated
    const asked = { method: ctx.method, url: ctx.url, authorization: ctx.headers.authorization, wallStart: performance.timeOrigin + this.started, bodyEndedAt: this.bodyEndedAt };
    const explained = explainAnswer(asked, head.status, head.rawHeaders, uuid, this.deps.uploads, performance.now());
    if (explained === undefined) return;
    this.explained = explained;
    if (explained.tokenExpired) warnTokenExpired(this.deps.logger, asked, explained.tokenExpired);
  }

  /** The upstream's answer cannot be relayed: it is dropped with its connection, and the client gets 502. */
  private refuseAnswer(detail: string): false {
    const { res, deps } = this;
    deps.clientIdle.answered(this.socket);
    this.error = new ProxyError('upstream_bad_response', { detail });
    deps.logger.warn({ method: this.ctx.method, detail }, 'the registry sent an answer berth cannot relay: answered 502');
    // writeHead keeps the reason phrase it refused (and may have stored some headers before
    // one it refused): berth's own answer starts clean.
    res.statusMessage = '';
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    sendError(this.req, res, this.error, hstsHeaders(this.ctx));
    return false;
  }

  /** The upstream request failed: answer with the mapped error, unless the client is gone or was answered. */
  private answerError(err: unknown): void {
    const { res, deps } = this;
    deps.clientIdle.answered(this.socket);
    if (res.writableEnded) return; // the answer was complete; a late upstream error changes nothing
    const error = this.socket.destroyed || res.destroyed ? new ProxyError('client_gone', { cause: err }) : classify(err);
    if (error.kind === 'descriptors_exhausted') deps.logger.error({ detail: error.detail }, 'out of file descriptors: no connection to the registry could be opened (raise ulimit -n, or lower limits.connections)');
    this.error ??= error; // berth's own reason for closing (bad_framing) stays the one logged
    if (error.kind !== 'client_gone') sendError(this.req, res, error, hstsHeaders(this.ctx));
  }

  /** The response closed (answered, or the connection is gone): log it, once. */
  private over(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.queued) this.socket.removeListener('close', this.end);
    this.res.removeListener('close', this.end);
    this.deps.clientIdle.answered(this.socket);
    // An answer that went out whole is logged now. The error that cut one short (client
    // gone, upstream reset) is reported on the next ticks: log once they have run.
    if (this.res.writableFinished) this.report();
    else setImmediate(() => this.report());
  }

  /** The access line, the in-flight list and the metrics. */
  private report(): void {
    const { req, res, ctx, deps } = this;
    if (!res.writableFinished && !this.error) this.error = new ProxyError('client_gone');
    this.client = ctx.client;
    // Answered by berth before the passes set one: the line still gets its own.
    this.requestId = ctx.requestId || newRequestId();
    this.log(req, res, this);
    deps.inFlight.done(this.inFlight);
    if (this.operation !== undefined) {
      deps.observer?.finished({
        method: ctx.method,
        operation: this.operation,
        status: res.headersSent ? res.statusCode : 499,
        bytesIn: this.bytesIn,
        bytesOut: this.bytesOut,
        seconds: (performance.now() - this.started) / 1000,
        error: this.error?.kind,
        explained: this.explained,
      });
    }
  }
}

/**
 * What makes the upstream's status one berth cannot relay, if anything: a status Node
 * refuses to write (outside 100–999), or a 101 (berth forwards no Upgrade, so the upstream
 * cannot switch protocols). The transport has already refused a status line that is not
 * three digits, or whose reason phrase holds a control character (proxy/upstream/responseHead.ts).
 */
function malformedStatus(head: ResponseHead): string | undefined {
  const status = head.status;
  if (!Number.isInteger(status) || status < 100 || status > 999) return `status ${status}`;
  if (status === 101) return 'status 101 to a request that asked for no upgrade';
  return undefined;
}

/** Strict-Transport-Security for berth's own answers, as addHsts adds it to relayed ones. */
function hstsHeaders(ctx: RequestContext): Record<string, string> {
  return ctx.hsts !== undefined ? { 'strict-transport-security': ctx.hsts } : {};
}

/** The header section's size as received: request line and header lines. */
function headerSize(req: http.IncomingMessage): number {
  let size = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i++) size += raw[i]!.length + 2;
  return size;
}
