import type http from 'node:http';
import { redactPath, type Exchanged } from './accessLog.js';

interface Entry {
  readonly res: http.ServerResponse;
  readonly record: Exchanged;
}

/** The requests a process is serving, for the drain (and what it logs while it waits). */
export class InFlight {
  readonly #entries = new Map<http.IncomingMessage, Entry>();
  #listeners: (() => void)[] = [];

  add(req: http.IncomingMessage, res: http.ServerResponse, record: Exchanged): void {
    this.#entries.set(req, { res, record });
  }

  /** The request's response has closed (answered, or the connection is gone). */
  done(req: http.IncomingMessage): void {
    if (!this.#entries.delete(req)) return;
    for (const listener of this.#listeners) listener();
  }

  get size(): number {
    return this.#entries.size;
  }

  responses(): http.ServerResponse[] {
    return [...this.#entries.values()].map((entry) => entry.res);
  }

  /** Calls fn after each request that finishes. */
  onDone(fn: () => void): void {
    this.#listeners.push(fn);
  }

  /** Up to `limit` requests, for a log line: never headers, and the upload state redacted. */
  describe(limit = 10): Record<string, unknown>[] {
    const now = performance.now();
    return [...this.#entries]
      .slice(0, limit)
      .map(([req, { record }]) => ({
        method: req.method,
        path: redactPath(req.url ?? '/'),
        client: record.client,
        bytesIn: record.bytesIn,
        bytesOut: record.bytesOut,
        seconds: Math.round((now - record.started) / 100) / 10,
      }));
  }
}
