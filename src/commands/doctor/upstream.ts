import type { Finding } from './findings.js';
import { API_VERSION, forwarded, type DoctorContext } from './context.js';
import { errorCode, parseChallenge, send, type Challenge, type Reply } from './probe.js';

/**
 * The upstream, asked for GET /v2/ as berth would ask it: reachable, a registry, not
 * redirecting to https, and how it authenticates.
 */

export interface UpstreamState {
  readonly reply?: Reply;
  readonly challenge?: Challenge;
  /** It answered /v2/ as a registry (200 or 401, not redirected): doctor goes on to auth and uploads. */
  readonly registry?: boolean;
}

export async function upstreamFindings(ctx: DoctorContext, findings: Finding[]): Promise<UpstreamState> {
  const origin = ctx.config.upstream.origin;
  let reply: Reply;
  try {
    reply = await send(ctx.upstream, { path: '/v2/', headers: forwarded(ctx, 'GET'), timeoutMs: ctx.timeoutMs });
  } catch (err) {
    findings.push({
      id: 'upstream-reachable',
      area: 'upstream',
      level: 'problem',
      detail: `${origin}: GET /v2/ failed: ${errorCode(err)}`,
      cause: 'berth cannot reach the registry: every request gets 502 or 504',
      fix: 'set upstream (BERTH_UPSTREAM) to the registry\'s plain-HTTP address as seen from berth (compose service name, Kubernetes Service, host:port), and check that the registry runs',
    });
    return {};
  }
  findings.push({ id: 'upstream-reachable', area: 'upstream', level: 'ok', detail: `${origin}: GET /v2/ answered ${reply.status} in ${Math.round(reply.ms)} ms` });

  findings.push(
    ctx.config.upstream.protocol === 'https:'
      ? { id: 'upstream-scheme', area: 'upstream', level: 'ok', detail: `${origin} is https: berth re-encrypts (the upstream's certificate is checked against the system CAs)` }
      : { id: 'upstream-scheme', area: 'upstream', level: 'ok', detail: `${origin} is plain HTTP behind berth's TLS` },
  );

  const location = reply.headers.location;
  if (reply.status >= 300 && reply.status < 400 && location) {
    const toHttps = /^https:/i.test(location);
    findings.push({
      id: 'upstream-redirect',
      area: 'upstream',
      level: 'problem',
      detail: `GET /v2/ is redirected (${reply.status}) to ${location}`,
      cause: toHttps
        ? 'the registry redirects plain HTTP to https: behind a TLS front every request loops back to it (Harbor with the https: block in harbor.yml; nginx "return 301 https://…")'
        : 'the registry redirects /v2/ elsewhere: clients cannot resend an upload body after a redirect',
      fix: toHttps
        ? `Harbor: remove the https: block from harbor.yml, keep external_url: ${ctx.publicOrigin}, run ./prepare and restart; or point berth at the https port with upstream: https://… (re-encrypt)`
        : 'point upstream at the registry itself',
    });
    return { reply };
  }

  const version = reply.headers[API_VERSION];
  if (version === 'registry/2.0') {
    findings.push({ id: 'upstream-registry', area: 'upstream', level: 'ok', detail: 'speaks the registry API (Docker-Distribution-Api-Version: registry/2.0)' });
  } else if (reply.status === 200 || reply.status === 401) {
    // The OCI distribution spec lets a registry leave the header out; clients do not need it.
    findings.push({
      id: 'upstream-registry',
      area: 'upstream',
      level: 'warning',
      detail: `GET /v2/ answered ${reply.status}, as a registry does, but without Docker-Distribution-Api-Version: registry/2.0`,
      cause: 'Harbor and the Distribution registry always send it: another OCI registry may not, a web server that asks for a login looks the same',
      fix: 'if upstream is Harbor or Distribution, it points at something in front of it: Harbor\'s nginx (the "proxy" service, port 8080); Distribution: its http.addr',
    });
  } else {
    findings.push({
      id: 'upstream-registry',
      area: 'upstream',
      level: 'problem',
      detail: `GET /v2/ answered ${reply.status} without Docker-Distribution-Api-Version: registry/2.0`,
      cause: 'this is not an OCI/Docker registry (a web server, Harbor\'s portal, the wrong port)',
      fix: 'Harbor: point upstream at Harbor\'s nginx (the "proxy" service, port 8080); Distribution: at its http.addr',
    });
    return { reply };
  }

  const challenge = parseChallenge(String(reply.headers['www-authenticate'] ?? ''));
  if (reply.status === 401 && challenge) {
    findings.push({ id: 'upstream-challenge', area: 'upstream', level: 'ok', detail: `answers /v2/ with a ${challenge.scheme === 'bearer' ? 'Bearer (token)' : challenge.scheme} challenge` });
  } else if (reply.status === 200) {
    findings.push({
      id: 'upstream-challenge',
      area: 'upstream',
      level: 'warning',
      detail: 'answers /v2/ with 200: no authentication, anyone who reaches berth can push and delete',
      fix: 'enable auth on the registry (auth.htpasswd or auth.token); Harbor always authenticates',
    });
  } else {
    findings.push({
      id: 'upstream-challenge',
      area: 'upstream',
      level: 'problem',
      detail: `answers /v2/ with ${reply.status}${reply.headers['www-authenticate'] ? '' : ' and no WWW-Authenticate challenge'}`,
      cause: 'clients expect 200 or 401 with a challenge; they will not log in',
      fix: 'check the registry\'s logs; Harbor: core must be healthy',
    });
  }
  return { reply, challenge, registry: reply.status === 200 || reply.status === 401 };
}
