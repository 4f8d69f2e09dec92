import type http from 'node:http';
import pino, { type Logger } from 'pino';
import type { ProxyError } from '../proxy/errors.js';
import type { Explained } from './explain.js';

/** What the handler counts for one request, for its access line. */
export interface Exchanged {
  /** performance.now() when the request arrived, ms. */
  readonly started: number;
  bytesIn: number;
  bytesOut: number;
  client: string;
  error: ProxyError | undefined;
  /** The upstream's Docker-Upload-UUID answer header (a POST that starts an upload names it only there). */
  uploadUuid?: string;
  /** X-Request-Id as sent upstream (proxy/request/requestId.ts). */
  requestId?: string;
  /** performance.now() when the request went to the upstream, ms. */
  forwardedAt?: number;
  /** From then to the upstream's answer head, ms. */
  upstreamMs?: number;
  /** performance.now() when berth had read the whole request body, ms. */
  bodyEndedAt?: number;
  /** What the answer tells beyond its status (observe/explain.ts). */
  explained?: Explained;
}

/**
 * The `_state` query parameter of an upload URL is the registry's signed upload state;
 * anyone holding it can continue the upload, so it never reaches a log. The registry
 * decodes parameter names (`%5Fstate` is `_state` to it), so names are compared decoded.
 */
