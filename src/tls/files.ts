import crypto from 'node:crypto';
import fs from 'node:fs';
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
