import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { accessLog, type AccessLog, type Exchanged } from '../observe/accessLog.js';
import { explainAnswer, headerOf, warnTokenExpired, type UploadClock } from '../observe/explain.js';
import type { InFlight } from '../observe/inFlight.js';
import type { RequestObserver } from '../observe/metrics.js';
import { createContext, type ProxySettings, type RequestContext } from './context.js';
import { ProxyError, classify, sendError } from './errors.js';
import { REQUEST_PASSES, RESPONSE_PASSES } from './passes.js';
import { hasRepeatedLines, restoreRepeatedLines } from './request/repeatedLines.js';
import { newRequestId } from './request/requestId.js';
import type { BodyGarbage } from './bodyGarbage.js';
import { flattenPairs, pairsFromRaw, type ResponseContext } from './response/headers.js';
import type { ClientIdle } from '../net/clientIdle.js';
import type { Connections } from '../net/connections.js';
import { lingerUntilBodyIn } from '../net/linger.js';
import type { Forwarding, ResponseHead, Transport } from './transport.js';

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
    const record = track(req, res, ctx, deps, log);
    const refused = deps.connections.refusalOf(socket);
    const refusal = refused ?? headerRefusal(req);
    if (refusal) {
      countBody(req, record, deps.bodyGarbage);
      record.error = new ProxyError(refusal);
      res.shouldKeepAlive = false;
      sendError(req, res, record.error, refused ? { 'retry-after': '5' } : {});
      return;
    }
    const repeated = hasRepeatedLines(req);
    try {
      for (const pass of REQUEST_PASSES) pass(ctx);
    } catch (err) {
      countBody(req, record, deps.bodyGarbage);
      record.error = classify(err);
      sendError(req, res, record.error);
      return;
    }
    if (repeated) restoreRepeatedLines(req, ctx.headers);
    req.url = ctx.url; // the transport forwards req.url byte-for-byte
    record.forwardedAt = performance.now();
    guardFraming(req, ctx, record, () => {
      record.error = new ProxyError('bad_framing', { detail: `${ctx.body} framing, more body bytes arrived` });
      deps.logger.error({ method: ctx.method, client: ctx.client }, 'the request body does not match the framing berth read: connection closed, nothing more forwarded');
      req.socket.destroy();
    }, deps.bodyGarbage, () => {
      record.bodyEndedAt = performance.now();
      // The body is in and no answer has begun: the wait is the upstream's.
      if (!res.headersSent) deps.clientIdle.awaitingUpstream(socket);
    });
    const forwarding: Forwarding = deps.transport.forward(req, res, {
      onResponse: (head) => {
        record.upstreamMs = performance.now() - record.forwardedAt!;
        const malformed = malformedStatus(head);
        if (malformed !== undefined) return refuseAnswer(malformed, req, res, socket, ctx, record, deps);
        // An early answer (nginx's 413, a 401): final, so the upstream has no use for the
        // rest of the body, and the client reads the answer before the connection closes.
        if (!req.complete) lingerUntilBodyIn(req, res);
        return relayResponse(head, req, res, socket, ctx, record, deps);
      },
      onResponseBytes: (count) => {
        record.bytesOut += count;
        deps.bodyGarbage?.relayed(count);
      },
      onResponseEnd: () => discardRest(req, socket, forwarding),
      onError: (err) => {
        if (res.headersSent) {
          // A failure after the head went out can only be signalled by closing the client connection.
          if (!record.error) record.error = socket.destroyed ? new ProxyError('client_gone', { cause: err }) : classify(err);
          res.destroy();
        } else answerError(err, req, res, socket, ctx, record, deps);
      },
    }, ctx.body);
  };
}

/** Why the request's header section is refused, if it is: too large, or more fields than berth keeps. */
function headerRefusal(req: http.IncomingMessage): 'headers_too_large' | 'too_many_headers' | undefined {
  if (req.rawHeaders.length > 2 * HEADER_FIELDS_LIMIT) return 'too_many_headers';
  return headerSize(req) > HEADER_LIMIT ? 'headers_too_large' : undefined;
}

/**
 * Counts the request's body bytes into `record` (one 'data' listener per request). berth
 * forwards the body with the framing it read (`ctx.body`); Node's parser delivers the body
 * it framed. Should they ever differ (more bytes than a Content-Length berth saw, or any
 * byte where it saw no body), nothing more is forwarded: `mismatch` runs once. `garbage` hears
 * of every chunk (BodyGarbage); `ended` runs when the whole body is in ('end').
 */