export function redactPath(url: string): string {
  if (!url.includes('?')) return url;
  return url.replace(/([?&])([^=&#]*)=([^&#]*)/g, (whole, separator: string, name: string) => (decodedName(name) === '_state' ? `${separator}${name}=REDACTED` : whole));
}

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

const UPLOAD_PATH = /\/blobs\/uploads\/([^/?#]+)/;

export function uploadUuid(url: string, answered: string | undefined): string | undefined {
  return answered ?? UPLOAD_PATH.exec(url)?.[1];
}

/**
 * One line per request. Headers are not logged at all, so Authorization and cookies
 * cannot leak; status 499 (nginx's convention) means the client left before an answer.
 * Returned as the line's JSON fields after the logger's own (`,"msg":"request","method":…`):
 * written once per request, it is built as one string (AccessLog), not as an object that
 * pino would then walk and stringify.
 */
export function accessFields(req: http.IncomingMessage, res: http.ServerResponse, rec: Exchanged): string {
  const url = req.url ?? '/';
  let line = `,"msg":"request","method":"${jsonChars(req.method ?? '')}","path":"${jsonChars(redactPath(url))}","status":${res.headersSent ? res.statusCode : 499},"bytesIn":${rec.bytesIn},"bytesOut":${rec.bytesOut},"durationMs":${ms(performance.now() - rec.started)},"client":"${jsonChars(rec.client)}"`;
  if (rec.requestId !== undefined) line += `,"requestId":"${jsonChars(rec.requestId)}"`;
  const target = registryTarget(url);
  if (target !== undefined) {
    line += `,"repository":"${jsonChars(target.repository)}"`;
    if (target.reference !== undefined) line += `,"reference":"${jsonChars(target.reference)}"`;
  }
  const uuid = uploadUuid(url, rec.uploadUuid);
  if (uuid) line += `,"uploadUuid":"${jsonChars(uuid)}"`;
  const user = userOf(req.headers.authorization);
  if (user !== undefined) line += `,"user":"${jsonChars(user)}"`;
  const agent = req.headers['user-agent'];
  if (agent !== undefined) line += `,"userAgent":"${jsonChars(agent.length > MAX_TEXT ? `${agent.slice(0, MAX_TEXT)}…` : agent)}"`;
  if (rec.upstreamMs !== undefined) line += `,"upstreamMs":${ms(rec.upstreamMs)}`;
  const explained = rec.explained;
  if (explained !== undefined) {
    if (explained.finishMs !== undefined) line += `,"finishMs":${ms(explained.finishMs)}`;
    if (explained.mount !== undefined) line += `,"mount":"${jsonChars(explained.mount)}"`;
    if (explained.anotherHop !== undefined) {
      line += ',"notFromRegistry":true';
      if (explained.anotherHop.server !== undefined) line += `,"answerServer":"${jsonChars(explained.anotherHop.server.slice(0, MAX_TEXT))}"`;
    }
    if (explained.tokenExpired !== undefined) line += ',"tokenExpired":true';
  }
  if (!res.writableFinished) line += ',"completed":false';
  if (rec.error) line += `,"error":"${jsonChars(rec.error.kind)}"`;
  if (rec.error?.detail) line += `,"errorDetail":"${jsonChars(rec.error.detail)}"`;
  return line;
}

/**
 * The characters of a JSON string, between its quotes, which the line's text has around
 * it: what a client or the registry sent is escaped, whatever it holds; `"${jsonChars(v)}"`
 * is JSON.stringify(v) exactly. Most values (methods, paths, addresses, ids) hold nothing
 * JSON escapes (`"`, `\\`, control characters, unpaired surrogates) and go in as they are: a
 * scan costs half of JSON.stringify's setup (48 against 100 ns for a line's values; a
 * regular expression's test, 75), and with the quotes in the line's own text no quoted
 * copy of each value is made (0.16 KiB a line).
 */
export const jsonChars = (value: string): string => {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Any surrogate sends the value to JSON.stringify, which tells paired from unpaired.
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value).slice(1, -1);
  }
  return value;
};

/**
 * Milliseconds to the microsecond, as a JSON number: String(Math.round(value * 1000) / 1000)
 * exactly, built from integers: 50 against 120-170 ns (a double's shortest decimal is slow).
 */
export const ms = (value: number): string => {
  const micros = Math.round(value * 1000);
  // Beyond 15 digits (or NaN, infinite) the double's own shortest decimal may differ from the digits.
  if (!(micros > -1e15 && micros < 1e15)) return String(micros / 1000);
  const size = micros < 0 ? -micros : micros;
  const whole = Math.floor(size / 1000);
  const fraction = size - whole * 1000;
  const sign = micros < 0 ? '-' : '';
  if (fraction === 0) return `${sign}${whole}`;
  const digits = fraction % 100 === 0 ? `${fraction / 100}` : fraction % 10 === 0 ? `${fraction < 100 ? '0' : ''}${fraction / 10}` : `${fraction < 10 ? '00' : fraction < 100 ? '0' : ''}${fraction}`;
  return `${sign}${whole}.${digits}`;
};

/** Writes one request's access line. */
export type AccessLog = (req: http.IncomingMessage, res: http.ServerResponse, rec: Exchanged) => void;

/**
 * Writes the access lines into the logger's own stream (its stdout destination, or the
 * pretty transport), framed as pino frames every line (`{"level":30,"time":…,"pid":…`), at
 * the logger's level when written (a reload may change it). Through pino, each line cost an
 * object and its walk: about 4.5 KiB of garbage per request, a fifth of all berth allocated
 * for a small request (npm run bench:alloc).
 */
export function accessLog(logger: Logger): AccessLog {
  const own = logger as Logger & Record<symbol, unknown>;
  const stream = own[pino.symbols.streamSym] as { write(line: string): unknown; [key: symbol]: unknown };
  const info = pino.levels.values.info!;
  const given = own[pino.symbols.timeSym] as () => string;
  const time = given === pino.stdTimeFunctions.epochTime ? epochTime() : given;
  // A stream that wants pino's metadata with each line (pino.multistream) gets the line through pino.
  if (stream[pino.symbols.needsMetadataGsym]) return (req, res, rec) => logger.info(JSON.parse(`{${accessFields(req, res, rec).slice(1)}}`) as object);
  const level = `{"level":${info}`;
  return (req, res, rec) => {
    if (logger.levelVal > info) return;
    stream.write(`${level}${time()}${own[pino.symbols.chindingsSym] as string}${accessFields(req, res, rec)}}\n`);
  };
}

/**
 * pino's epochTime (`,"time":<ms since the epoch>`, berth's logger's), its text made once per
 * millisecond: the decimal of a 13-digit number takes V8's slow path, and requests
 * arriving within one millisecond share it.
 */
function epochTime(): () => string {
  let last = -1;
  let text = '';
  return () => {
    const now = Date.now();
    if (now !== last) {
      last = now;
      text = `,"time":${now}`;
    }
    return text;
  };
}

/** Longest user agent or user name logged, in characters. */
const MAX_TEXT = 256;

// Repository names have one or more path components (distribution/reference): the
// operation is read from the end of the path, the repository is everything before it.
const TARGETS: readonly [RegExp, boolean][] = [
  [/^\/v2\/(.+)\/blobs\/uploads(?:\/[^/?#]*)?(?:[?#]|$)/, false],
  [/^\/v2\/(.+)\/(?:blobs|manifests|referrers)\/([^/?#]+)(?:[?#]|$)/, true],
  [/^\/v2\/(.+)\/tags\/list(?:[?#]|$)/, false],
];

/** The repository a registry request is about, and the tag or digest it names. */
export function registryTarget(url: string): { repository: string; reference?: string } | undefined {
  // Every target names a repository and then an operation: a slash after /v2/.
  if (!url.startsWith('/v2/') || url.indexOf('/', 4) < 0) return undefined;
  for (const [pattern, referenced] of TARGETS) {
    const m = pattern.exec(url);
    if (m) return referenced ? { repository: m[1]!, reference: m[2]! } : { repository: m[1]! };
  }
  return undefined;
}

/**
 * Who the client says it is: the user of Basic credentials (never the password), or the
 * `sub` claim of a bearer token, read without checking its signature (the registry checks
 * it; this is for the log only, and a token is never logged).
 */
export function userOf(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const space = authorization.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = authorization.slice(0, space).toLowerCase();
  const value = authorization.slice(space + 1).trim();
  let user: unknown;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    user = colon > 0 ? decoded.slice(0, colon) : undefined;
  } else if (scheme === 'bearer') {
    const parts = value.split('.');
    if (parts.length !== 3) return undefined;
    try {
      user = (JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    } catch {
      return undefined;
    }
  }
  if (typeof user !== 'string' || user === '') return undefined;
  return user.length > MAX_TEXT ? `${user.slice(0, MAX_TEXT)}…` : user;
}
