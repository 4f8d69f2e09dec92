import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/validate.js';
import { logTrustInstructions, type TlsMaterial } from '../tls/material.js';
import type { Berth } from './berth.js';
import { watchConfigFile } from '../config/watch.js';

/** The one "serving" line, logged once per berth whatever the number of workers. */
export function logServing(logger: Logger, config: Config, address: AddressInfo, tls: TlsMaterial, admin: AddressInfo | undefined, http: AddressInfo | undefined): void {
  const host = (a: AddressInfo): string => (a.address.includes(':') ? `[${a.address}]` : a.address);
  logger.info(
    {
      listen: `https://${host(address)}:${address.port}`,
      http: http ? `http://${host(http)}:${http.port}` : 'off',
      admin: admin ? `http://${host(admin)}:${admin.port}` : 'off',
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
 * finish within shutdown.grace, exit 0. A second signal, or the end of the grace
 * period, closes what is left; berth then exits 1, since requests were cut.
 */
export function stopOnSignals(berth: Berth, logger: Logger, signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: closing open connections now');
      berth.cut();
      return;
    }
    stopping = true;
    logger.info({ signal, requests: berth.inFlight.size }, 'stopping: no new connections; waiting for requests in flight');
    void berth.stop().then((end) => {
      logger.info({ end }, 'stopped');
      exitAfterFlush(logger, end === 'drained' ? 0 : 1);
    });
  };
  for (const signal of signals) process.on(signal, stop);
}

/**
 * Where a running berth reads its settings again: `load` (the config file, BERTH_*
 * variables and flags, as at start), on SIGHUP and when `file`, the config file in use,
 * changes.
 */
export interface SettingsSource {
  load(): Config;
  readonly file?: string | undefined;
}

/**
 * Reads the settings again and applies them: those that need no new listener at once, any
 * other change named as taking a restart. A config that no longer loads is refused: the
 * settings in service stay.
 */
export function reloadSettings(berth: Berth, logger: Logger, load: () => Config): void {
  let next: Config;
  try {
    next = load();
  } catch (err) {
    logger.error({ error: (err as Error).message }, 'settings not reloaded: the settings in service stay');
    return;
  }
  const { applied, restart } = berth.reconfigure(next);
  if (applied.length > 0) logger.info({ settings: applied }, 'settings reloaded');
  if (restart.length > 0) logger.warn({ settings: restart }, 'settings changed that only a restart applies: restart berth to apply them');
}

/**
 * SIGHUP: re-read the certificate and key (they are watched too; this forces it), and the
 * settings. With `watchFile` (a single process), a change of the config file reloads the
 * settings too; a worker gets false: its primary watches the file and tells it.
 */
export function reloadOnHangup(berth: Berth, logger: Logger, source: SettingsSource | undefined, watchFile = true): void {
  process.on('SIGHUP', () => {
    berth.reloadCertificate('SIGHUP');
    if (source) reloadSettings(berth, logger, source.load);
  });
  // Not persistent: the watch never keeps a stopping process alive.
  if (source?.file !== undefined && watchFile) watchConfigFile(source.file, logger, () => reloadSettings(berth, logger, source.load));
}
