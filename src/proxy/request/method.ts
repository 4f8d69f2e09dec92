import type { RequestPass } from '../context.js';
import { ProxyError } from '../errors.js';

/**
 * TRACE (and IIS's TRACK) make the server echo the request back, Authorization and
 * cookies included: with any script on a page, that is cross-site tracing. No registry
 * client uses it; berth refuses it before the upstream, as nginx does.
 */
const REFUSED = new Set(['TRACE', 'TRACK']);

export const refuseMethods: RequestPass = (ctx) => {
  if (REFUSED.has(ctx.method)) throw new ProxyError('method_not_allowed', { detail: ctx.method });
};
