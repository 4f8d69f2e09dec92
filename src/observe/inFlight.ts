import type http from 'node:http';
import { redactPath, type Exchanged } from './accessLog.js';

/** One request in flight: its place in the list (InFlight.add hands it out, InFlight.done takes it). */
export interface InFlightEntry {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly record: Exchanged;
}

class Entry implements InFlightEntry {
  previous: Entry | undefined;
  next: Entry | undefined;
  listed = true;

  constructor(
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly record: Exchanged,
  ) {}
}

/**
 * The requests a process is serving, for the drain (and what it logs while it waits), oldest
 * first. A list threaded through its entries, not a Map: a Map made V8 carry every request in
 * flight, with its response and record, into the old generation (2.7 KB promoted per small
 * request against 0.15 without it, `--trace-gc-nvp`; the same as IdleSweep's Set did).
 */
export class InFlight {
  #first: Entry | undefined;
  #last: Entry | undefined;
  #size = 0;
  #listeners: (() => void)[] = [];

  add(req: http.IncomingMessage, res: http.ServerResponse, record: Exchanged): InFlightEntry {
    const entry = new Entry(req, res, record);
    entry.previous = this.#last;
    if (this.#last) this.#last.next = entry;
    else this.#first = entry;
    this.#last = entry;
    this.#size++;
    return entry;
  }

  /** The request's response has closed (answered, or the connection is gone). Once per entry. */
  done(handle: InFlightEntry): void {
    const entry = handle as Entry;
    if (!entry.listed) return;
    entry.listed = false;
    const { previous, next } = entry;
    if (previous) previous.next = next;
    else this.#first = next;
    if (next) next.previous = previous;
    else this.#last = previous;
    entry.previous = undefined;
    entry.next = undefined;
    this.#size--;
    for (const listener of this.#listeners) listener();
  }

  get size(): number {
    return this.#size;
  }

  responses(): http.ServerResponse[] {
    return this.#entries(Infinity).map((entry) => entry.res);
  }

  /** Calls fn after each request that finishes. */
  onDone(fn: () => void): void {
    this.#listeners.push(fn);
  }

  /** Up to `limit` requests, for a log line: never headers, and the upload state redacted. */
  describe(limit = 10): Record<string, unknown>[] {
    const now = performance.now();
    return this.#entries(limit).map(({ req, record }) => ({
      method: req.method,
      path: redactPath(req.url ?? '/'),
      client: record.client,
      bytesIn: record.bytesIn,
      bytesOut: record.bytesOut,
      seconds: Math.round((now - record.started) / 100) / 10,
    }));
  }

  /** The first `limit` entries, oldest first. */
  #entries(limit: number): Entry[] {
    const out: Entry[] = [];
    for (let entry = this.#first; entry !== undefined && out.length < limit; entry = entry.next) out.push(entry);
    return out;
  }
}
