import crypto from 'node:crypto';
import os from 'node:os';
import type { Logger } from 'pino';
import { namesClientsUse, type Config } from '../config/validate.js';
import { ensureDevCertificate } from './devCert.js';
import { loadPair, warnUncovered } from './files.js';

/** Where the certificate in service comes from. */
export type CertificateSource = 'files' | 'acme' | 'development';

export interface TlsMaterial {
  readonly source: CertificateSource;
  /** Unset only for ACME before the first certificate is issued: handshakes fail meanwhile. */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** Set when serving the development certificate: its CA file, for the trust instructions. */
  readonly devCa?: string;
}

/**
 * The configured certificate and key, or the development ones; `logger` hears what was
 * loaded. With ACME, the certificate comes from tls/acme/ (a stored one, or none yet).
 */
export async function loadTlsMaterial(config: Config, logger: Logger | undefined): Promise<TlsMaterial> {
  if (config.tls.cert !== undefined && config.tls.key !== undefined) {
    const pair = loadPair(config.tls.cert, config.tls.key);
    logger?.info({ subject: pair.leaf.subject.replace(/\n/g, ', '), names: pair.leaf.subjectAltName, validTo: pair.leaf.validTo }, 'certificate loaded');
    if (logger) warnUncovered(logger, pair.leaf, namesClientsUse(config));
    return { source: 'files', cert: pair.cert, key: pair.key };
  }
  if (config.acme) return { source: 'acme', cert: undefined, key: undefined };
  const publicHost = config.publicOrigin?.hostname.replace(/^\[(.*)\]$/, '$1');
  const dev = await ensureDevCertificate(config.tls.dir, [os.hostname(), publicHost ?? ''].filter(Boolean));
  logger?.info({ ca: dev.caFile, names: dev.names, action: dev.action }, 'development certificate');
  if (logger) warnUncovered(logger, new crypto.X509Certificate(dev.cert), namesClientsUse(config));
  return { source: 'development', cert: dev.cert, key: dev.key, devCa: dev.caFile };
}


/** How clients trust the development CA, for the host:port they use. */
export function logTrustInstructions(logger: Logger, caFile: string, hostPort: string): void {
  logger.warn(
    {
      ca: caFile,
      docker: `mkdir -p /etc/docker/certs.d/${hostPort} && cp ${caFile} /etc/docker/certs.d/${hostPort}/ca.crt`,
      skopeo: `put a copy of ${caFile} named ca.crt alone in a directory and pass it as --cert-dir (--src-cert-dir, --dest-cert-dir)`,
      curl: `curl --cacert ${caFile} https://${hostPort}/v2/`,
    },
    'no tls.cert configured: serving a development certificate; trust its CA on clients as shown',
  );
}
