import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeOnceBodyIn } from '../net/linger.js';

/**
 * The closed catalogue of errors berth answers itself. Each maps to one status and one
 * registry error code; the message is what a client prints, so it names the cause and
 * never an internal address or a stack.
 */
export const ERRORS = {
  bad_host: { status: 400, code: 'UNSUPPORTED', message: 'berth: the Host header is not a valid host[:port]' },
  host_required: { status: 400, code: 'UNSUPPORTED', message: 'berth: the request has no Host header, or more than one' },
  headers_too_large: { status: 431, code: 'UNSUPPORTED', message: 'berth: the request header section is too large' },
  too_many_headers: { status: 431, code: 'UNSUPPORTED', message: 'berth: the request has too many header fields' },
  bad_framing: { status: 400, code: 'UNSUPPORTED', message: 'berth: the request body does not match its framing headers' },
  method_not_allowed: { status: 405, code: 'UNSUPPORTED', message: 'berth: this method is not served' },
  misdirected: { status: 421, code: 'DENIED', message: 'berth: this server does not serve that host name' },
  bad_target: { status: 400, code: 'UNSUPPORTED', message: 'berth: the request target must be a path (origin-form) or an absolute http(s) URL' },
  https_only: { status: 400, code: 'UNSUPPORTED', message: 'berth: this registry is served over https only' },
  upstream_unreachable: { status: 502, code: 'UNAVAILABLE', message: 'berth: the registry behind this proxy is unreachable' },
  upstream_tls: { status: 502, code: 'UNAVAILABLE', message: "berth: the TLS connection to the registry failed (certificate not accepted, or the registry does not speak TLS)" },
  upstream_reset: { status: 502, code: 'UNAVAILABLE', message: 'berth: the registry closed the connection before answering' },
  upstream_bad_response: { status: 502, code: 'UNAVAILABLE', message: 'berth: the registry sent a malformed response' },
  upstream_timeout: { status: 504, code: 'UNAVAILABLE', message: 'berth: the registry did not answer in time' },
  upstream_connect_timeout: { status: 504, code: 'UNAVAILABLE', message: 'berth: timed out connecting to the registry' },
  descriptors_exhausted: { status: 503, code: 'TOOMANYREQUESTS', message: 'berth: out of file descriptors; retry shortly' },
  too_many_connections: { status: 503, code: 'TOOMANYREQUESTS', message: 'berth: too many open connections; retry shortly' },
  too_many_client_connections: { status: 429, code: 'TOOMANYREQUESTS', message: 'berth: too many open connections from this address; close some, or retry shortly' },
  client_gone: { status: 499, code: 'UNKNOWN', message: 'client closed the connection' },
  internal: { status: 500, code: 'UNKNOWN', message: 'berth: internal error' },
} as const;

export type ErrorKind = keyof typeof ERRORS;

export class ProxyError extends Error {
  readonly status: number;
  readonly registryCode: string;
  /** What the client is told: the catalogue's message (and the hint), never the detail. */
  readonly publicMessage: string;
  /** For the log only (an errno code, what failed inside). */
  readonly detail: string | undefined;
  constructor(
    readonly kind: ErrorKind,
    options?: { cause?: unknown; detail?: string; hint?: string },
  ) {
    super(options?.detail ? `${ERRORS[kind].message} (${options.detail})` : ERRORS[kind].message, { cause: options?.cause });
    this.name = 'ProxyError';
    this.status = ERRORS[kind].status;
    this.registryCode = ERRORS[kind].code;
    // A hint is for the client (what to do instead), built by berth from its settings.
    this.publicMessage = options?.hint ? `${ERRORS[kind].message}: ${options.hint}` : ERRORS[kind].message;
    this.detail = options?.detail;
  }
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** undici's own errors (the transport's), by code; a socket error by its message. */
const UNDICI: Readonly<Record<string, ErrorKind>> = {
  UND_ERR_CONNECT_TIMEOUT: 'upstream_connect_timeout',
  UND_ERR_HEADERS_TIMEOUT: 'upstream_timeout',
  UND_ERR_BODY_TIMEOUT: 'upstream_timeout',
  UND_ERR_HEADERS_OVERFLOW: 'upstream_bad_response',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'upstream_bad_response',
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'upstream_bad_response',
  UND_ERR_ABORTED: 'client_gone',
  UND_ERR_DESTROYED: 'upstream_unreachable',
  UND_ERR_CLOSED: 'upstream_unreachable',
};

/** The one mapping from whatever the transport threw to a catalogued error. */
export function classify(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const message = (err as Error | undefined)?.message;
  if (code === 'UND_ERR_SOCKET') {
    // "other side closed", "reset", "closed"; "bad response" (a 100 nobody asked for) and "bad upgrade" (a 101) are the registry's answers.
    const kind = message === 'bad response' || message === 'bad upgrade' ? 'upstream_bad_response' : 'upstream_reset';
    return new ProxyError(kind, { cause: err, detail: message });
  }
  // An assertion inside undici's client that the upstream's bytes broke (a 101 without Upgrade).
  if (code === 'ERR_ASSERTION') return new ProxyError('upstream_bad_response', { cause: err, detail: 'the HTTP client refused the answer' });
  const undici = UNDICI[code];
  if (undici) return new ProxyError(undici, { cause: err, detail: code });
  // undici's parser errors carry an HPE_ code, except those it names only by message.
  if ((err as Error | undefined)?.name === 'HTTPParserError' && !code) return new ProxyError('upstream_bad_response', { cause: err, detail: message });
  if (UNREACHABLE.has(code)) return new ProxyError('upstream_unreachable', { cause: err, detail: code });
  if (RESET.has(code)) return new ProxyError('upstream_reset', { cause: err, detail: code });
  if (code === 'EMFILE' || code === 'ENFILE') return new ProxyError('descriptors_exhausted', { cause: err, detail: code });
  if (code === 'ETIMEDOUT') return new ProxyError('upstream_connect_timeout', { cause: err });
  if (code.startsWith('HPE_')) return new ProxyError('upstream_bad_response', { cause: err, detail: code });
  // OpenSSL's verification codes (UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED, …) and Node's ERR_TLS_* / ERR_SSL_*.
  if (/^ERR_TLS_|^ERR_SSL_|CERT|^UNABLE_TO_/.test(code)) return new ProxyError('upstream_tls', { cause: err, detail: code });
  return new ProxyError('internal', { cause: err, detail: code || (err as Error | undefined)?.message });
}

/** Registry clients parse errors only under /v2/; elsewhere (Harbor's UI and API) plain text reads better. */
export function isRegistryPath(url: string | undefined): boolean {
  return url === '/v2' || (url?.startsWith('/v2/') ?? false) || (url?.startsWith('/v2?') ?? false);
}

/**
 * Answers with the error, in the registry's JSON shape under /v2/
 * (distribution/distribution registry/api/errcode). If the answer has already begun,
 * the only honest signal left is to close the connection.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, error: ProxyError, extra: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const registry = isRegistryPath(req.url);
  const body = registry
    ? JSON.stringify({ errors: [{ code: error.registryCode, message: error.publicMessage, detail: null }] }) + '\n'
    : error.publicMessage + '\n';
  const headers: Record<string, string | number> = {
    'content-type': registry ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extra,
  };
  if (registry) headers['docker-distribution-api-version'] = 'registry/2.0';
  if (error.kind === 'method_not_allowed') headers.allow = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
  // The request body may not have been read: close the connection, but only once the rest
  // of the body is in, so that the client reads this answer instead of a reset.
  closeOnceBodyIn(req, res);
  res.writeHead(error.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}
