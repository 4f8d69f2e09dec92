import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * What berth keeps of ACME in tls.dir, one directory per CA (by its directory URL's host
 * and path, so that staging and production never mix):
 *   acme/<ca>/account.key   the account's ECDSA P-256 key (0600)
 *   acme/<ca>/account.json  the account's URL at the CA
 *   acme/<ca>/<name>.key    the certificate's ECDSA P-256 key (0600); <name>: the first name
 *   acme/<ca>/<name>.crt    the certificate chain, leaf first
 * Each file is written to a temporary name and renamed over the old one, so a reader (a
 * second berth on the same volume, a restart) never sees half a file.
 */
export class AcmeStore {
  readonly dir: string;

  constructor(tlsDir: string, directory: URL) {
    const ca = `${directory.host}${directory.pathname}`.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/_+$/, '');
    this.dir = path.join(tlsDir, 'acme', ca);
  }

  /** The account key, made (and kept) on first use. */
  accountKey(make: () => string): string {
    return this.#readOr('account.key', make, 0o600);
  }

  accountUrl(): string | undefined {
    try {
      return (JSON.parse(fs.readFileSync(path.join(this.dir, 'account.json'), 'utf8')) as { url?: string }).url;
    } catch {
      return undefined;
    }
  }

  saveAccountUrl(url: string): void {
    this.#write('account.json', `${JSON.stringify({ url })}\n`, 0o644);
  }

  /** The stored certificate for `names` (files named by the first), if both files are there and parse. */
  certificate(names: readonly string[]): { cert: string; key: string; leaf: crypto.X509Certificate } | undefined {
    try {
      const cert = fs.readFileSync(this.#file(names, 'crt'), 'utf8');
      const key = fs.readFileSync(this.#file(names, 'key'), 'utf8');
      const leaf = new crypto.X509Certificate(cert);
      if (!leaf.checkPrivateKey(crypto.createPrivateKey(key))) return undefined;
      return { cert, key, leaf };
    } catch {
      return undefined;
    }
  }

  saveCertificate(names: readonly string[], cert: string, key: string): void {
    this.#write(path.basename(this.#file(names, 'key')), key, 0o600);
    this.#write(path.basename(this.#file(names, 'crt')), cert, 0o644);
  }

  #file(names: readonly string[], ext: 'crt' | 'key'): string {
    return path.join(this.dir, `${names[0]!.toLowerCase()}.${ext}`);
  }

  #readOr(name: string, make: () => string, mode: number): string {
    try {
      return fs.readFileSync(path.join(this.dir, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const text = make();
    this.#write(name, text, mode);
    return text;
  }

  #write(name: string, text: string, mode: number): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const temp = path.join(this.dir, `.${name}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
    fs.writeFileSync(temp, text, { mode });
    fs.renameSync(temp, path.join(this.dir, name));
  }
}
