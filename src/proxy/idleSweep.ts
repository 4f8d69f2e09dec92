/** What IdleSweep keeps on each exchange it watches: its marks and its place in the list. */
export interface Watched<T> {
  /** Bytes moved since the last sweep. */
  active: boolean;
  /** When a sweep first found it quiet, ms (performance.now()). */
  quietSince: number;
  watched: boolean;
  previousWatched: T | undefined;
  nextWatched: T | undefined;
  /** Quiet for the whole limit: the exchange ends itself. */
  timedOut(): void;
}

/**
 * berth's inactivity limit on exchanges with the upstream (timeouts.upstreamResponse): one
 * interval for all of them instead of a timer per request refreshed by every chunk, which
 * would put timer work on the body path. A chunk only marks its exchange active; a sweep
 * (every limit/8, at most every second) ends an exchange that has been quiet since the
 * sweep before the limit ran out. So an exchange ends after between the limit and the
 * limit plus one sweep of silence, never before.
 */
export class IdleSweep<T extends Watched<T>> {
  /**
   * The exchanges watched, as a list threaded through them. (A Set here made V8 carry the
   * exchanges, with their requests and responses, into the old generation: 4.5 KB promoted
   * per small request against 1.4–3.5 with this list and 2.1 with a timer per exchange, and
   * about three times the full collections; measured with v8.GCProfiler.)
   */
  private first: T | undefined;
  private readonly every: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly limit: number) {
    this.every = Math.max(5, Math.min(1000, Math.ceil(limit / 8)));
  }

  watch(exchange: T): void {
    exchange.active = true;
    exchange.watched = true;
    exchange.nextWatched = this.first;
    exchange.previousWatched = undefined;
    if (this.first) this.first.previousWatched = exchange;
    this.first = exchange;
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.every);
      this.timer.unref();
    }
  }

  unwatch(exchange: T): void {
    if (!exchange.watched) return;
    exchange.watched = false;
    const { previousWatched: previous, nextWatched: next } = exchange;
    if (previous) previous.nextWatched = next;
    else this.first = next;
    if (next) next.previousWatched = previous;
    exchange.previousWatched = undefined;
    exchange.nextWatched = undefined;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    if (this.first === undefined) return this.stop();
    const now = performance.now();
    let exchange: T | undefined = this.first;
    while (exchange !== undefined) {
      const next: T | undefined = exchange.nextWatched;
      if (exchange.active) {
        exchange.active = false;
        exchange.quietSince = now;
      } else if (now - exchange.quietSince >= this.limit) {
        this.unwatch(exchange);
        exchange.timedOut();
      }
      exchange = next;
    }
  }
}
