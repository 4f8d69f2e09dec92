import type { ResponsePass } from './headers.js';
import { rewriteToPublic } from './origin.js';

/**
 * Statuses whose Location a registry client follows or resolves: 201 (blob or manifest
 * created), 202 (upload started or continued), 204 (upload status) and redirects.
 * http-proxy's autoRewrite covers only 201 and 30x, missing exactly the upload answers.
 */
export function rewritesLocation(status: number): boolean {
  return status === 201 || status === 202 || status === 204 || (status >= 300 && status < 400);
}

/** Points upload and redirect Locations that name the upstream at the public https origin. */
export const rewriteLocation: ResponsePass = (ctx) => {
  if (!rewritesLocation(ctx.status)) return;
  for (const pair of ctx.headers) {
    if (pair[0].toLowerCase() !== 'location') continue;
    pair[1] = rewriteToPublic(pair[1], ctx) ?? pair[1];
  }
};
