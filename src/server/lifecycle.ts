import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/validate.js';
import { logTrustInstructions, type TlsMaterial } from '../tls/material.js';
import type { Berth } from './berth.js';

/** The one "serving" line, logged once per berth whatever the number of workers. */
export function logServing(logger: Logger, config: Config, address: AddressInfo, tls: TlsMaterial): void {
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  logger.info(
    {
      listen: `https://${host}:${address.port}`,
      upstream: config.upstream.origin,
      publicOrigin: config.publicOrigin?.origin ?? "(from each request's Host)",
      trustedProxies: config.trustedProxies.cidrs,
      workers: config.workers,
    },
    'berth is serving',
  );
  if (tls.devCa) logTrustInstructions(logger, tls.devCa, config.publicOrigin?.host ?? `localhost:${address.port}`);
}

/** Exits once the log lines written so far are out, or after a second if stdout is stalled. */
export function exitAfterFlush(logger: Logger, code: number): void {
  setTimeout(() => process.exit(code), 1000);
  logger.flush(() => process.exit(code));
}

/**
 * SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight
 * finish, exit 0. A second signal closes what is left and exits 1.
 */
export function stopOnSignals(berth: Berth, logger: Logger, signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: closing open connections now');
      berth.server.closeAllConnections();
      exitAfterFlush(logger, 1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'stopping: no new connections; waiting for requests in flight');
    void berth.close().then(() => {
      logger.info('stopped');
      exitAfterFlush(logger, 0);
    });
  };
  for (const signal of signals) process.on(signal, stop);
}
