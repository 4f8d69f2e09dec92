import crypto from 'node:crypto';
import type { RequestPass } from '../context.js';

/** What berth takes as a request id from a trusted proxy: a token, not free text. */
const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/**
 * One id per request, in berth's access line and sent upstream as `X-Request-Id` (Harbor
 * logs it with the request), so that a line in berth's log can be matched with the
 * registry's. A trusted proxy in front of berth (trustedProxies) may have set one: it is
 * kept, so the id spans the whole chain. Anyone else's is replaced, as the forwarded
 * headers are: a client could otherwise put what it likes into the registry's logs.
 */
export const setRequestId: RequestPass = (ctx) => {
  const given = ctx.trusted ? ctx.headers['x-request-id'] : undefined;
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
  ctx.headers['x-request-id'] = id;
  ctx.requestId = id;
};
