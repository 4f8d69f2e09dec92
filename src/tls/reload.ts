import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { watchFiles } from '../config/watch.js';
import { loadPair, warnUncovered, type CertificatePair } from './files.js';

/**
 * Keeps the served certificate in step with its files. Renewals arrive in several ways:
 * certbot and most tools rewrite or rename the files; a Kubernetes Secret volume swaps a
 * `..data` symlink in the same directory; an operator sends SIGHUP. So berth watches the
 * directories that hold the files (a watch on the file itself would follow the old inode)
 * and re-reads both files a moment after the last change. A new pair goes to new
 * connections only once it has passed the same checks as at start (both parse, the key
 * belongs to the certificate, not expired); otherwise the pair in service stays, and the
 * error is logged. Connections already open keep the certificate they started with.
 */

export interface CertificateWatchOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** The pair in service now. */
  readonly current: { readonly cert: string; readonly key: string };
  /** Puts a checked pair into service for new connections. */
  apply(pair: CertificatePair): void;
  readonly logger: Logger;
  /** Quiet time after the last change before the files are read, ms. */
  readonly settleMs?: number;
  /** The names clients use (as the settings in service say): a new certificate that does not cover one is warned about. */
  readonly names?: () => readonly string[];
}

export interface CertificateWatch {
  /** The leaf in service. */
  current(): crypto.X509Certificate;
  /** Re-reads the files now; `force` logs the outcome even when they did not change. */
  reload(reason: string, force?: boolean): void;
  close(): void;
}

export function describeCertificate(pair: CertificatePair): Record<string, unknown> {
  return {
    serial: pair.leaf.serialNumber,
    subject: pair.leaf.subject.replace(/\n/g, ', '),
    names: pair.leaf.subjectAltName,
    validTo: pair.leaf.validTo,
  };
}

export function watchCertificate(options: CertificateWatchOptions): CertificateWatch {
  const { logger } = options;
  let current = options.current;
  let leaf = new crypto.X509Certificate(current.cert);

  const reload = (reason: string, force = false): void => {
    let pair: CertificatePair;
    try {
      pair = loadPair(options.certFile, options.keyFile);
    } catch (err) {
      logger.error({ reason, error: (err as Error).message }, 'certificate reload refused: the certificate in service stays');
      return;
    }
    if (pair.cert === current.cert && pair.key === current.key) {
      if (force) logger.info({ reason, ...describeCertificate(pair) }, 'certificate unchanged');
      return;
    }
    try {
      options.apply(pair);
    } catch (err) {
      logger.error({ reason, error: (err as Error).message }, 'certificate reload refused: the certificate in service stays');
      return;
    }
    current = pair;
    leaf = pair.leaf;
    logger.info({ reason, ...describeCertificate(pair) }, 'certificate reloaded');
    warnUncovered(logger, pair.leaf, options.names?.() ?? []);
  };

  const watch = watchFiles([options.certFile, options.keyFile], { what: 'certificate', logger, settleMs: options.settleMs }, () => reload('files changed'));

  return {
    current: () => leaf,
    reload,
    close: () => watch.close(),
  };
}
