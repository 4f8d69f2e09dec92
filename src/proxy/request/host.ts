import type { RequestContext, RequestPass } from '../context.js';
import { HOST } from '../../net/names.js';
import { ProxyError } from '../errors.js';
import { hstsNamesHost } from '../response/hsts.js';

/** absolute-form request target (RFC 9112 §3.2.2): scheme, authority, then the origin-form part. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([\s\S]*)$/i;

/**
 * Checks the Host header and decides the public origin. Host is forwarded unchanged
 * (port included): the registry builds upload URLs and Harbor its token realm from it.
 * Since Host flows into Location headers, anything that is not a plain authority
 * ("evil.example/x?") is refused before it can, and so is a request with two Host lines
 * (berth and the upstream could each take another). When the served names are known
 * (publicOrigin, serverNames), a Host or TLS SNI naming any other host, or a port clients
 * cannot reach berth on, is misdirected (421).
 */
export const checkHost: RequestPass = (ctx) => {
  // A server must accept absolute-form and then ignore Host (RFC 9112 §3.2.2). The upstream
  // gets origin-form with the URI's authority as Host, so both are checked the same way.
  const absolute = ABSOLUTE_FORM.exec(ctx.url);
  if (absolute) {
    ctx.headers.host = absolute[1]!;
    const rest = absolute[2]!;
    ctx.url = rest.startsWith('/') ? rest : `/${rest}`; // "http://host?x=1" asks for "/?x=1"
  } else if (!ctx.url.startsWith('/')) {
    throw new ProxyError('bad_target');
  }
  if (ctx.hostLines > 1) throw new ProxyError('host_required', { detail: `${ctx.hostLines} Host lines` });
  const names = ctx.settings.names;
  if (names && ctx.sni !== undefined && !names.matches(ctx.sni)) throw new ProxyError('misdirected', { detail: `SNI ${ctx.sni}` });
  if (ctx.headers.host === undefined) {
    // HTTP/1.0 without Host: the public origin's authority stands in, so that the
    // upstream never builds URLs on its own address. Without one there is nothing to use.
    if (ctx.settings.publicOrigin === undefined) throw new ProxyError('host_required', { detail: 'no Host' });
    ctx.headers.host = ctx.settings.publicOrigin.slice('https://'.length);
    return;
  }
  const host = ctx.headers.host;
  const match = HOST.exec(host);
  if (!match) throw new ProxyError('bad_host');
  if (names && !names.matches(match[1]!)) throw new ProxyError('misdirected', { detail: `Host ${host}` });
  if (names && match[2] !== undefined && !servedPort(Number(match[2]), ctx)) throw new ProxyError('misdirected', { detail: `Host ${host}: not a port berth is reached on` });
  if (ctx.settings.publicOrigin === undefined) {
    ctx.publicOrigin = `https://${host}`;
    if (ctx.settings.hsts !== undefined && hstsNamesHost(match[1]!)) ctx.hsts = ctx.settings.hsts;
  }
};

/**
 * The ports a Host may name when names are enforced: publicOrigin's (443 without one) and
 * the one the client connected to. Any other flows into the registry's upload URLs and
 * sends the client to a port nothing listens on.
 */
function servedPort(port: number, ctx: RequestContext): boolean {
  const publicOrigin = ctx.settings.publicOrigin;
  const publicPort = publicOrigin === undefined ? 443 : Number(/:(\d+)$/.exec(publicOrigin)?.[1] ?? 443);
  return port === publicPort || port === ctx.localPort;
}
