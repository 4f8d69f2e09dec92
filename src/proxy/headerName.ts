/**
 * Whether a header name is `lower` (a lowercase ASCII name) in any case, without the
 * lowercased copy `name.toLowerCase()` would allocate for most names a registry sends
 * (`Content-Type`, not `content-type`). Header names are latin1 (Node's parser and undici
 * read them so), and no latin1 letter but A–Z lowercases to ASCII: the same answer as
 * `name.toLowerCase() === lower`.
 */
export function isNamed(name: string, lower: string): boolean {
  const n = lower.length;
  if (name.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    const want = lower.charCodeAt(i);
    if (c !== want && (c < 0x41 || c > 0x5a || c + 0x20 !== want)) return false;
  }
  return true;
}
