import { FRAMING, connectionTokens, isFixedHopByHop } from '../hopByHop.js';
import { isNamed } from '../headerName.js';
import type { HeaderLines, ResponsePass } from './headers.js';

/**
 * Removes hop-by-hop headers from the upstream's answer; Node frames the response for
 * the client connection itself (chunked or Content-Length, keep-alive or close).
 */
export const stripResponseHopByHop: ResponsePass = (ctx) => {
  const headers = ctx.headers;
  const named = connectionTokens(connectionValues(headers));
  let kept = 0;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    if (mayBeHopByHop(name, named)) {
      const lower = name.toLowerCase();
      if (isFixedHopByHop(lower) || (named.has(lower) && !FRAMING.has(lower))) continue;
    }
    if (kept !== i) {
      headers[kept] = name;
      headers[kept + 1] = headers[i + 1]!;
    }
    kept += 2;
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

/** The value of the Connection line, or the values of each when there are several. */
function connectionValues(headers: HeaderLines): string | string[] | undefined {
  let values: string | string[] | undefined;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (!isNamed(headers[i]!, 'connection')) continue;
    const value = headers[i + 1]!;
    if (values === undefined) values = value;
    else if (typeof values === 'string') values = [values, value];
    else values.push(value);
  }
  return values;
}
