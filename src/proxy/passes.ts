import type { RequestPass } from './context.js';
import { checkHost } from './request/host.js';
import { stripHopByHop } from './request/hopByHop.js';
import { setForwarded } from './request/forwarded.js';
import { refuseMethods } from './request/method.js';
import { setRequestId } from './request/requestId.js';
import type { ResponsePass } from './response/headers.js';
import { stripResponseHopByHop } from './response/hopByHop.js';
import { rewriteLocation } from './response/location.js';
import { addHsts } from './response/hsts.js';
import { rewriteRealm } from './response/realm.js';

/**
 * The request's way through berth, in order. Hop-by-hop headers go first, so that a
 * header named in Connection can never remove one that a later pass sets.
 */
export const REQUEST_PASSES: readonly RequestPass[] = [refuseMethods, checkHost, stripHopByHop, setForwarded, setRequestId];

export const RESPONSE_PASSES: readonly ResponsePass[] = [stripResponseHopByHop, rewriteLocation, rewriteRealm, addHsts];
