import { normalizeAddress } from '../../net/cidr.js';
import type { RequestContext, RequestPass } from '../context.js';

/**
 * Headers through which a client could claim another scheme, host or address. From an
 * untrusted peer they are removed: a spoofed `X-Forwarded-Proto: http` or `Forwarded`
 * makes the registry build http:// upload URLs (distribution/distribution
 * registry/api/v2/urls.go reads `Forwarded` first and then ignores every X-Forwarded-*).
 */
function isForwardingHeader(name: string): boolean {
  return name === 'forwarded' || name === 'x-real-ip' || name.startsWith('x-forwarded-');
}

/** The client is the right-most address in the chain that is not a trusted proxy. */
function clientFromChain(ctx: RequestContext, chain: readonly string[]): string {
  for (let i = chain.length - 1; i >= 0; i--) {
    const hop = chain[i]!;
    if (!ctx.settings.trustedProxies.has(hop)) return hop;
  }
  return chain[0] ?? ctx.peer;
}

/**
 * Sets the forwarded headers once (never appended to what a client sent, unlike
 * http-proxy's xfwd): `X-Forwarded-Proto: https`, `X-Forwarded-Host` = Host as received,
 * and `X-Forwarded-For`, which extends the chain only when the peer is a trusted proxy.
 * From a trusted proxy, `Forwarded` and `X-Real-IP` are kept as its own statement.
 */
export const setForwarded: RequestPass = (ctx) => {
  const headers = ctx.headers;
  const peer = normalizeAddress(ctx.peer);
  const inbound = ctx.trusted ? headers['x-forwarded-for'] : undefined;
  for (const name in headers) {
    // X_Forwarded_Proto is X-Forwarded-Proto to a CGI-style upstream (both become
    // HTTP_X_FORWARDED_PROTO): such spellings are dropped from everyone, as nginx ignores
    // headers with underscores.
    const underscored = name.includes('_');
    if (!isForwardingHeader(underscored ? name.replace(/_/g, '-') : name)) continue;
    if (underscored || !ctx.trusted || name.startsWith('x-forwarded-')) delete headers[name];
  }
  if (inbound === undefined) {
    // The chain starts here: the peer is the client, or a trusted proxy that named none.
    headers['x-forwarded-for'] = peer;
    ctx.client = peer;
  } else {
    const chain: string[] = [];
    for (const hop of [inbound].flat().join(',').split(',')) {
      const trimmed = hop.trim();
      if (trimmed) chain.push(trimmed);
    }
    chain.push(peer);
    headers['x-forwarded-for'] = chain.join(', ');
    ctx.client = clientFromChain(ctx, chain);
  }
  headers['x-forwarded-proto'] = 'https';
  if (headers.host !== undefined) headers['x-forwarded-host'] = headers.host;
};
