import { rewriteToPublic } from '../../proxy/response/origin.js';
import type { Finding } from './findings.js';
import type { AuthState } from './auth.js';
import { API_VERSION, asClient, formatBytes, forwarded, view, type DoctorContext } from './context.js';
import { errorCode, send, type Reply } from './probe.js';

/**
 * Uploads: where the registry sends clients, then a timed upload through berth (the body
 * size caps and cut connections on the way); each upload doctor starts is cancelled.
 */

const MB = 1e6;

function uploadHeaders(auth: AuthState, extra: Record<string, string> = {}): Record<string, string> {
  return auth.authorization ? { authorization: auth.authorization, ...extra } : extra;
}

/** Cancels an upload the upstream started (DELETE on its URL), so nothing is left behind. */
async function cancel(ctx: DoctorContext, location: string, auth: AuthState): Promise<number | undefined> {
  const url = new URL(location, ctx.config.upstream);
  const reply = await send(ctx.upstream, { method: 'DELETE', path: url.pathname + url.search, headers: forwarded(ctx, 'DELETE', uploadHeaders(auth)), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
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
    direct = await send(ctx.upstream, { method: 'POST', path, headers: forwarded(ctx, 'POST', uploadHeaders(auth, { 'content-length': '0' })), timeoutMs: ctx.timeoutMs });
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
  const headers = (method: string, extra: Record<string, string> = {}): Record<string, string> => (ctx.berth ? asClient(ctx, uploadHeaders(auth, extra)) : forwarded(ctx, method, uploadHeaders(auth, extra)));
  const path = `/v2/${ctx.repository}/blobs/uploads/`;
  const started = await send(via, { method: 'POST', path, headers: headers('POST', { 'content-length': '0' }), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
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
      headers: headers('PATCH', { 'content-type': 'application/octet-stream', 'content-range': `0-${size - 1}` }),
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
      detail: `a ${formatBytes(size)} PATCH ${ctx.berth ? 'through berth' : 'to the upstream'} was refused: 413 Request Entity Too Large${answeredBy(reply)}`,
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
    findings.push({ id: 'throughput', area: 'throughput', level: 'problem', detail: `a ${formatBytes(size)} PATCH answered ${reply.status}${answeredBy(reply)}: ${reply.body.trim().slice(0, 160)}` });
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

/**
 * Who sent an error, when it was not the registry: the registry (and berth) marks every /v2/
 * answer with Docker-Distribution-Api-Version; without it, a proxy or balancer on the way
 * answered (named by its Server header, if any).
 */
export function answeredBy(reply: Reply): string {
  if (reply.headers[API_VERSION] !== undefined) return ''; // the registry, or berth in its shape
  const server = reply.headers.server;
  return `, answered by ${server ? `"${server}"` : 'something'} between berth and the registry, not the registry (no Docker-Distribution-Api-Version)`;
}

/** The message of a registry-shaped error body, or the body's start. */
function errorMessage(body: string): string {
  try {
    return (JSON.parse(body) as { errors: { message: string }[] }).errors[0]!.message;
  } catch {
    return body.trim().slice(0, 160);
  }
}
