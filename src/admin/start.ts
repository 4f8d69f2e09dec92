import type crypto from 'node:crypto';
import type { Logger } from 'pino';
import type client from 'prom-client';
import { describeListen, type Config } from '../config/validate.js';
import { registerAcme, registerCertificateExpiry, registerDraining } from '../observe/metrics.js';
import type { AcmeStatus } from '../tls/acme/manager.js';
import { createReadiness, type ReadinessSources } from './readiness.js';
import { startAdmin, type Admin } from './server.js';

/** How long the upstream has to answer the readiness probe's GET /v2/. */
export const READY_PROBE_TIMEOUT_MS = 2000;

export interface AdminParts {
  /** This process's metrics; the served certificate's expiry and the draining flag are added to them. */
  readonly registry: client.Registry;
  /** Metrics gathered from elsewhere (a primary's workers), served before the registry's own. */
  readonly gathered?: () => Promise<string>;
  /** The leaf in service; undefined while ACME has issued none. */
  certificate(): crypto.X509Certificate | undefined;
  /** ACME's state, when the certificate comes from ACME. */
  acme?(): AcmeStatus;
  draining(): boolean;
}

/**
 * The admin side of a serving berth, whichever process holds it (the one process, or a
 * cluster's primary): the metrics only that side knows, and the admin listener where
 * admin.listen says (undefined when it is "off").
 */
export async function startAdminListener(config: Config, logger: Logger, parts: AdminParts): Promise<Admin | undefined> {
  const { registry, gathered } = parts;
  registerCertificateExpiry(registry, () => {
    const leaf = parts.certificate();
    return leaf && new Date(leaf.validTo);
  });
  registerDraining(registry, parts.draining);
  if (parts.acme) registerAcme(registry, parts.acme);
  if (config.admin.listen === undefined) return undefined;
  const metrics = async (): Promise<{ contentType: string; body: string }> => ({
    contentType: registry.contentType,
    body: gathered ? `${await gathered()}\n${await registry.metrics()}` : await registry.metrics(),
  });
  const serving = { pid: process.pid, upstream: config.upstream.origin, listen: describeListen(config.listen), publicOrigin: config.publicOrigin?.origin ?? null };
  const readiness = createReadiness({ upstream: config.upstream, timeoutMs: READY_PROBE_TIMEOUT_MS, certificate: parts.certificate, ...acmeSources(parts.acme), draining: parts.draining, serving });
  return startAdmin(config.admin.listen, { metrics, readiness }, logger, { headersTimeout: config.timeouts.headers });
}

/** What /readyz reads of ACME: why there is no certificate yet, the next renewal, the last failure. */
function acmeSources(status: (() => AcmeStatus) | undefined): Pick<ReadinessSources, 'certificateWait' | 'acme'> {
  if (!status) return {};
  return {
    certificateWait: () => status().waiting,
    acme: () => {
      const { nextRenewal, lastError } = status();
      return { nextRenewal: nextRenewal?.toISOString() ?? null, lastError: lastError ?? null };
    },
  };
}
