/**
 * Whether a header name is `lower` (a lowercase ASCII name) in any case, without the
 * lowercased copy `name.toLowerCase()` would allocate for most names a registry sends
 * (`Content-Type`, not `content-type`). Header names are latin1 (Node's parser and undici
 * read them so), and no latin1 letter but A–Z lowercases to ASCII: the same answer as
 * `name.toLowerCase() === lower`.
 */
export function isNamed(name: string, lower: string): boolean {
  return name.length === lower.length && namedAt(name, lower, 0);
}

/**
 * Whether `name` holds `lower` (lowercase ASCII) at `at`, in any case (as isNamed):
 * `name.toLowerCase().startsWith(lower, at)`. `name` must be long enough.
 */
export function namedAt(name: string, lower: string, at: number): boolean {
  const n = lower.length;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(at + i);
    const want = lower.charCodeAt(i);
    if (c !== want && (c < 0x41 || c > 0x5a || c + 0x20 !== want)) return false;
  }
  return true;
}
