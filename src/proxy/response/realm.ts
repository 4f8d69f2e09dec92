import type { ResponsePass } from './headers.js';
import { rewriteToPublic } from './origin.js';

/** realm="…" (quoted-string) or realm=token inside a challenge (RFC 9110 §11.2). */
const REALM = /(\brealm\s*=\s*)(?:"([^"]*)"|([^\s,"]+))/gi;

/**
 * Fixes a token realm that points at the upstream or at the public host over http
 * (Harbor without external_url, a registry with an internal realm): clients would
 * otherwise log in against an address they cannot reach, or over plain http.
 */
export function rewriteChallenge(value: string, view: Parameters<typeof rewriteToPublic>[1]): string {
  return value.replace(REALM, (whole, prefix: string, quoted: string | undefined, token: string | undefined) => {
    const realm = quoted ?? token!;
    const fixed = rewriteToPublic(realm, view);
    return fixed === undefined ? whole : `${prefix}"${fixed}"`;
  });
}

export const rewriteRealm: ResponsePass = (ctx) => {
  for (const pair of ctx.headers) {
    if (pair[0].toLowerCase() === 'www-authenticate') pair[1] = rewriteChallenge(pair[1], ctx);
  }
};
