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
    const lower = pair[0].toLowerCase();
    if (isFixedHopByHop(lower) || (named.has(lower) && !FRAMING.has(lower))) continue;
    headers[kept++] = pair;
  }
  headers.length = kept;
};

/** The values of every Connection line, if there is one. */
function connectionValues(headers: HeaderPairs): string[] | undefined {
  let values: string[] | undefined;
  for (const [name, value] of headers) {
    if (name.length === 10 && name.toLowerCase() === 'connection') (values ??= []).push(value);
  }
  return values;
}
