/**
 * Equality of short public byte strings (extensions, short-term public keys) on the per-packet
 * path. Buffer#equals crosses into C++ for every call, which costs more than comparing 16 or 32
 * bytes here. Not constant-time: never use it for secrets or authenticators.
 */

/** True when `a` and `b` hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length
  if (n !== b.length) return false
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false
  return true
}
