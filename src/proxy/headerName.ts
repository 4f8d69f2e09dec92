/**
 * Whether a header name is `lower` (a lowercased latin1 name) in any case, without the
 * lowercased copy `name.toLowerCase()` would allocate for most names a registry sends
 * (`Content-Type`, not `content-type`). Header names are latin1 (Node's parser and berth's
 * transport read them so), and in latin1 `toLowerCase` moves A–Z and À–Þ (but ×) by 0x20 and nothing
 * else: the same answer as `name.toLowerCase() === lower`.
 */
export function isNamed(name: string, lower: string): boolean {
  return name.length === lower.length && namedAt(name, lower, 0);
}

/**
 * Whether `name` holds `lower` (lowercased latin1) at `at`, in any case (as isNamed):
 * `name.toLowerCase().startsWith(lower, at)`. `name` must be long enough.
 */
export function namedAt(name: string, lower: string, at: number): boolean {
  const n = lower.length;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(at + i);
    const want = lower.charCodeAt(i);
    if (c !== want && (c + 0x20 !== want || !isUpperLatin1(c))) return false;
  }
  return true;
}

/** The latin1 letters `toLowerCase` moves by 0x20: A–Z, and À–Þ but × (0xD7, × and ÷ are no letters). */
function isUpperLatin1(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0xc0 && c <= 0xde && c !== 0xd7);
}
