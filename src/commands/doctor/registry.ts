import type { Config } from '../../config/validate.js';
import { rewriteChallenge } from '../../proxy/response/realm.js';
import { rewriteToPublic } from '../../proxy/response/origin.js';
import type { Finding } from './findings.js';
import { basicAuth, errorCode, parseChallenge, send, type Challenge, type Endpoint, type Reply } from './probe.js';

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

export interface DoctorContext {
  readonly config: Config;
  /** https://host[:port] as clients reach berth. */
  readonly publicOrigin: string;
  /** host[:port]: the Host clients send, and berth keeps. */
  readonly publicHost: string;
  readonly upstream: Endpoint;
  /** The running berth, when one answers. */
  berth?: Endpoint;
  readonly credentials?: Credentials;
  readonly repository: string;
  readonly uploadSize: number;
  readonly timeoutMs: number;
}

const API_VERSION = 'docker-distribution-api-version';
/** The Docker client's 30 GB image, the size doctor sizes token lifetimes against. */
const BIG_PUSH_BYTES = 30e9;
const MB = 1e6;

/** What berth sends the upstream for a client's request (request/forwarded.ts): Host kept, one X-Forwarded-Proto. */
function forwarded(ctx: DoctorContext, extra: Record<string, string> = {}): Record<string, string> {
  return { host: ctx.publicHost, 'x-forwarded-proto': 'https', 'x-forwarded-host': ctx.publicHost, 'x-forwarded-for': '127.0.0.1', ...extra };
}

function asClient(ctx: DoctorContext, extra: Record<string, string> = {}): Record<string, string> {
  return { host: ctx.publicHost, ...extra };
}

const view = (ctx: DoctorContext) => ({ upstream: ctx.config.upstream, publicOrigin: ctx.publicOrigin });

// ---------------------------------------------------------------------------------------
// Upstream

export interface UpstreamState {
  readonly reply?: Reply;
  readonly challenge?: Challenge;
}

export async function upstreamFindings(ctx: DoctorContext, findings: Finding[]): Promise<UpstreamState> {
  const origin = ctx.config.upstream.origin;
  let reply: Reply;
  try {
    reply = await send(ctx.upstream, { path: '/v2/', headers: forwarded(ctx), timeoutMs: ctx.timeoutMs });
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
  if (version !== 'registry/2.0') {
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
  findings.push({ id: 'upstream-registry', area: 'upstream', level: 'ok', detail: 'speaks the registry API (Docker-Distribution-Api-Version: registry/2.0)' });

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
  return { reply, challenge };
}

// ---------------------------------------------------------------------------------------
// berth, running

/** OpenSSL's and Node's codes for a certificate whose issuer the client does not know. */
const UNKNOWN_ISSUER = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT']);
const REFUSED_CERTIFICATE = /CERT|^ERR_TLS_|^UNABLE_TO_/;

export async function berthFindings(ctx: DoctorContext, candidate: Endpoint, findings: Finding[], privateCaKnown: boolean): Promise<void> {
  let reply: Reply;
  try {
    reply = await send(candidate, { path: '/v2/', headers: asClient(ctx), timeoutMs: ctx.timeoutMs });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (UNKNOWN_ISSUER.has(code) && !privateCaKnown) {
      findings.push({
        id: 'berth-running',
        area: 'berth',
        level: 'warning',
        detail: `berth on ${candidate.connect.host} serves a certificate from a CA doctor does not know (${code}): checks through berth are skipped`,
        fix: 'give doctor the CA your clients trust: --ca FILE',
      });
    } else if (REFUSED_CERTIFICATE.test(code)) {
      findings.push({
        id: 'berth-running',
        area: 'berth',
        level: 'problem',
        detail: `clients refuse the certificate berth on ${candidate.connect.host} serves: ${code}`,
        cause: 'the certificate in service is not the one in the files (not reloaded yet?), or does not cover the name, or has expired',
        fix: 'compare the tls findings above with what berth logged at its last "certificate loaded"; kill -HUP reloads the files',
      });
    } else {
      findings.push({
        id: 'berth-running',
        area: 'berth',
        level: 'warning',
        detail: `no berth answers on ${candidate.connect.host} (${errorCode(err)}): checks through berth are skipped`,
        fix: 'start berth (or run doctor where it runs, with the same config) to check what clients see',
      });
    }
    return;
  }
  ctx.berth = candidate;
  const registry = reply.headers[API_VERSION] === 'registry/2.0';
  findings.push({
    id: 'berth-running',
    area: 'berth',
    level: registry && reply.status < 500 ? 'ok' : 'problem',
    detail: `berth on ${candidate.connect.host} answered GET /v2/ as ${ctx.publicHost}: ${reply.status}${registry ? '' : ' without the registry header'}; its certificate verifies`,
    ...(reply.status >= 500 ? { cause: reply.body.trim().slice(0, 200), fix: "see the upstream findings; berth's access log has the error" } : {}),
  });
}

// ---------------------------------------------------------------------------------------
// Auth

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
    return ctx.berth ? { endpoint: ctx.berth, headers: asClient(ctx) } : { endpoint: ctx.upstream, headers: forwarded(ctx) };
  }
  if (url.host === ctx.config.upstream.host || url.host === pub.host) return { endpoint: ctx.upstream, headers: forwarded(ctx) };
  return { endpoint: { name: 'realm', connect: new URL(url.origin), servername: url.hostname }, headers: { host: url.host } };
}

