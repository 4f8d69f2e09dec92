import type crypto from 'node:crypto';
import { http } from '../net/httpModule.js';
import https from 'node:https';

export interface Check {
  readonly ok: boolean;
  readonly detail: string;
}

/**
 * Which berth answered, and with what settings: `berth check` compares them with the
 * settings it checks, and says what differs (a berth started with other flags, a
 * certificate not reloaded yet).
 */
export interface Serving {
  /** The process that holds the admin listener: the one berth, or the cluster's primary. */
  readonly pid: number;
  readonly upstream: string;
  /** listen as configured, e.g. ":8443". */
  readonly listen: string;
  readonly publicOrigin: string | null;
  /** SHA-256 fingerprint of the leaf in service, as crypto.X509Certificate gives it; null while ACME has issued none. */
  readonly certificate: string | null;
  /** With ACME: when the certificate is renewed next (an ISO time), and the last failure since the last success. */
  readonly acme?: { readonly nextRenewal: string | null; readonly lastError: string | null };
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: { readonly upstream: Check; readonly certificate: Check; readonly draining: Check };
  readonly serving: Serving;
}

export interface ReadinessSources {
  readonly upstream: URL;
  /** How long the upstream has to answer GET /v2/, ms. */
  readonly timeoutMs: number;
  /** The leaf in service; undefined while ACME has issued none. */
  certificate(): crypto.X509Certificate | undefined;
  /** Why there is no certificate yet (ACME: what is being tried, or the last failure). */
  certificateWait?(): string | undefined;
  /** ACME's renewal state, for /readyz's serving.acme. */
  acme?(): Serving['acme'];
  draining(): boolean;
  /** What /readyz says about the berth answering, but its certificate. */
  readonly serving: Omit<Serving, 'certificate' | 'acme'>;
}

/**
 * Ready means: the upstream answers GET /v2/ like a registry (200, or 401 with its
 * challenge) within the timeout, the certificate in service has not expired, and berth
 * is not draining. Each check says why it failed, for the operator reading the probe.
 */
export function createReadiness(sources: ReadinessSources): () => Promise<Readiness> {
  return async () => {
    const upstream = await probeUpstream(sources.upstream, sources.timeoutMs);
    const leaf = sources.certificate();
    const expired = leaf !== undefined && new Date(leaf.validTo).getTime() <= Date.now();
    const certificate = leaf
      ? { ok: !expired, detail: `${expired ? 'expired' : 'valid until'} ${leaf.validTo}` }
      : { ok: false, detail: sources.certificateWait?.() ?? 'waiting for the ACME certificate' };
    const draining = sources.draining() ? { ok: false, detail: 'stopping: waiting for requests in flight' } : { ok: true, detail: 'serving' };
    return { ready: upstream.ok && certificate.ok && draining.ok, checks: { upstream, certificate, draining }, serving: { ...sources.serving, certificate: leaf?.fingerprint256 ?? null, ...(sources.acme ? { acme: sources.acme() } : {}) } };
  };
}

export function probeUpstream(upstream: URL, timeoutMs: number): Promise<Check> {
  const url = new URL('/v2/', upstream);
  return new Promise((resolve) => {
    const request = (url.protocol === 'https:' ? https : http).get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      const ok = status === 200 || status === 401;
      resolve({ ok, detail: ok ? `GET /v2/ answered ${status}` : `GET /v2/ answered ${status}, expected 200 or 401` });
    });
    request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' })));
    request.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, detail: `GET /v2/ failed: ${err.code === 'TIMEOUT' ? err.message : (err.code ?? err.message)}` }));
  });
}
