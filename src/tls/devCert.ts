import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type selfsignedModule from 'selfsigned';

/**
 * The development certificate: a private CA (kept, so clients trust it once) and a
 * server certificate it signs for localhost, 127.0.0.1, ::1, this host's name and the
 * public host. Both live in tls.dir so a restart serves the same chain.
 */
export interface DevCertificate {
  readonly cert: string;
  readonly key: string;
  readonly caFile: string;
  /** What was done: "created" the CA and certificate, "renewed" the certificate, or "reused". */
  readonly action: 'created' | 'renewed' | 'reused';
  readonly names: readonly string[];
}

const DAY = 86_400_000;
const CA_DAYS = 3650;
/** Apple platforms refuse server certificates valid for more than 825 days; stay well under. */
const SERVER_DAYS = 397;
const RENEW_BEFORE_DAYS = 30;

export const DEV_FILES = Object.freeze({
  caCert: 'berth-dev-ca.crt',
  caKey: 'berth-dev-ca.key',
  cert: 'berth-dev.crt',
  key: 'berth-dev.key',
});

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes via a temporary file and rename, so a crash never leaves half a key behind. */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode });
  fs.renameSync(tmp, file);
}

/** subjectAltName entries: type 7 is an IP address, type 2 a DNS name. */
function altName(name: string): { type: 2; value: string } | { type: 7; ip: string } {
  return net.isIP(name) ? { type: 7, ip: name } : { type: 2, value: name };
}

function covers(cert: crypto.X509Certificate, names: readonly string[]): boolean {
  return names.every((name) => (net.isIP(name) ? cert.checkIP(name) : cert.checkHost(name)) !== undefined);
}

function usable(certPem: string | undefined, keyPem: string | undefined, ca: crypto.X509Certificate, names: readonly string[]): boolean {
  if (!certPem || !keyPem) return false;
  try {
    const cert = new crypto.X509Certificate(certPem);
    const fresh = new Date(cert.validTo).getTime() - Date.now() > RENEW_BEFORE_DAYS * DAY;
    return fresh && cert.verify(ca.publicKey) && cert.checkPrivateKey(crypto.createPrivateKey(keyPem)) && covers(cert, names);
  } catch {
    return false;
  }
}

/**
 * Loaded only when a certificate must be made: selfsigned and its X.509 libraries add
 * about 17 MB to every process that imports them, workers included.
 */
async function generator(): Promise<typeof selfsignedModule> {
  return (await import('selfsigned')).default;
}

async function makeCa(): Promise<{ cert: string; key: string }> {
  const selfsigned = await generator();
  const notBefore = new Date(Date.now() - 5 * 60_000);
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'berth development CA' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + CA_DAYS * DAY),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

async function makeServer(ca: { cert: string; key: string }, names: readonly string[]): Promise<{ cert: string; key: string }> {
  const selfsigned = await generator();
  const notBefore = new Date(Date.now() - 5 * 60_000);
  const pems = await selfsigned.generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + SERVER_DAYS * DAY),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map(altName) },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Loads the development chain from dir, making or renewing what is missing, stale or short of names. */
export async function ensureDevCertificate(dir: string, extraNames: readonly string[]): Promise<DevCertificate> {
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...extraNames].filter(Boolean))];
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string): string => path.join(dir, name);

  let caCert = readIfExists(file(DEV_FILES.caCert));
  let caKey = readIfExists(file(DEV_FILES.caKey));
  let action: DevCertificate['action'] = 'reused';
  let ca: crypto.X509Certificate | undefined;
  try {
    ca = caCert && caKey ? new crypto.X509Certificate(caCert) : undefined;
    if (ca && (!ca.checkPrivateKey(crypto.createPrivateKey(caKey!)) || new Date(ca.validTo) < new Date())) ca = undefined;
  } catch {
    ca = undefined;
  }
  if (!ca) {
    ({ cert: caCert, key: caKey } = await makeCa());
    writeAtomic(file(DEV_FILES.caKey), caKey, 0o600);
    writeAtomic(file(DEV_FILES.caCert), caCert, 0o644);
    ca = new crypto.X509Certificate(caCert);
    action = 'created';
  }

  let cert = readIfExists(file(DEV_FILES.cert));
  let key = readIfExists(file(DEV_FILES.key));
  if (action === 'created' || !usable(cert, key, ca, names)) {
    ({ cert, key } = await makeServer({ cert: caCert!, key: caKey! }, names));
    writeAtomic(file(DEV_FILES.key), key, 0o600);
    // Serve the chain, so clients that trust the CA need nothing else.
    cert = `${cert.trimEnd()}\n${caCert!.trimEnd()}\n`;
    writeAtomic(file(DEV_FILES.cert), cert, 0o644);
    if (action === 'reused') action = 'renewed';
  }
  return { cert: cert!, key: key!, caFile: path.resolve(file(DEV_FILES.caCert)), action, names };
}