export async function authFindings(ctx: DoctorContext, upstream: UpstreamState, findings: Finding[]): Promise<AuthState> {
  const challenge = upstream.challenge;
  if (!challenge) return { open: upstream.reply?.status === 200 };
  if (challenge.scheme === 'basic') {
    findings.push({ id: 'auth-realm', area: 'auth', level: 'ok', detail: `Basic authentication (realm "${challenge.params.realm ?? ''}"): credentials go to the registry itself, through berth` });
    if (!ctx.credentials) return { open: false };
    const authorization = basicAuth(ctx.credentials.user, ctx.credentials.password);
    const reply = await send(ctx.upstream, { path: '/v2/', headers: forwarded(ctx, { authorization }), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
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

// ---------------------------------------------------------------------------------------
// Uploads: where the registry sends clients, then a timed upload; each cancelled.

function uploadHeaders(auth: AuthState, extra: Record<string, string> = {}): Record<string, string> {
  return auth.authorization ? { authorization: auth.authorization, ...extra } : extra;
}

/** Cancels an upload the upstream started (DELETE on its URL), so nothing is left behind. */
async function cancel(ctx: DoctorContext, location: string, auth: AuthState): Promise<number | undefined> {
  const url = new URL(location, ctx.config.upstream);
  const reply = await send(ctx.upstream, { method: 'DELETE', path: url.pathname + url.search, headers: forwarded(ctx, uploadHeaders(auth)), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
  return reply?.status;
}

/** A cut upload's URL carries a stale signed state (the registry kept part of the body) and the registry refuses to cancel it. */
function cutUploadLeft(status: number | undefined): Finding | undefined {
  if (status === 204) return undefined;
  return {
    id: 'upload-cleanup',
    area: 'upload',
    level: 'warning',
    detail: `the cut upload could not be cancelled: DELETE answered ${status ?? 'nothing'} (its URL's signed state no longer matches the data the registry kept)`,
    fix: 'the registry removes abandoned uploads itself (storage.maintenance.uploadpurging, a week by default)',
  };
}

export async function uploadFindings(ctx: DoctorContext, auth: AuthState, findings: Finding[]): Promise<void> {
  const path = `/v2/${ctx.repository}/blobs/uploads/`;
  const cancelled: (number | undefined)[] = [];
  let direct: Reply;
  try {
    direct = await send(ctx.upstream, { method: 'POST', path, headers: forwarded(ctx, uploadHeaders(auth, { 'content-length': '0' })), timeoutMs: ctx.timeoutMs });
  } catch (err) {
    findings.push({ id: 'upload-location', area: 'upload', level: 'problem', detail: `POST ${path} failed: ${errorCode(err)}` });
    return;
  }
  if (direct.status !== 202 || !direct.headers.location) {
    findings.push({
      id: 'upload-location',
      area: 'upload',
      level: 'problem',
      detail: `POST ${path} answered ${direct.status}, not 202 with a Location`,
      cause: direct.status === 401 || direct.status === 403 ? `${ctx.credentials?.user ?? 'anonymous'} may not push to ${ctx.repository}` : direct.body.trim().slice(0, 200),
      fix: `pick a repository the user may push to (--repository; Harbor: a project that exists, e.g. library/berth-doctor)`,
    });
    return;
  }
  const location = direct.headers.location;
  cancelled.push(await cancel(ctx, location, auth));
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
  const fixed = rewriteToPublic(location, view(ctx));
  const url = new URL(location, ctx.publicOrigin);
  const kind = absolute ? `absolute (${url.protocol}//${url.host})` : 'relative';
  const base = { upstreamLocation: location, clientLocation: fixed ?? location };

  // Through berth: what a client really gets.
  let clientLocation = fixed ?? location;
  if (ctx.berth) {
    const reply = await send(ctx.berth, { method: 'POST', path, headers: asClient(ctx, uploadHeaders(auth, { 'content-length': '0' })), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
    if (reply?.headers.location) {
      clientLocation = reply.headers.location;
      const again = new URL(clientLocation, ctx.publicOrigin);
      cancelled.push(await cancel(ctx, again.pathname + again.search, auth));
    }
  }
  const clientUrl = new URL(clientLocation, ctx.publicOrigin);
  const pub = new URL(ctx.publicOrigin);
  if (clientUrl.protocol !== 'https:' || clientUrl.host !== pub.host) {
    findings.push({
      id: 'upload-location',
      area: 'upload',
      level: 'problem',
      detail: `uploads are sent to ${clientUrl.origin} (the registry answered ${kind} ${location})`,
      cause: 'clients PATCH their layers to an address they cannot reach or over http: "unknown blob", "blob upload unknown"',
      fix: 'registry: unset http.host or set it to ' + ctx.publicOrigin + '; an inner proxy must keep Host as berth sends it',
      data: { ...base, clientLocation },
    });
  } else {
    findings.push({
      id: 'upload-location',
      area: 'upload',
      level: 'ok',
      detail: `the registry answers ${absolute ? 'an' : 'a'} ${kind} upload Location${fixed ? `; berth rewrites it to ${ctx.publicOrigin}` : ''}${ctx.berth ? `; clients get ${clientLocation.length > 80 ? clientLocation.slice(0, 80) + '…' : clientLocation}` : ''}`,
      data: { ...base, clientLocation },
    });
  }

  // What the upstream makes of X-Forwarded-Proto: an absolute http:// Location on the
  // public host although berth said https means something in between overwrote it.
  if (absolute && url.protocol === 'http:' && url.host.split(':')[0] === pub.hostname) {
    findings.push({
      id: 'upload-forwarded-headers',
      area: 'upload',
      level: 'warning',
      detail: `berth sends X-Forwarded-Proto: https, yet the registry's Location is ${url.protocol}//${url.host}: the header is lost or overwritten on the way`,
      cause: 'an inner proxy sets X-Forwarded-Proto from its own scheme (Harbor ≤ 2.2\'s nginx: proxy_set_header X-Forwarded-Proto $scheme), or strips it',
      fix: 'berth rewrites these Locations, so pushes through berth work; any other path to the registry breaks. Harbor: upgrade to ≥ 2.3; nginx: proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto',
      data: base,
    });
  } else if (absolute && url.host !== pub.host && url.protocol === 'http:' && url.host === ctx.config.upstream.host) {
    findings.push({
      id: 'upload-forwarded-headers',
      area: 'upload',
      level: 'warning',
      detail: `the registry builds URLs from its own address (${url.host}), not from the Host and X-Forwarded-* berth sends`,
      cause: 'http.host is set to the internal address, or an inner proxy rewrites Host',
      fix: 'berth rewrites these Locations; to fix it at the source unset the registry\'s http.host and keep Host in inner proxies',
      data: base,
    });
  } else {
    findings.push({ id: 'upload-forwarded-headers', area: 'upload', level: 'ok', detail: absolute ? 'the registry builds https URLs from the Host and X-Forwarded-Proto berth sends' : 'relative Locations: the forwarded headers do not matter for uploads' });
  }

  const left = cancelled.filter((s) => s !== 204);
  findings.push(
    left.length === 0
      ? { id: 'upload-cleanup', area: 'upload', level: 'ok', detail: `the ${cancelled.length} upload${cancelled.length > 1 ? 's' : ''} doctor started ${cancelled.length > 1 ? 'were' : 'was'} cancelled (DELETE answered 204)` }
      : {
          id: 'upload-cleanup',
          area: 'upload',
          level: 'warning',
          detail: `cancelling doctor's upload answered ${left.join(', ')}`,
          fix: 'the registry removes abandoned uploads itself (storage.maintenance.uploadpurging, a week by default)',
        },
  );
}

export interface Throughput {
  readonly bytesPerSecond?: number;
}

export async function throughputFindings(ctx: DoctorContext, auth: AuthState, findings: Finding[]): Promise<Throughput> {
  const via = ctx.berth ?? ctx.upstream;
  const headers = (extra: Record<string, string> = {}) => (ctx.berth ? asClient(ctx, uploadHeaders(auth, extra)) : forwarded(ctx, uploadHeaders(auth, extra)));
  const path = `/v2/${ctx.repository}/blobs/uploads/`;
  const started = await send(via, { method: 'POST', path, headers: headers({ 'content-length': '0' }), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
  if (started?.status !== 202 || !started.headers.location) {
    findings.push({ id: 'throughput', area: 'throughput', level: 'warning', detail: `could not start an upload (POST answered ${started?.status ?? 'nothing'}): not measured` });
    return {};
  }
  const target = new URL(started.headers.location, ctx.berth ? ctx.publicOrigin : ctx.config.upstream);
  const size = ctx.uploadSize;
  let reply: Reply;
  try {
    reply = await send(via, {
      method: 'PATCH',
      path: target.pathname + target.search,
      headers: headers({ 'content-type': 'application/octet-stream', 'content-range': `0-${size - 1}` }),
      body: size,
      timeoutMs: Math.max(ctx.timeoutMs, 60_000),
    });
  } catch (err) {
    findings.push({
      id: 'limits-cut-connection',
      area: 'limits',
      level: 'problem',
      detail: `a ${formatBytes(size)} upload ${ctx.berth ? 'through berth' : 'to the upstream'} was cut: ${errorCode(err)}`,
      cause: 'something in the chain closes connections during large bodies (a body-size or time limit that does not answer)',
      fix: 'look for client_max_body_size, proxy timeouts, or a load balancer idle timeout between berth and the registry',
    });
    const left = cutUploadLeft(await cancel(ctx, target.pathname + target.search, auth));
    if (left) findings.push(left);
    return {};
  }
  const upstreamTarget = new URL(reply.headers.location ?? started.headers.location, ctx.publicOrigin);
  const cancelled = await cancel(ctx, upstreamTarget.pathname + upstreamTarget.search, auth);
  if (reply.status === 413) {
    findings.push({
      id: 'limits-body-size',
      area: 'limits',
      level: 'problem',
      detail: `a ${formatBytes(size)} PATCH ${ctx.berth ? 'through berth' : 'to the upstream'} was refused: 413 Request Entity Too Large`,
      cause: 'a body-size cap between berth and the registry (berth has none): nginx\'s client_max_body_size (1 MiB by default), an Ingress proxy-body-size',
      fix: 'client_max_body_size 0; in the inner nginx (Harbor\'s own sets it); nginx.ingress.kubernetes.io/proxy-body-size: "0"',
      data: { status: 413, server: reply.headers.server },
    });
    return {};
  }
  if ((reply.status === 502 || reply.status === 504) && ctx.berth && /"UNAVAILABLE"/.test(reply.body)) {
    // berth's own answer: the registry side of the chain dropped the body.
    findings.push({
      id: 'limits-cut-connection',
      area: 'limits',
      level: 'problem',
      detail: `a ${formatBytes(size)} upload through berth failed between berth and the registry: ${reply.status} ${errorMessage(reply.body)}`,
      cause: 'something between berth and the registry closes connections during large bodies (a body-size or time limit that does not answer, a proxy or load balancer timeout)',
      fix: "look for client_max_body_size, proxy timeouts, or a load balancer idle timeout between berth and the registry; berth's access line for the PATCH has the error",
    });
    const left = cutUploadLeft(cancelled);
    if (left) findings.push(left);
    return {};
  }
  if (reply.status !== 202) {
    findings.push({ id: 'throughput', area: 'throughput', level: 'problem', detail: `a ${formatBytes(size)} PATCH answered ${reply.status}: ${reply.body.trim().slice(0, 160)}` });
    return {};
  }
  findings.push({ id: 'limits-body-size', area: 'limits', level: 'ok', detail: `a ${formatBytes(size)} body went through${ctx.berth ? ' berth' : ''} to the registry (no size cap met)` });
  const bytesPerSecond = size / (reply.ms / 1000);
  findings.push({
    id: 'throughput',
    area: 'throughput',
    level: 'ok',
    detail: `${formatBytes(size)} uploaded ${ctx.berth ? 'through berth' : 'directly to the upstream (berth not running)'} in ${Math.round(reply.ms)} ms: ${(bytesPerSecond / MB).toFixed(1)} MB/s from this machine (then cancelled)`,
    data: { bytes: size, ms: Math.round(reply.ms), bytesPerSecond: Math.round(bytesPerSecond), through: via.name },
  });
  return { bytesPerSecond };
}

/** The message of a registry-shaped error body, or the body's start. */
function errorMessage(body: string): string {
  try {
    return (JSON.parse(body) as { errors: { message: string }[] }).errors[0]!.message;
  } catch {
    return body.trim().slice(0, 160);
  }
}

export function timeoutFindings(config: Config): Finding[] {
  const t = config.timeouts;
  const findings: Finding[] = [];
  const list = `headers ${formatDuration(t.headers / 1000)}, client idle ${formatDuration(t.clientIdle / 1000)}, keep-alive ${formatDuration(t.keepAlive / 1000)}, upstream connect ${formatDuration(t.upstreamConnect / 1000)}, upstream response ${t.upstreamResponse ? formatDuration(t.upstreamResponse / 1000) : 'none'}; no whole-request limit`;
  const short = [] as string[];
  if (t.upstreamResponse !== 0 && t.upstreamResponse < 300_000) short.push(`timeouts.upstreamResponse ${formatDuration(t.upstreamResponse / 1000)} (the registry may take minutes to answer the final PUT of a large blob)`);
  if (t.clientIdle < 60_000) short.push(`timeouts.clientIdle ${formatDuration(t.clientIdle / 1000)} (clients pause between chunks and while compressing)`);
  findings.push(
    short.length === 0
      ? { id: 'limits-timeouts', area: 'limits', level: 'ok', detail: `berth's own: ${list}. Load balancer timeouts in front of berth cannot be seen from here` }
      : {
          id: 'limits-timeouts',
          area: 'limits',
          level: 'warning',
          detail: `short: ${short.join('; ')}`,
          cause: 'large pushes can be cut by berth itself',
          fix: 'raise them (the defaults are 10m and 15m)',
        },
  );
  return findings;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'forever';
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e12) return `${(bytes / 1e12).toFixed(1)} TB`;
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(bytes % (1 << 20) === 0 ? 0 : 1)} MiB`;
  return `${bytes} bytes`;
}