export function guardFraming(req: http.IncomingMessage, ctx: RequestContext, record: { bytesIn: number }, mismatch: () => void, garbage?: BodyGarbage, ended?: () => void): void {
  if (ctx.body === 'none' && req.readableEnded) {
    // Ended as it arrived: Node 24's server ends a request with neither Content-Length nor
    // Transfer-Encoding, which has no body for its parser either, before berth sees it
    // (optimizeEmptyRequests, server/https.ts), and no 'data' or 'end' follows. Without the
    // two listeners and the stream's turns to emit 'end', a small GET allocates 7% less.
    ended?.();
    return;
  }
  const allowed = ctx.body === 'chunked' ? Infinity : ctx.body === 'none' ? 0 : Number(ctx.headers['content-length']);
  let fired = false;
  const counted = (chunk: Buffer): void => {
    record.bytesIn += chunk.length;
    garbage?.relayed(chunk.length);
    if (record.bytesIn <= allowed || fired) return;
    fired = true;
    mismatch();
  };
  req.on('data', counted);
  // No byte follows 'end'. Taken off here, the listener leaves the request's table of
  // listeners in shape; left on a request nobody else read (a GET), Node's clean-up when the
  // response finishes (IncomingMessage._dump) deletes it from the table, which turns the
  // table into a dictionary: 0.45 KiB allocated per small request, and slower events after.
  req.on('end', () => {
    req.removeListener('data', counted);
    ended?.();
  });
}

/** Counts the body bytes of a request berth answers itself. */
function countBody(req: http.IncomingMessage, record: Exchanged, garbage: BodyGarbage | undefined): void {
  req.on('data', (chunk: Buffer) => {
    record.bytesIn += chunk.length;
    garbage?.relayed(chunk.length);
  });
}

/** Timeouts, the in-flight record and the access line for one request. */
function track(req: http.IncomingMessage, res: http.ServerResponse, ctx: RequestContext, deps: HandlerDeps, log: AccessLog): Exchanged {
  const record: Exchanged = { started: performance.now(), bytesIn: 0, bytesOut: 0, client: ctx.client, error: undefined };
  const socket = req.socket;
  const inFlight = deps.inFlight.add(req, res, record);
  const method = ctx.method;
  const operation = deps.observer?.started(method, ctx.url);
  // Per request, since Node resets the socket timeout to 0 after a keep-alive wait.
  // (Its body's end is watched with the body: guardFraming.)
  deps.clientIdle.requestStarted(socket);
  const report = (): void => {
    if (!res.writableFinished && !record.error) record.error = new ProxyError('client_gone');
    record.client = ctx.client;
    // Answered by berth before the passes set one: the line still gets its own.
    record.requestId = ctx.requestId || newRequestId();
    log(req, res, record);
    deps.inFlight.done(inFlight);
    if (operation !== undefined) {
      deps.observer?.finished({
        method,
        operation,
        status: res.headersSent ? res.statusCode : 499,
        bytesIn: record.bytesIn,
        bytesOut: record.bytesOut,
        seconds: (performance.now() - record.started) / 1000,
        error: record.error?.kind,
        explained: record.explained,
      });
    }
  };
  // A response queued behind another (pipelining: no socket yet) gets no 'close' of its own
  // on Node 22 when the connection closes first (24 destroys queued responses): its record
  // ends with whichever comes first. Only then: a listener added to and taken off the socket
  // for every request allocated for nothing (npm run bench:alloc, with the socket timeout
  // set only when it differs, clientIdle.ts: 19.7 -> 18.5 KiB per small request).
  const queued = res.socket === null;
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    if (queued) socket.removeListener('close', end);
    res.removeListener('close', end);
    deps.clientIdle.answered(socket);
    // An answer that went out whole is logged now. The error that cut one short (client
    // gone, upstream reset) is reported on the next ticks: log once they have run.
    if (res.writableFinished) report();
    else setImmediate(report);
  };
  res.on('close', end);
  if (queued) socket.on('close', end);
  return record;
}

