/**
 * DNS TXT character-strings hold at most 255 bytes each (RFC 1035 3.3.14): a longer text is split
 * over several strings of one TXT record and joined again on receipt, in order.
 */

/** Longest DNS character-string, bytes. */
export const TXT_STRING_BYTES = 255

/** Splits `text` (UTF-8) into strings of at most 255 bytes, never inside a character. */
export function splitTxt(text: string): Buffer[] {
  const bytes = Buffer.from(text, 'utf8')
  const parts: Buffer[] = []
  let start = 0
  while (start < bytes.length) {
    let end = Math.min(start + TXT_STRING_BYTES, bytes.length)
    // Back off continuation bytes (10xxxxxx) so a multi-byte character stays whole.
    while (end < bytes.length && end > start && ((bytes[end] as number) & 0xc0) === 0x80) end--
    parts.push(bytes.subarray(start, end))
    start = end
  }
  return parts
}

/** Joins the strings of one TXT record back into text; undefined if the total exceeds `maxBytes`. */
export function joinTxt(data: unknown, maxBytes: number): string | undefined {
  const parts = Array.isArray(data) ? data : [data]
  let total = 0
  const buffers: Buffer[] = []
  for (const p of parts) {
    const b = Buffer.isBuffer(p) ? p : typeof p === 'string' ? Buffer.from(p, 'utf8') : undefined
    if (!b) return undefined
    total += b.length
    if (total > maxBytes) return undefined
    buffers.push(b)
  }
  return Buffer.concat(buffers).toString('utf8')
}
