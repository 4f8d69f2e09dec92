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

/** The transport's own errors (proxy/upstream/), by code. */
const TRANSPORT: Readonly<Record<string, ErrorKind>> = {
  BERTH_UPSTREAM_CLOSED: 'upstream_reset',
  BERTH_MALFORMED_ANSWER: 'upstream_bad_response',
  BERTH_CONNECT_TIMEOUT: 'upstream_connect_timeout',
};

/** The one mapping from whatever the transport threw to a catalogued error. */
export function classify(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const transport = TRANSPORT[code];
  if (transport) return new ProxyError(transport, { cause: err, detail: (err as Error).message });
  if (UNREACHABLE.has(code)) return new ProxyError('upstream_unreachable', { cause: err, detail: code });
  if (RESET.has(code)) return new ProxyError('upstream_reset', { cause: err, detail: code });
  if (code === 'EMFILE' || code === 'ENFILE') return new ProxyError('descriptors_exhausted', { cause: err, detail: code });
  if (code === 'ETIMEDOUT') return new ProxyError('upstream_connect_timeout', { cause: err });
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
