import { FRAMING, connectionTokens, isFixedHopByHop } from '../hopByHop.js';
import type { ResponsePass } from './headers.js';

/**
 * Removes hop-by-hop headers from the upstream's answer; Node frames the response for
 * the client connection itself (chunked or Content-Length, keep-alive or close).
 */
export const stripResponseHopByHop: ResponsePass = (ctx) => {
  const named = connectionTokens(ctx.headers.filter(([name]) => name.toLowerCase() === 'connection').map(([, v]) => v));
  ctx.headers = ctx.headers.filter(([name]) => {
    const lower = name.toLowerCase();
    return !isFixedHopByHop(lower) && !(named.has(lower) && !FRAMING.has(lower));
  });
};
