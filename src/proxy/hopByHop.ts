import { isNamed, namedAt } from './headerName.js';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and must not be
 * forwarded: Connection and every header it names, plus the fixed list below. http-proxy
 * forwards them, and a Trailer header on a bodiless request crashed it
 * (http-party/node-http-proxy#1647), so berth removes them itself, both ways.
 * (isFixedHopByHopName finds the same names by their lengths; a test holds the two together.)
 */
export const FIXED_NAMES = ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection'] as const;
const FIXED: ReadonlySet<string> = new Set(FIXED_NAMES);

export function isFixedHopByHop(name: string): boolean {
  return FIXED.has(name) || name.startsWith('proxy-');
}

/**
 * isFixedHopByHop for a name in any case (an answer's: `Connection`, `Keep-Alive`), without
 * the lowercased copy and its hashing into FIXED: the same list, found by the name's length
 * and then compared letter by letter (an answer's usual names, `Content-Type`, `Date`, have
 * no fixed name of their length and are let through after one comparison, for `proxy-`).
 */
export function isFixedHopByHopName(name: string): boolean {
  switch (name.length) {
    case 2:
      return isNamed(name, 'te');
    case 7:
      if (isNamed(name, 'trailer') || isNamed(name, 'upgrade')) return true;
      break;
    case 10:
      if (isNamed(name, 'connection') || isNamed(name, 'keep-alive')) return true;
      break;
    case 17:
      if (isNamed(name, 'transfer-encoding')) return true;
      break;
  }
  // proxy-connection among them (a name of 7, 10 or 17 may be one too: `Proxy-X`).
  return name.length >= 6 && namedAt(name, 'proxy-', 0);
}

const NONE: ReadonlySet<string> = new Set();
/** The Connection values clients and registries send on nearly every message, parsed once. */
const COMMON: ReadonlyMap<string, ReadonlySet<string>> = new Map(['keep-alive', 'close', 'Keep-Alive', 'Close', 'upgrade', 'Upgrade'].map((value) => [value, new Set([value.toLowerCase()])]));

/** The lowercased header names a Connection header lists, as a set never to be changed. */
export function connectionTokens(value: string | readonly string[] | undefined): ReadonlySet<string> {
  if (value === undefined || value.length === 0) return NONE;
  const text = Array.isArray(value) ? value.join(',') : String(value);
  const common = COMMON.get(text);
  if (common !== undefined) return common;
  const made = new Set<string>();
  for (const token of text.split(',')) {
    const name = token.trim().toLowerCase();
    if (name) made.add(name);
  }
  return made;
}

/** Headers that decide message framing; never removed because Connection names them. */
export const FRAMING = new Set(['content-length', 'host']);
