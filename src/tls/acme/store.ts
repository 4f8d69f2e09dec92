import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * What berth keeps of ACME in tls.dir, one directory per CA (by its directory URL's host
 * and path, so that staging and production never mix):
 *   acme/<ca>/account.key   the account's ECDSA P-256 key (0600)
 *   acme/<ca>/account.json  the account's URL at the CA
 *   acme/<ca>/<name>.key    the certificate's ECDSA P-256 key (0600); <name>: the first name
 *   acme/<ca>/<name>.crt    the certificate chain, leaf first
 *   acme/<ca>/<name>.lock   held while one berth orders (several may share the volume)
 *   acme/<ca>/<name>.failures.json  the failed orders since the last success, so that a
 *                           restart (or another replica) waits out the backoff
 *   acme/<ca>/challenges/   the challenges of an order in progress, for every berth on the
 *                           volume to answer (the CA may reach any of them)
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

  /** Failed orders since the last success: how many, and when the last one failed (ms). */
  failures(names: readonly string[]): { count: number; last: number } {
    try {
      const read = JSON.parse(fs.readFileSync(this.#file(names, 'failures.json'), 'utf8')) as { count?: unknown; last?: unknown };
      if (typeof read.count === 'number' && typeof read.last === 'number') return { count: read.count, last: read.last };
    } catch {
      /* none recorded */
    }
    return { count: 0, last: 0 };
  }

  saveFailures(names: readonly string[], failures: { count: number; last: number }): void {
    if (failures.count === 0) return void fs.rmSync(this.#file(names, 'failures.json'), { force: true });
    this.#write(path.basename(this.#file(names, 'failures.json')), `${JSON.stringify(failures)}\n`, 0o644);
  }

  /**
   * Takes the order lock for `names`: resolves once this process holds it, and with a
   * release. A lock is kept fresh (its time touched every LOCK_REFRESH_MS) while held; one
   * not touched for LOCK_STALE_MS belongs to a berth that died, and is taken over.
   * `waiting` is called once if another berth holds it.
   */
  async lock(names: readonly string[], waiting: (holder: string) => void): Promise<() => void> {
    const file = this.#file(names, 'lock');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    let told = false;
    for (;;) {
      try {
        fs.writeFileSync(file, `${JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() })}\n`, { flag: 'wx', mode: 0o644 });
        const refresh = setInterval(() => {
          const now = new Date();
          try {
            fs.utimesSync(file, now, now);
          } catch {
            /* taken over: nothing to refresh */
          }
        }, LOCK_REFRESH_MS);
        refresh.unref();
        return () => {
          clearInterval(refresh);
          fs.rmSync(file, { force: true });
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder = 'another berth';
      try {
        holder = fs.readFileSync(file, 'utf8').trim();
        if (Date.now() - fs.statSync(file).mtimeMs > LOCK_STALE_MS) {
          fs.rmSync(file, { force: true });
          continue;
        }
      } catch {
        continue; // released meanwhile
      }
      if (!told) waiting(holder);
      told = true;
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
  }

  /** Publishes (or, with `value` undefined, withdraws) a challenge for every berth on the volume: HTTP-01 by token, TLS-ALPN-01 by name. */
  shareChallenge(kind: 'http-01' | 'tls-alpn-01', id: string, value: string | undefined): void {
    const file = path.join('challenges', kind, safeName(id));
    if (value === undefined) return void fs.rmSync(path.join(this.dir, file), { force: true });
    fs.mkdirSync(path.join(this.dir, 'challenges', kind), { recursive: true, mode: 0o700 });
    this.#write(file, value, 0o600);
  }

  /** A challenge another berth on the volume published, or undefined. */
  sharedChallenge(kind: 'http-01' | 'tls-alpn-01', id: string): string | undefined {
    try {
      return fs.readFileSync(path.join(this.dir, 'challenges', kind, safeName(id)), 'utf8');
    } catch {
      return undefined;
    }
  }

  #file(names: readonly string[], ext: 'crt' | 'key' | 'lock' | 'failures.json'): string {
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
    const target = path.join(this.dir, name);
    const temp = path.join(path.dirname(target), `.${path.basename(name)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
    fs.writeFileSync(temp, text, { mode });
    fs.renameSync(temp, target);
  }
}

/** A held lock's time is touched this often; one untouched for LOCK_STALE_MS is a dead berth's. */
export const LOCK_REFRESH_MS = 5_000;
export const LOCK_STALE_MS = 30_000;
const LOCK_POLL_MS = 1_000;

/** A token or a name as a file name: the characters ACME tokens (base64url) and DNS names use, and nothing else. */
const safeName = (id: string): string => id.replace(/[^A-Za-z0-9._-]/g, '_');
