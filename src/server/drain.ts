import type http from 'node:http';
import type { Logger } from 'pino';
import type { InFlight } from '../observe/inFlight.js';

export type DrainEnd = 'drained' | 'cut';

export interface Drain {
  readonly draining: boolean;
  /**
   * Stops accepting connections, closes idle ones (and each kept-alive one as soon as its
   * request is answered), and resolves once no request is left: 'drained' when all
   * finished, 'cut' when the grace period ended or cut() was called first.
   */
  begin(): Promise<DrainEnd>;
  /** Closes every connection now (a second stop signal). */
  cut(): void;
  /** A new grace period (a settings reload), for a drain that has not begun. */
  setGrace(ms: number): void;
}

export interface DrainOptions {
  readonly server: http.Server;
  readonly inFlight: InFlight;
  readonly logger: Logger;
  /** Longest wait for requests in flight, ms; 0 = no limit. */
  readonly grace: number;
  /** How often the requests still waited for are logged, ms. */
  readonly reportEvery?: number;
}

export function createDrain(options: DrainOptions): Drain {
  const { server, inFlight, logger } = options;
  let draining = false;
  let grace = options.grace;
  let outcome: DrainEnd = 'drained';
  let finish: ((end: DrainEnd) => void) | undefined;
  let ended: Promise<DrainEnd> | undefined;

  const closeIdleSoon = (): void => void setImmediate(() => server.closeIdleConnections());

  const cut = (): void => {
    if (!draining) return;
    if (inFlight.size > 0) logger.warn({ requests: inFlight.size, cut: inFlight.describe() }, 'closing the connections of requests still in flight');
    outcome = 'cut';
    server.closeAllConnections();
    // The closed requests log their access lines on the next ticks; the drain ends when
    // they have, or after a second at most.
    setTimeout(() => finish?.('cut'), 1000).unref();
  };

  return {
    get draining() {
      return draining;
    },
    begin() {
      if (ended) return ended;
      draining = true;
      ended = new Promise<DrainEnd>((resolve) => {
        let timers: NodeJS.Timeout[] = [];
        finish = (end) => {
          for (const timer of timers) clearInterval(timer);
          timers = [];
          finish = undefined;
          resolve(end);
        };
        const check = (): void => {
          if (inFlight.size === 0) finish?.(outcome);
        };
        // A request that is answered during the drain says Connection: close, and its
        // connection is closed once idle, so kept-alive clients move on to another instance.
        for (const res of inFlight.responses()) if (!res.headersSent) res.shouldKeepAlive = false;
        server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
          res.shouldKeepAlive = false;
        });
        inFlight.onDone(() => {
          closeIdleSoon();
          setImmediate(check);
        });
        server.close();
        server.closeIdleConnections();
        if (inFlight.size > 0) {
          logger.info({ requests: inFlight.size, grace: grace === 0 ? 'none' : `${grace / 1000}s`, waiting: inFlight.describe() }, 'draining: waiting for requests in flight');
        }
        const report = setInterval(() => {
          logger.info({ requests: inFlight.size, waiting: inFlight.describe() }, 'draining: still waiting');
        }, options.reportEvery ?? 10_000);
        timers.push(report);
        if (grace > 0) {
          timers.push(
            setTimeout(() => {
              logger.warn({ grace: `${grace / 1000}s` }, 'grace period over');
              cut();
            }, grace),
          );
        }
        check();
      });
      return ended;
    },
    cut,
    setGrace(ms) {
      if (!draining) grace = ms;
    },
  };
}
