import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { ConfigError } from '../config/validate.js';

export interface CertificatePair {
  readonly cert: string;
  readonly key: string;
  /** The leaf certificate, for names and expiry. */
  readonly leaf: crypto.X509Certificate;
}

function readPem(file: string, keyPath: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(keyPath, `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Reads and checks a certificate and key: both parse, the key belongs to the leaf, and
 * the leaf is within its validity period. Errors name the config key to fix.
 */
export function loadPair(certFile: string, keyFile: string, now = new Date()): CertificatePair {
  const cert = readPem(certFile, 'tls.cert', 'certificate');
  const key = readPem(keyFile, 'tls.key', 'private key');
  let leaf: crypto.X509Certificate;
  try {
    leaf = new crypto.X509Certificate(cert);
  } catch {
    throw new ConfigError('tls.cert', `expected a PEM certificate in ${certFile}`);
  }
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch {
    throw new ConfigError('tls.key', `expected an unencrypted PEM private key in ${keyFile}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError('tls.key', `the key in ${keyFile} does not belong to the certificate in ${certFile}`);
  }
  if (new Date(leaf.validTo) < now) {
    throw new ConfigError('tls.cert', `the certificate in ${certFile} expired on ${leaf.validTo}`);
  }
  return { cert, key, leaf };
}

/**
 * The names clients use (publicOrigin's host, serverNames) that the certificate does not
 * cover: clients reaching berth by one of them refuse it ("x509: certificate is valid for
 * …"). A wildcard server name needs a certificate that covers every name it matches.
 */
export function uncoveredNames(leaf: crypto.X509Certificate, names: readonly string[]): string[] {
  return names.filter((name) => {
    const host = name.replace(/^\[(.*)\]$/, '$1');
    if (net.isIP(host)) return leaf.checkIP(host) === undefined;
    // "*.example.com" is covered by a certificate for "*.example.com", not by one for "a.example.com".
    const probe = host.startsWith('*.') ? `berth-name-check${host.slice(1)}` : host;
    return leaf.checkHost(probe) === undefined;
  });
}

/** Warns when the certificate does not cover every name clients use (at start, and on every reload). */
export function warnUncovered(logger: { warn(obj: object, msg: string): void }, leaf: crypto.X509Certificate, names: readonly string[]): void {
  const uncovered = uncoveredNames(leaf, names);
  if (uncovered.length === 0) return;
  logger.warn({ uncovered, certificateNames: leaf.subjectAltName ?? null }, 'the certificate does not cover every name clients use: clients reaching berth by these names will refuse it');
}
