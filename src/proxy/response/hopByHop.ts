import { FRAMING, connectionTokens, isFixedHopByHop } from '../hopByHop.js';
import type { HeaderPairs, ResponsePass } from './headers.js';

/**
 * Removes hop-by-hop headers from the upstream's answer; Node frames the response for
 * the client connection itself (chunked or Content-Length, keep-alive or close).
 */
export const stripResponseHopByHop: ResponsePass = (ctx) => {
  const headers = ctx.headers;
  const named = connectionTokens(connectionValues(headers));
  let kept = 0;
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i]!;
    const name = pair[0];
    if (mayBeHopByHop(name, named)) {
      const lower = name.toLowerCase();
      if (isFixedHopByHop(lower) || (named.has(lower) && !FRAMING.has(lower))) continue;
    }
    headers[kept++] = pair;
  }
  headers.length = kept;
};

/**
 * Whether a header name may be hop-by-hop, judged without the lowercased copy most names
 * would cost (the registry sends `Content-Type`, not `content-type`): by its length (te 2,
 * trailer and upgrade 7, connection and keep-alive 10, transfer-encoding 17, or that of a
 * name Connection lists) or a first letter p (proxy-*). Lowercasing keeps a name's length:
 * header names are latin1, and no latin1 letter changes length or becomes ASCII.
 */
function mayBeHopByHop(name: string, named: ReadonlySet<string>): boolean {
  const n = name.length;
  if (n === 2 || n === 7 || n === 10 || n === 17) return true;
  if (n >= 6 && (name.charCodeAt(0) | 0x20) === 0x70) return true;
  for (const token of named) if (token.length === n) return true;
  return false;
}

/** The values of every Connection line, if there is one. */
function connectionValues(headers: HeaderPairs): string[] | undefined {
  let values: string[] | undefined;
  for (const [name, value] of headers) {
    if (name.length === 10 && name.toLowerCase() === 'connection') (values ??= []).push(value);
  }
  return values;
}
