/**
 * Rewriting URLs that point at the upstream to the public https origin, by string
 * surgery on the authority only: everything after it (path, query, fragment) is kept
 * byte-for-byte, because the `_state` query parameter is HMAC-signed and any re-encoding
 * makes the registry answer BLOB_UPLOAD_INVALID.
 */

export interface OriginView {
  /** The upstream berth forwards to. */
  readonly upstream: URL;
  /** "https://host[:port]" as clients reach berth; "" when unknown. */
  readonly publicOrigin: string;
}

interface Authority {
  readonly host: string;
  readonly port: string;
}

const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' };

function parseAuthority(text: string, scheme: string): Authority | undefined {
  if (text.includes('@')) return undefined; // credentials: never ours to rewrite
  const match = /^(\[[^\]]+\]|[^:]*)(?::(\d*))?$/.exec(text);
  if (!match) return undefined;
  return { host: match[1]!.toLowerCase(), port: match[2] || DEFAULT_PORT[scheme] || '' };
}

/** The port as written in an authority ("" when there is none). */
function writtenPort(authority: string): string {
  return /:(\d*)$/.exec(authority.replace(/^\[[^\]]*\]/, ''))?.[1] ?? '';
}

function originAuthority(url: URL): Authority {
  const scheme = url.protocol.slice(0, -1);
  return { host: url.hostname.toLowerCase(), port: url.port || DEFAULT_PORT[scheme] || '' };
}

/**
 * Returns the rewritten URL, or undefined to leave the value untouched. Rewritten are
 * absolute (or scheme-relative) URLs on the upstream's origin (or its authority under
 * https), and http:// URLs on the public host (its port, or no port: the registry or
 * Harbor built it without knowing TLS is terminated in front). Relative URLs and other
 * hosts are left alone.
 */
export function rewriteToPublic(value: string, view: OriginView): string | undefined {
  if (!view.publicOrigin) return undefined;
  const match = /^(?:([A-Za-z][A-Za-z0-9+.-]*):)?\/\/([^/?#]*)([\s\S]*)$/.exec(value);
  if (!match) return undefined;
  const upstreamScheme = view.upstream.protocol.slice(0, -1);
  const scheme = (match[1] ?? upstreamScheme).toLowerCase();
  const authority = parseAuthority(match[2]!, scheme);
  if (!authority) return undefined;
  const rest = match[3]!;

  const upstream = originAuthority(view.upstream);
  // The upstream's origin, or its authority under https: a registry told the request came
  // over https (X-Forwarded-Proto) builds https URLs from the Host it got, which is the
  // upstream's own authority when no client-facing one was known.
  const onUpstream =
    authority.host === upstream.host &&
    ((scheme === upstreamScheme && authority.port === upstream.port) || (scheme === 'https' && writtenPort(match[2]!) === view.upstream.port));

  const pub = originAuthority(new URL(view.publicOrigin));
  const publicOverHttp =
    scheme === 'http' && authority.host === pub.host && (authority.port === pub.port || authority.port === '80');

  if (!onUpstream && !publicOverHttp) return undefined;
  return view.publicOrigin + rest;
}
