import type { Logger } from 'pino';
import { isNamed } from '../proxy/headerName.js';
import { redactPath, uploadUuid } from './accessLog.js';
import { operationOf } from './operation.js';

/**
 * What berth can tell about a registry answer that a general-purpose front cannot, for the
 * access line, the metrics and a warning: the time the registry took over a final PUT, a
 * cross-repository mount taken or refused, an error page from another hop rather than the
 * registry, and a bearer token that expired while an upload ran. Read once per answer;
 * a plain GET that succeeded costs two comparisons.
 */

export interface Explained {
  /**
   * The final PUT of a blob upload: ms from the last byte of its body to the registry's
   * answer (digest check, move to storage: where other fronts' timeouts cut pushes).
   */
  finishMs?: number;
  /** A POST that asked to mount a blob from another repository: mounted (201) or an upload started instead (202). */
  mount?: 'mounted' | 'upload';
  /**
   * An error on /v2/ from something between berth and the registry (a proxy's 413, a
   * balancer's 502/504, an HTML page): without the registry's Docker-Distribution-Api-Version.
   */
  anotherHop?: { readonly server: string | undefined };
  /** A PATCH or PUT of an upload refused 401 with a bearer token whose `exp` had passed. */
  tokenExpired?: TokenExpired;
}

export interface TokenExpired {
  /** exp − iat (or nbf) of the token the client sent, s; undefined when it has neither. */
  readonly lifetimeSeconds: number | undefined;
  /** How long before this request the token expired, s. */
  readonly expiredSecondsAgo: number;
  /** Since berth saw the upload start (its POST), s; undefined when another process saw it. */
  readonly uploadSeconds: number | undefined;
}

/** The request, as the explanation needs it. */
export interface Asked {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  /** Date.now() when the request arrived. */
  readonly wallStart: number;
  /** performance.now() when its body ended (berth had read all of it), if it has. */
  readonly bodyEndedAt: number | undefined;
}

const API_VERSION = 'docker-distribution-api-version';
/** Statuses a registry only sends with its API version header; without it, a hop in between sent them. */
const HOP_STATUSES = new Set([413, 502, 503, 504]);

/**
 * When uploads started, by their Docker-Upload-UUID, for the token explanation: one map
 * per process, bounded (the oldest go first), entries removed when an upload ends.
 */
export class UploadClock {
  readonly #started = new Map<string, number>();
  constructor(private readonly capacity = 4096) {}

  started(uuid: string, at: number): void {
    if (this.#started.size >= this.capacity) this.#started.delete(this.#started.keys().next().value!);
    this.#started.set(uuid, at);
  }

  elapsedMs(uuid: string, now: number): number | undefined {
    const at = this.#started.get(uuid);
    return at === undefined ? undefined : now - at;
  }

  ended(uuid: string): void {
    this.#started.delete(uuid);
  }

  get size(): number {
    return this.#started.size;
  }
}

/** The registry's answer head has arrived: what it tells. `uuid` is the upload's, from the path or the answer. */
export function explainAnswer(asked: Asked, status: number, rawHeaders: readonly string[], uuid: string | undefined, uploads: UploadClock, now: number): Explained | undefined {
  const { method, url } = asked;
  if (status < 300 && method === 'GET') return undefined;
  if (!url.startsWith('/v2/')) return undefined;
  let explained: Explained | undefined;
  if (status >= 400 && !hasHeader(rawHeaders, API_VERSION) && (HOP_STATUSES.has(status) || isHtml(rawHeaders))) {
    explained = { anotherHop: { server: headerOf(rawHeaders, 'server') } };
  }
  if (method === 'GET' || method === 'HEAD') return explained;
  if (operationOf(method, url) !== 'blob_upload') return explained;
  const id = uploadUuid(url, uuid);
  if (method === 'POST') {
    if (status === 202 && id !== undefined) uploads.started(id, now);
    if (url.includes('mount=') && (status === 201 || status === 202)) explained = { ...explained, mount: status === 201 ? 'mounted' : 'upload' };
  } else if (method === 'PUT' && asked.bodyEndedAt !== undefined && status < 500) {
    explained = { ...explained, finishMs: now - asked.bodyEndedAt };
  }
  if (status === 401 && (method === 'PATCH' || method === 'PUT')) {
    const expired = expiredToken(asked.authorization, asked.wallStart);
    if (expired) explained = { ...explained, tokenExpired: { ...expired, uploadSeconds: id === undefined ? undefined : secondsOf(uploads.elapsedMs(id, now)) } };
  }
  if (id !== undefined && ((method === 'PUT' && status < 300) || method === 'DELETE')) uploads.ended(id);
  return explained;
}

/** Said at once: the fix is the registry's, and the push has failed. */
export function warnTokenExpired(logger: Logger, asked: Asked, expired: TokenExpired): void {
  logger.warn(
    { method: asked.method, path: redactPath(asked.url), tokenLifetimeSeconds: expired.lifetimeSeconds, tokenExpiredSecondsAgo: expired.expiredSecondsAgo, uploadSeconds: expired.uploadSeconds },
    "the registry refused an upload's request (401): the bearer token the client sent had expired while the upload ran; raise the registry's token lifetime (Harbor: Administration, Configuration, System Settings, Token Expiration) above the longest push",
  );
}

/**
 * The claims of a bearer JWT whose `exp` is at or before `at` (ms): read, never trusted
 * (the registry decides; this only explains its 401).
 */
export function expiredToken(authorization: string | undefined, at: number): Omit<TokenExpired, 'uploadSeconds'> | undefined {
  if (authorization === undefined || !/^bearer /i.test(authorization)) return undefined;
  const parts = authorization.slice(7).trim().split('.');
  if (parts.length !== 3) return undefined;
  let claims: { exp?: unknown; iat?: unknown; nbf?: unknown };
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return undefined;
  }
  if (typeof claims !== 'object' || claims === null || typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) return undefined;
  const nowSeconds = at / 1000;
  if (claims.exp > nowSeconds) return undefined;
  const issued = typeof claims.iat === 'number' ? claims.iat : typeof claims.nbf === 'number' ? claims.nbf : undefined;
  return {
    lifetimeSeconds: issued !== undefined && Number.isFinite(issued) && issued <= claims.exp ? Math.round(claims.exp - issued) : undefined,
    expiredSecondsAgo: Math.round(nowSeconds - claims.exp),
  };
}

function secondsOf(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.round(ms / 1000);
}

function hasHeader(raw: readonly string[], name: string): boolean {
  return headerOf(raw, name) !== undefined;
}

/** The first value of a header, by its name in lower case. */
export function headerOf(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) if (isNamed(raw[i]!, name)) return raw[i + 1];
  return undefined;
}

function isHtml(raw: readonly string[]): boolean {
  return /^\s*text\/html/i.test(headerOf(raw, 'content-type') ?? '');
}
