import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import selfsigned from 'selfsigned';

/** A CA made for one test, and a server certificate it signs for the loopback names. */
export interface TestPki {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** Files on disk: cert and key for berth, and a directory holding only ca.crt (skopeo's --cert-dir). */
  readonly certFile: string;
  readonly keyFile: string;
  readonly caDir: string;
  readonly caFile: string;
  /** Another leaf from the same CA (for reloads): by default like the first, with a new key and serial. */
  issue(options?: { names?: readonly string[]; notBefore?: Date; notAfter?: Date }): Promise<{ cert: string; key: string }>;
}

const DAY = 86_400_000;

export async function makeTestPki(names: readonly string[] = ['localhost', '127.0.0.1', '::1']): Promise<TestPki> {
  const now = Date.now();
  // A name of its own: two test CAs trusted together must not be mistaken for each other.
  const ca = await selfsigned.generate([{ name: 'commonName', value: `berth test CA ${crypto.randomBytes(4).toString('hex')}` }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - 60_000),
    notAfterDate: new Date(now + 2 * DAY),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const issue: TestPki['issue'] = async (options = {}) => {
    const leafNames = options.names ?? names;
    const made = await selfsigned.generate([{ name: 'commonName', value: leafNames[0]! }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate: options.notBefore ?? new Date(now - 60_000),
      notAfterDate: options.notAfter ?? new Date(now + 2 * DAY),
      ca: { key: ca.private, cert: ca.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: leafNames.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })),
        },
      ],
    });
    return { cert: made.cert, key: made.private };
  };
  const leaf = await issue();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pki-'));
  const caDir = path.join(dir, 'ca');
  fs.mkdirSync(caDir);
  const files = {
    certFile: path.join(dir, 'server.crt'),
    keyFile: path.join(dir, 'server.key'),
    caFile: path.join(caDir, 'ca.crt'),
  };
  fs.writeFileSync(files.certFile, leaf.cert);
  fs.writeFileSync(files.keyFile, leaf.key, { mode: 0o600 });
  fs.writeFileSync(files.caFile, ca.cert);
  return { ca: ca.cert, cert: leaf.cert, key: leaf.key, caDir, issue, ...files };
}

/**
 * Opens a TLS 1.2 connection and asks for a client-initiated renegotiation; resolves with
 * 'renegotiated' or the error code the client got.
 */
export function tryRenegotiation(port: number, ca: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca, maxVersion: 'TLSv1.2' }, () => {
      socket.renegotiate({}, (err) => {
        resolve(err ? ((err as NodeJS.ErrnoException).code ?? err.message) : 'renegotiated');
        socket.destroy();
      });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code ?? err.message);
      socket.destroy();
    });
  });
}
