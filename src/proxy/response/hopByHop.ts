import { FRAMING, connectionTokens, isFixedHopByHop, isFixedHopByHopName } from '../hopByHop.js';
import { isNamed } from '../headerName.js';
import type { HeaderLines, ResponsePass } from './headers.js';

/**
 * Removes hop-by-hop headers from the upstream's answer; Node frames the response for
 * the client connection itself (chunked or Content-Length, keep-alive or close).
 */
export const stripResponseHopByHop: ResponsePass = (ctx) => {
  const headers = ctx.headers;
  const named = connectionTokens(connectionValues(headers));
  // `Connection: keep-alive` (most answers) names only a header the fixed list removes anyway.
  // (With that, and the fixed names found by length, this pass and the comparisons it calls
  // went from 4.0 to 1.3 thousand machine instructions for a small answer's six lines; npm run
  // bench:instructions.)
  const namesMore = namesBeyondFixed(named);
  let kept = 0;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    if (isFixedHopByHopName(name) || (namesMore && isNamedHere(name, named))) continue;
    if (kept !== i) {
      headers[kept] = name;
      headers[kept + 1] = headers[i + 1]!;
    }
    kept += 2;
  }
  headers.length = kept;
};

/**
 * Whether Connection names this header (not one that frames the message), compared in any
 * case without a lowercased copy of the name: the tokens are lowercase already.
 */
function isNamedHere(name: string, named: ReadonlySet<string>): boolean {
  for (const token of named) if (isNamed(name, token)) return !FRAMING.has(token);
  return false;
}

/** Whether Connection names any header beyond those removed anyway (the fixed list). */
function namesBeyondFixed(named: ReadonlySet<string>): boolean {
  for (const token of named) if (!isFixedHopByHop(token)) return true;
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
