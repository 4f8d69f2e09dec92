import type { RequestPass } from '../context.js';
import { ProxyError } from '../errors.js';

/** An authority as RFC 3986 allows it in Host: reg-name or bracketed IPv6, optional port; group 1 is the host. */
export const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::\d{1,5})?$/;
/** absolute-form request target (RFC 9112 §3.2.2): scheme, authority, then the origin-form part. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([\s\S]*)$/i;

/**
 * Checks the Host header and decides the public origin. Host is forwarded unchanged
 * (port included): the registry builds upload URLs and Harbor its token realm from it.
 * Since Host flows into Location headers, anything that is not a plain authority
 * ("evil.example/x?") is refused before it can; and when the served names are known
 * (publicOrigin, serverNames), a Host or TLS SNI naming any other host is misdirected (421).
 */
export const checkHost: RequestPass = (ctx) => {
  // A server must accept absolute-form and then ignore Host (RFC 9112 §3.2.2). The upstream
  // gets origin-form with the URI's authority as Host, so both are checked the same way.
  const absolute = ABSOLUTE_FORM.exec(ctx.url);
  if (absolute) {
    ctx.headers.host = absolute[1]!;
    ctx.url = absolute[2] || '/';
  } else if (!ctx.url.startsWith('/')) {
    throw new ProxyError('bad_target');
  }
  const names = ctx.settings.names;
  if (names && ctx.sni !== undefined && !names.matches(ctx.sni)) throw new ProxyError('misdirected', { detail: `SNI ${ctx.sni}` });
  const host = ctx.headers.host;
  if (host === undefined) return; // HTTP/1.0 without Host: nothing to check, nothing to build from
  const match = HOST.exec(host);
  if (!match) throw new ProxyError('bad_host');
  if (names && !names.matches(match[1]!)) throw new ProxyError('misdirected', { detail: `Host ${host}` });
  if (ctx.settings.publicOrigin === undefined) ctx.publicOrigin = `https://${host}`;
};