/** The upstream answered: run the response passes and write the head; the transport streams the body. */
function relayResponse(head: ResponseHead, req: http.IncomingMessage, res: http.ServerResponse, socket: Socket, ctx: RequestContext, record: Exchanged, deps: HandlerDeps): boolean {
  deps.clientIdle.answered(socket);
  const out: ResponseContext = {
    status: head.status,
    headers: pairsFromRaw(head.rawHeaders),
    upstream: deps.settings.upstream,
    publicOrigin: ctx.publicOrigin,
    hsts: ctx.hsts,
  };
  for (const pass of RESPONSE_PASSES) pass(out);
  const uuid = headerOf(head.rawHeaders, 'docker-upload-uuid');
  if (uuid !== undefined) record.uploadUuid = uuid;
  explain(head, ctx, record, uuid, deps);
  try {
    res.writeHead(out.status, head.statusMessage, flattenPairs(out.headers));
  } catch (err) {
    // A header Node will not write (its parser let through what its writer refuses).
    return refuseAnswer(`header not writable: ${(err as NodeJS.ErrnoException).code ?? 'unknown'}`, req, res, socket, ctx, record, deps);
  }
  return true;
}

/** What the answer tells beyond its status, kept for the access line and the metrics (observe/explain.ts). */
function explain(head: ResponseHead, ctx: RequestContext, record: Exchanged, uuid: string | undefined, deps: HandlerDeps): void {
  if (head.status < 300 && ctx.method === 'GET') return; // most answers: nothing to tell, nothing allocated
  const asked = { method: ctx.method, url: ctx.url, authorization: ctx.headers.authorization, wallStart: performance.timeOrigin + record.started, bodyEndedAt: record.bodyEndedAt };
  const explained = explainAnswer(asked, head.status, head.rawHeaders, uuid, deps.uploads, performance.now());
  if (explained === undefined) return;
  record.explained = explained;
  if (explained.tokenExpired) warnTokenExpired(deps.logger, asked, explained.tokenExpired);
}

/**
 * What makes the upstream's status line one berth cannot relay, if anything: a status Node
 * refuses to write (outside 100–999), a 101 (berth forwards no Upgrade, so the upstream
 * cannot switch protocols), or a reason phrase with control characters.
 */
function malformedStatus(head: ResponseHead): string | undefined {
  const status = head.status;
  if (!Number.isInteger(status) || status < 100 || status > 999) return `status ${status}`;
  if (status === 101) return 'status 101 to a request that asked for no upgrade';
  if (/[^\t\x20-\x7e\x80-\xff]/.test(head.statusMessage)) return 'control character in the reason phrase';
  return undefined;
}

/** The upstream's answer cannot be relayed: it is dropped with its connection, and the client gets 502. */
function refuseAnswer(detail: string, req: http.IncomingMessage, res: http.ServerResponse, socket: Socket, ctx: RequestContext, record: Exchanged, deps: HandlerDeps): false {
  deps.clientIdle.answered(socket);
  record.error = new ProxyError('upstream_bad_response', { detail });
  deps.logger.warn({ method: ctx.method, detail }, 'the registry sent an answer berth cannot relay: answered 502');
  // writeHead keeps the reason phrase it refused (and may have stored some headers before
  // one it refused): berth's own answer starts clean.
  res.statusMessage = '';
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  sendError(req, res, record.error, hstsHeaders(ctx));
  return false;
}

/**
 * The upstream's answer is complete but the request body is not: stop sending it upstream
 * (that connection, mid-body, cannot be reused) and read and drop the rest.
 */
function discardRest(req: http.IncomingMessage, socket: Socket, forwarding: Forwarding): void {
  if (req.complete || socket.destroyed) return;
  forwarding.abort();
  req.resume();
}

/** The upstream request failed: answer with the mapped error, unless the client is gone or was answered. */
function answerError(err: unknown, req: http.IncomingMessage, res: http.ServerResponse, socket: Socket, ctx: RequestContext, record: Exchanged, deps: HandlerDeps): void {
  deps.clientIdle.answered(socket);
  if (res.writableEnded) return; // the answer was complete; a late upstream error changes nothing
  const error = socket.destroyed || res.destroyed ? new ProxyError('client_gone', { cause: err }) : classify(err);
  if (error.kind === 'descriptors_exhausted') deps.logger.error({ detail: error.detail }, 'out of file descriptors: no connection to the registry could be opened (raise ulimit -n, or lower limits.connections)');
  record.error ??= error; // berth's own reason for closing (bad_framing) stays the one logged
  if (error.kind !== 'client_gone') sendError(req, res, error, hstsHeaders(ctx));
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
