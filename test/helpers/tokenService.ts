import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import selfsigned from 'selfsigned';
import type { Test } from 'tap';
import { REGISTRY_PASSWORD, REGISTRY_USER } from './registry.js';

/**
 * A Docker token service (the distribution token spec) for the real registry's
 * auth.token: checks REGISTRY_USER's password, grants what the scope asks, and signs ES256
 * JWTs that the registry verifies against rootCertBundle (by libtrust key ID, "kid").
 */
export interface TokenService {
  readonly url: string;
  readonly port: number;
  readonly service: string;
  readonly issuer: string;
  readonly rootCertBundle: string;
  /** Requests seen, "GET /path?query". */
  readonly seen: string[];
  /** Seconds the tokens it signs from now on are dated back: a token issued that long ago (expired, if longer than its lifetime). */
  backdate: number;
}

/** libtrust's key ID: SHA-256 of the DER public key, first 240 bits, base32, 12 groups of 4. */
function libtrustKeyId(publicKey: crypto.KeyObject): string {
  const digest = crypto.createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of digest) bits += byte.toString(2).padStart(8, '0');
  let b32 = '';
  for (let i = 0; i < bits.length; i += 5) b32 += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return b32.match(/.{4}/g)!.join(':');
}

export async function startTokenService(t: Test, options: { lifetimeSeconds: number; path?: string }): Promise<TokenService> {
  const made = await selfsigned.generate([{ name: 'commonName', value: 'berth test token signer' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-token-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rootCertBundle = path.join(dir, 'root.crt');
  fs.writeFileSync(rootCertBundle, made.cert);
  const key = crypto.createPrivateKey(made.private);
  const kid = libtrustKeyId(crypto.createPublicKey(key));
  const service = 'berth-test-registry';
  const issuer = 'berth-test-issuer';
  const tokenPath = options.path ?? '/token';
  const seen: string[] = [];
  const issued = { backdate: 0 };
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://token');
    const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
    const [user, password] = scheme === 'Basic' && encoded ? Buffer.from(encoded, 'base64').toString().split(':') : [];
    if (url.pathname !== tokenPath) return void res.writeHead(404).end();
    if (user !== REGISTRY_USER || password !== REGISTRY_PASSWORD) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"wrong user or password"}');
      return;
    }
    const now = Math.floor(Date.now() / 1000) - issued.backdate;
    const access = url.searchParams.getAll('scope').map((scope) => {
      const [type, name, actions] = scope.split(':');
      return { type, name, actions: (actions ?? '').split(',').filter(Boolean) };
    });
    const claims = { iss: issuer, sub: user, aud: url.searchParams.get('service') ?? service, exp: now + options.lifetimeSeconds, nbf: now - 5, iat: now, jti: crypto.randomUUID(), access };
    const unsigned = `${b64({ typ: 'JWT', alg: 'ES256', kid })}.${b64(claims)}`;
    const signature = crypto.sign('sha256', Buffer.from(unsigned), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    const token = `${unsigned}.${signature}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: options.lifetimeSeconds, issued_at: new Date(now * 1000).toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  return Object.assign(issued, { url: `http://127.0.0.1:${port}${tokenPath}`, port, service, issuer, rootCertBundle, seen });
}
