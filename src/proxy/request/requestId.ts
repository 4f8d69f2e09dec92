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
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId();
  ctx.headers['x-request-id'] = id;
  ctx.requestId = id;
};

/**
 * The process's part of the ids it makes: 74 random bits drawn once, laid out as the first
 * four groups of a UUID (RFC 9562 version 8, "custom"), so that ids from different
 * processes, workers and restarts never meet.
 */
const PROCESS_PART = ((): string => {
  const hex = crypto.randomBytes(10).toString('hex');
  const variant = (8 | (parseInt(hex[16]!, 16) & 3)).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-`;
})();
let made = 0;

/**
 * A new request id, shaped as a UUID (what Harbor and log tools expect of X-Request-Id):
 * the process's part, then a count of the ids it made (48 bits). An id only has to be
 * unique, not secret: a count costs a fraction of a random UUID per request.
 */
export function newRequestId(): string {
  made++;
  return PROCESS_PART + made.toString(16).padStart(12, '0');
}
