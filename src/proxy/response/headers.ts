import type { OriginView } from './origin.js';

/** Response headers as [name, value] pairs, in the upstream's order and case, duplicates kept. */
export type HeaderPairs = [name: string, value: string][];

export interface ResponseContext extends OriginView {
  readonly status: number;
  headers: HeaderPairs;
  /** Strict-Transport-Security value for this answer, when HSTS is on and the host is a name (see hsts.ts). */
  readonly hsts?: string | undefined;
}

/** A step on the way out: changes the response headers in the context. */
export type ResponsePass = (ctx: ResponseContext) => void;

export function pairsFromRaw(raw: readonly string[]): HeaderPairs {
  const pairs: HeaderPairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

/** name, value, name, value…: what writeHead takes with duplicates kept. */
export function flattenPairs(pairs: HeaderPairs): string[] {
  const flat = new Array<string>(pairs.length * 2);
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    flat[2 * i] = pair[0];
    flat[2 * i + 1] = pair[1];
  }
  return flat;
}
