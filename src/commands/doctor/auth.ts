import { rewriteChallenge } from '../../proxy/response/realm.js';
import type { Finding } from './findings.js';
import { asClient, formatBytes, formatDuration, forwarded, view, type DoctorContext } from './context.js';
import { basicAuth, errorCode, parseChallenge, send, type Endpoint, type Reply } from './probe.js';
import type { UpstreamState } from './upstream.js';

/**
 * The registry's authentication as clients meet it: the realm they are sent to (as berth
 * rewrites it), Harbor's external_url, a token for the scratch repository and how long it
 * lasts against the throughput measured.
 */

/** The Docker client's 30 GB image, the size doctor sizes token lifetimes against. */
const BIG_PUSH_BYTES = 30e9;
const MB = 1e6;

export interface AuthState {
  /** Authorization header value for the scratch repository, when there is one. */
  readonly authorization?: string;
  /** Token lifetime in seconds (Bearer). */
  readonly lifetime?: number;
  /** No auth at all: requests go without credentials. */
  readonly open: boolean;
}

/**
 * Where to ask for a URL: the public origin through berth (or, with berth not running,
 * the upstream as berth would ask it), the upstream's own origin directly, any other host
 * as a client would.
 */
function endpointFor(ctx: DoctorContext, url: URL): { endpoint: Endpoint; headers: Record<string, string> } {
  const pub = new URL(ctx.publicOrigin);
  if (url.host === pub.host && url.protocol === 'https:') {
    return ctx.berth ? { endpoint: ctx.berth, headers: asClient(ctx) } : { endpoint: ctx.upstream, headers: forwarded(ctx, 'GET') };
  }
  if (url.host === ctx.config.upstream.host || url.host === pub.host) return { endpoint: ctx.upstream, headers: forwarded(ctx, 'GET') };
  return { endpoint: { name: 'realm', connect: new URL(url.origin), servername: url.hostname }, headers: { host: url.host } };
}

