import type crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

export interface Check {
  readonly ok: boolean;
  readonly detail: string;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: { readonly upstream: Check; readonly certificate: Check; readonly draining: Check };
}

export interface ReadinessSources {
  readonly upstream: URL;
  /** How long the upstream has to answer GET /v2/, ms. */
  readonly timeoutMs: number;
  /** The leaf in service. */
  certificate(): crypto.X509Certificate;
  draining(): boolean;
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
    const expired = new Date(leaf.validTo).getTime() <= Date.now();
    const certificate = { ok: !expired, detail: `${expired ? 'expired' : 'valid until'} ${leaf.validTo}` };
    const draining = sources.draining() ? { ok: false, detail: 'stopping: waiting for requests in flight' } : { ok: true, detail: 'serving' };
    return { ready: upstream.ok && certificate.ok && draining.ok, checks: { upstream, certificate, draining } };
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
