import type http from 'node:http';
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
 */
export function accessLine(req: http.IncomingMessage, res: http.ServerResponse, rec: Exchanged): Record<string, unknown> {
  const url = req.url ?? '/';
  const line: Record<string, unknown> = {
    msg: 'request',
    method: req.method,
    path: redactPath(url),
    status: res.headersSent ? res.statusCode : 499,
    bytesIn: rec.bytesIn,
    bytesOut: rec.bytesOut,
    durationMs: Math.round((performance.now() - rec.started) * 1000) / 1000,
    client: rec.client,
  };
  if (rec.requestId !== undefined) line.requestId = rec.requestId;
  const target = registryTarget(url);
  if (target !== undefined) {
    line.repository = target.repository;
    if (target.reference !== undefined) line.reference = target.reference;
  }
  const uuid = uploadUuid(url, rec.uploadUuid);
  if (uuid) line.uploadUuid = uuid;
  const user = userOf(req.headers.authorization);
  if (user !== undefined) line.user = user;
  const agent = req.headers['user-agent'];
  if (agent !== undefined) line.userAgent = agent.length > MAX_TEXT ? `${agent.slice(0, MAX_TEXT)}…` : agent;
  if (rec.upstreamMs !== undefined) line.upstreamMs = Math.round(rec.upstreamMs * 1000) / 1000;
  const explained = rec.explained;
  if (explained !== undefined) {
    if (explained.finishMs !== undefined) line.finishMs = Math.round(explained.finishMs * 1000) / 1000;
    if (explained.mount !== undefined) line.mount = explained.mount;
    if (explained.anotherHop !== undefined) {
      line.notFromRegistry = true;
      if (explained.anotherHop.server !== undefined) line.answerServer = explained.anotherHop.server.slice(0, MAX_TEXT);
    }
    if (explained.tokenExpired !== undefined) line.tokenExpired = true;
  }
  if (!res.writableFinished) line.completed = false;
  if (rec.error) line.error = rec.error.kind;
  if (rec.error?.detail) line.errorDetail = rec.error.detail;
  return line;
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
  if (!url.startsWith('/v2/')) return undefined;
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
