/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and must not be
 * forwarded: Connection and every header it names, plus the fixed list below. http-proxy
 * forwards them, and a Trailer header on a bodiless request crashed it
 * (http-party/node-http-proxy#1647), so berth removes them itself, both ways.
 */
const FIXED = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection']);

export function isFixedHopByHop(name: string): boolean {
  return FIXED.has(name) || name.startsWith('proxy-');
}

/** The lowercased header names a Connection header lists. */
export function connectionTokens(value: string | readonly string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    String(text)
      .split(',')
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** Headers that decide message framing; never removed because Connection names them. */
export const FRAMING = new Set(['content-length', 'host']);