export async function authFindings(ctx: DoctorContext, upstream: UpstreamState, findings: Finding[]): Promise<AuthState> {
  const challenge = upstream.challenge;
  if (!challenge) return { open: upstream.reply?.status === 200 };
  if (challenge.scheme === 'basic') {
    findings.push({ id: 'auth-realm', area: 'auth', level: 'ok', detail: `Basic authentication (realm "${challenge.params.realm ?? ''}"): credentials go to the registry itself, through berth` });
    if (!ctx.credentials) return { open: false };
    const authorization = basicAuth(ctx.credentials.user, ctx.credentials.password);
    const reply = await send(ctx.upstream, { path: '/v2/', headers: forwarded(ctx, 'GET', { authorization }), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
    findings.push(
      reply?.status === 200
        ? { id: 'auth-token', area: 'auth', level: 'ok', detail: `${ctx.credentials.user} is accepted (Basic: no token, nothing expires)` }
        : { id: 'auth-token', area: 'auth', level: 'problem', detail: `${ctx.credentials.user} is refused: GET /v2/ answered ${reply?.status ?? 'nothing'}`, cause: 'wrong user or password', fix: 'check the credentials (docker login would fail the same way)' },
    );
    return reply?.status === 200 ? { authorization, open: false } : { open: false };
  }
  if (challenge.scheme !== 'bearer' || !challenge.params.realm) {
    findings.push({ id: 'auth-realm', area: 'auth', level: 'warning', detail: `an unusual challenge: ${String(upstream.reply?.headers['www-authenticate'])}` });
    return { open: false };
  }

  // The realm as the upstream sends it, and as clients see it through berth.
  const realm = challenge.params.realm;
  const raw = String(upstream.reply!.headers['www-authenticate']);
  const rewritten = rewriteChallenge(raw, view(ctx));
  const seen = parseChallenge(rewritten)!.params.realm!;
  let throughBerth: string | undefined;
  if (ctx.berth) {
    const reply = await send(ctx.berth, { path: '/v2/', headers: asClient(ctx), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
    throughBerth = parseChallenge(String(reply?.headers['www-authenticate'] ?? ''))?.params.realm;
  }
  const clientRealm = throughBerth ?? seen;
  let realmUrl: URL | undefined;
  try {
    realmUrl = new URL(clientRealm);
  } catch {
    /* reported below */
  }
  const pub = new URL(ctx.publicOrigin);
  const data = { upstreamRealm: realm, clientRealm, throughBerth: throughBerth !== undefined };
  if (!realmUrl || realmUrl.protocol !== 'https:') {
    findings.push({
      id: 'auth-realm',
      area: 'auth',
      level: 'problem',
      detail: `clients are sent to log in at ${clientRealm} (the registry sends ${realm})`,
      cause: 'a token realm over plain http (or not a URL): clients refuse it or send passwords in clear; "unauthorized" at login',
      fix: 'registry: auth.token.realm must be the token service\'s public https URL; Harbor: external_url: https://…',
      data,
    });
  } else if (realmUrl.host !== pub.host) {
    findings.push({
      id: 'auth-realm',
      area: 'auth',
      level: 'problem',
      detail: `clients are sent to log in at ${clientRealm}, a host other than ${pub.host} (the registry sends ${realm})`,
      cause: `${realmUrl.host} is an internal name, or a token service clients may not reach; berth rewrites only realms on the upstream or on ${pub.host}`,
      fix: `registry: set auth.token.realm to a public https URL (e.g. ${ctx.publicOrigin}/service/token behind berth); Harbor: external_url: ${ctx.publicOrigin}`,
      data,
    });
  } else {
    findings.push({
      id: 'auth-realm',
      area: 'auth',
      level: rewritten !== raw ? 'warning' : 'ok',
      detail: rewritten !== raw ? `the registry sends ${realm}; berth rewrites it to ${seen} for clients` : `clients log in at ${clientRealm}`,
      ...(rewritten !== raw
        ? { cause: 'the registry builds its realm from an internal address or plain http', fix: 'nothing is needed through berth; to fix it at the source: Harbor external_url: ' + ctx.publicOrigin + ', registry auth.token.realm' }
        : {}),
      data,
    });
  }

  // Harbor: its realm is <scheme of external_url>://<Host>/service/token.
  if (new URL(realm, ctx.config.upstream).pathname === '/service/token') {
    const scheme = /^(\w+):/.exec(realm)?.[1];
    findings.push(
      scheme === 'https'
        ? { id: 'auth-harbor-external-url', area: 'auth', level: 'ok', detail: 'Harbor: external_url is https (its token realm is https)' }
        : {
            id: 'auth-harbor-external-url',
            area: 'auth',
            level: 'warning',
            detail: `Harbor: its token realm is ${realm}, so external_url is http or unset`,
            cause: 'Harbor builds the realm and its UI links from external_url; berth rewrites the realm, but Harbor\'s UI and notifications show http',
            fix: `harbor.yml: external_url: ${ctx.publicOrigin}, no https: block; ./prepare and restart Harbor`,
          },
    );
  }

  if (!ctx.credentials) return { open: false };
  // A token for the scratch repository, from the realm as clients get it.
  const tokenUrl = new URL(clientRealm, ctx.config.upstream);
  if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
  // delete: the registry asks for it to cancel an upload (DELETE); a token service grants
  // what the user may, and an upload left behind is only a warning.
  tokenUrl.searchParams.set('scope', `repository:${ctx.repository}:pull,push,delete`);
  const target = endpointFor(ctx, tokenUrl);
  let reply: Reply;
  try {
    reply = await send(target.endpoint, {
      path: tokenUrl.pathname + tokenUrl.search,
      headers: { ...target.headers, authorization: basicAuth(ctx.credentials.user, ctx.credentials.password) },
      timeoutMs: ctx.timeoutMs,
    });
  } catch (err) {
    findings.push({ id: 'auth-token', area: 'auth', level: 'problem', detail: `the token service did not answer: ${errorCode(err)}`, cause: 'clients cannot log in', fix: 'check the token service (Harbor core) and its address' });
    return { open: false };
  }
  let token: string | undefined;
  let lifetime: number | undefined;
  try {
    const body = JSON.parse(reply.body) as { token?: string; access_token?: string; expires_in?: number };
    token = body.token ?? body.access_token;
    lifetime = typeof body.expires_in === 'number' ? body.expires_in : undefined;
    const claims = token?.split('.').length === 3 ? (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp?: number; iat?: number; nbf?: number }) : undefined;
    if (claims?.exp) lifetime = Math.min(lifetime ?? Infinity, claims.exp - (claims.iat ?? claims.nbf ?? Math.floor(Date.now() / 1000)));
    // The token spec's default when expires_in is absent.
    lifetime ??= 60;
  } catch {
    /* reported below */
  }
  if (reply.status !== 200 || !token) {
    findings.push({
      id: 'auth-token',
      area: 'auth',
      level: 'problem',
      detail: `no token for ${ctx.credentials.user}: the token service answered ${reply.status}`,
      cause: reply.status === 401 ? 'wrong user or password' : 'the token service failed',
      fix: reply.status === 401 ? 'check the credentials' : 'check the token service\'s logs',
    });
    return { open: false };
  }
  findings.push({ id: 'auth-token', area: 'auth', level: 'ok', detail: `a token for ${ctx.repository} (push, pull), valid for ${formatDuration(lifetime!)}`, data: { lifetimeSeconds: lifetime } });
  return { authorization: `Bearer ${token}`, lifetime, open: false };
}

/** After the throughput is known: how large a push fits in one token's life. */
export function tokenLifetimeFinding(lifetime: number, bytesPerSecond: number | undefined): Finding {
  const harbor = lifetime === 1800;
  if (!bytesPerSecond) {
    return { id: 'auth-token-lifetime', area: 'auth', level: lifetime < 3600 ? 'warning' : 'ok', detail: `tokens last ${formatDuration(lifetime)}: a push longer than that fails with "unauthorized"` };
  }
  const fits = bytesPerSecond * lifetime;
  const bigNeeds = BIG_PUSH_BYTES / bytesPerSecond;
  const detail = `tokens last ${formatDuration(lifetime)}: at ${(bytesPerSecond / MB).toFixed(1)} MB/s (measured here) a push of up to ${formatBytes(fits)} finishes in time; a 30 GB image needs ${formatDuration(bigNeeds)}`;
  if (fits >= BIG_PUSH_BYTES) return { id: 'auth-token-lifetime', area: 'auth', level: 'ok', detail, data: { lifetimeSeconds: lifetime, bytesPerSecond, maxPushBytes: Math.round(fits) } };
  return {
    id: 'auth-token-lifetime',
    area: 'auth',
    level: 'warning',
    detail,
    cause: 'a push still uploading when the token expires fails with "unauthorized"; berth cannot renew a client\'s token',
    fix: harbor
      ? `Harbor: raise Token Expiration (Administration → Configuration → System Settings; 30 minutes by default) above ${formatDuration(bigNeeds)} (on slower client links, more)`
      : `raise the token service's expiry above ${formatDuration(bigNeeds)}`,
    data: { lifetimeSeconds: lifetime, bytesPerSecond, maxPushBytes: Math.round(fits) },
  };
}
