import { isNamed } from '../headerName.js';
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
  const headers = ctx.headers;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (isNamed(headers[i]!, 'location')) headers[i + 1] = rewriteToPublic(headers[i + 1]!, ctx) ?? headers[i + 1]!;
  }
};
