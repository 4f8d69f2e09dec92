import type { OriginView } from './origin.js';

/**
 * Response header lines as name, value, name, value…, in the upstream's order and case,
 * duplicates kept: what the transport reads (proxy/upstream/) and what `writeHead` takes, with no pair built
 * per line on the way.
 */
export type HeaderLines = string[];

export interface ResponseContext extends OriginView {
  readonly status: number;
  headers: HeaderLines;
  /** Strict-Transport-Security value for this answer, when HSTS is on and the host is a name (see hsts.ts). */
  readonly hsts?: string | undefined;
}

/** A step on the way out: changes the response headers in the context. */
export type ResponsePass = (ctx: ResponseContext) => void;
