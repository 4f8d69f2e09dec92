import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { startAdminListener } from '../admin/start.js';
import { warnings, type Config } from '../config/validate.js';
import { loadTlsMaterial, type TlsMaterial } from '../tls/material.js';
import { acmeInProcess } from './acme.js';
import { rotateTicketKeys } from '../tls/ticketKeys.js';
import { runPrimary, runWorker } from './cluster.js';
import { logServing, reloadOnHangup, stopOnSignals, type SettingsSource } from './lifecycle.js';

/**
 * The composition root: a running berth from its Config, in the mode this process is in.
 * One process (workers: 1) serves and holds the admin listener itself; with more, this
 * process is the cluster's primary (server/cluster.ts), which holds the admin listener and
 * forks the workers, each of which comes back here and serves.
 */
export async function run(config: Config, logger: Logger, source?: SettingsSource): Promise<void> {
  if (cluster.isWorker) return runWorker(config, logger, source);
  // Made here, once: workers then reuse the development certificate instead of racing to make it.
  const tls = await loadTlsMaterial(config, logger);
  // After the certificate: a setup that cannot start says only why.
  for (const warning of warnings(config)) logger.warn(warning);
  if (config.workers > 1) return runPrimary(config, tls, logger, source);
  const acme = config.acme ? acmeInProcess(config, logger) : undefined;
  const material: TlsMaterial = acme ? { ...tls, cert: acme.stored?.cert, key: acme.stored?.key } : tls;
  const { startBerth } = await import('./berth.js'); // the proxy: a cluster's primary never loads it
  const berth = await startBerth(config, material, logger, { ticketKeys: rotateTicketKeys(config.tls.ticketKeyRotation, logger) });
  acme?.serve(berth);
  const admin = await startAdminListener(config, logger, {
    registry: berth.registry,
    certificate: () => berth.certificate(),
    ...(acme ? { acme: () => acme.manager.status() } : {}),
    draining: () => berth.draining,
  });
  logServing(logger, config, berth.address, tls, admin?.address, berth.httpAddress);
  stopOnSignals(berth, logger);
  reloadOnHangup(berth, logger, source);
}
