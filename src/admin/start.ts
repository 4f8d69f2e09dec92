import type crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/validate.js';
import { createReadiness } from './readiness.js';
import { startAdmin, type Admin } from './server.js';

/** How long the upstream has to answer the readiness probe's GET /v2/. */
export const READY_PROBE_TIMEOUT_MS = 2000;

export interface AdminParts {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** The leaf in service. */
  certificate(): crypto.X509Certificate;
  draining(): boolean;
}

/** Starts the admin listener where admin.listen says; undefined when it is "off". */
export async function startAdminListener(config: Config, logger: Logger, parts: AdminParts): Promise<Admin | undefined> {
  if (config.admin.listen === undefined) return undefined;
  const readiness = createReadiness({ upstream: config.upstream, timeoutMs: READY_PROBE_TIMEOUT_MS, certificate: parts.certificate, draining: parts.draining });
  return startAdmin(config.admin.listen, { metrics: parts.metrics, readiness }, logger, { headersTimeout: config.timeouts.headers });
}
