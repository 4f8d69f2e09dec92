import type { RequestPass } from '../context.js';
import { FRAMING, connectionTokens, isFixedHopByHop } from '../hopByHop.js';

/**
 * Removes hop-by-hop headers and Expect, then restates the body's framing for the upstream
 * hop: Node's parser has already decoded a chunked body, and the transport re-chunks it
 * (`ctx.body`). Framing is decided here, from what the parser
 * saw, so no client-controlled header (e.g. `Connection: content-length`) can make the
 * upstream read body bytes as a new request; `ctx.body` records it, and the handler
 * forwards a body only with that framing.
 *
 * Expect: Node answers `100 Continue` itself before the request reaches berth, as nginx
 * does; forwarding the expectation would make the upstream answer it a second time.
 */
export const stripHopByHop: RequestPass = (ctx) => {
  const headers = ctx.headers;
  const chunked = headers['transfer-encoding'] !== undefined;
  const named = connectionTokens(headers.connection);
  for (const name in headers) {
    if (isFixedHopByHop(name) || (named.has(name) && !FRAMING.has(name))) delete headers[name];
  }
  delete headers.expect;
  if (chunked) {
    // The transport chunks it again, whatever the method (ctx.body says so).
    delete headers['content-length'];
    ctx.body = 'chunked';
  } else {
    ctx.body = headers['content-length'] === undefined ? 'none' : 'length';
  }
};
