import { isNamed } from '../headerName.js';
import type { ResponsePass } from './headers.js';
import { rewriteToPublic } from './origin.js';

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;
const SPACE = /[ \t]*/y;
/** An unquoted parameter value: a token, loosely (servers write unquoted URLs too). */
const BARE_VALUE = /[^\s,"]+/y;

/** The end of the quoted-string that starts at `at` (the index after its closing quote), or -1 if it never closes. */
function quotedEnd(value: string, at: number): number {
  for (let i = at + 1; i < value.length; i++) {
    if (value[i] === '\\') i++;
    else if (value[i] === '"') return i + 1;
  }
  return -1;
}

function matchAt(pattern: RegExp, value: string, at: number): string {
  pattern.lastIndex = at;
  return pattern.exec(value)?.[0] ?? '';
}

/**
 * Fixes a token realm that points at the upstream or at the public host over http
 * (Harbor without external_url, a registry with an internal realm): clients would
 * otherwise log in against an address they cannot reach, or over plain http.
 *
 * The header is read as challenges (RFC 9110 §11.2): schemes, token68 and
 * `name=value` parameters whose values are tokens or quoted-strings. Only a parameter
 * named realm is changed, so text such as `realm=` inside another quoted parameter is
 * never touched. A header that does not parse is left as it is.
 */
export function rewriteChallenge(value: string, view: Parameters<typeof rewriteToPublic>[1]): string {
  let out = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    if (c === ' ' || c === '\t' || c === ',') {
      out += c;
      i++;
      continue;
    }
    const name = matchAt(TOKEN, value, i);
    if (!name) return value;
    const afterName = i + name.length;
    const equals = afterName + matchAt(SPACE, value, afterName).length;
    if (value[equals] !== '=' || value[equals + 1] === '=' || equals + 1 >= value.length) {
      // An auth-scheme, or token68 (which may end in '='s).
      let end = afterName;
      while (value[end] === '=') end++;
      out += value.slice(i, end);
      i = end;
      continue;
    }
    const start = equals + 1 + matchAt(SPACE, value, equals + 1).length;
    let end: number;
    let text: string;
    if (value[start] === '"') {
      end = quotedEnd(value, start);
      if (end < 0) return value;
      text = value.slice(start + 1, end - 1).replace(/\\(.)/g, '$1');
    } else {
      text = matchAt(BARE_VALUE, value, start);
      if (!text) return value;
      end = start + text.length;
    }
    const fixed = name.toLowerCase() === 'realm' ? rewriteToPublic(text, view) : undefined;
    out += fixed === undefined ? value.slice(i, end) : `${value.slice(i, start)}"${fixed.replace(/["\\]/g, '\\$&')}"`;
    i = end;
  }
  return out;
}

export const rewriteRealm: ResponsePass = (ctx) => {
  const headers = ctx.headers;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (isNamed(headers[i]!, 'www-authenticate')) headers[i + 1] = rewriteChallenge(headers[i + 1]!, ctx);
  }
};
