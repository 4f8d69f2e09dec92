import type http from 'node:http';
import type { ProxyError } from '../proxy/errors.js';

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
  const uuid = uploadUuid(url, rec.uploadUuid);
  if (uuid) line.uploadUuid = uuid;
  if (!res.writableFinished) line.completed = false;
  if (rec.error) line.error = rec.error.kind;
  if (rec.error?.detail) line.errorDetail = rec.error.detail;
  return line;
}
