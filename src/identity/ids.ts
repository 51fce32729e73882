/** signId / boxId text form: standard base64 (with padding) of a 32-byte public key. */
export const ID_BYTES = 32

/** The 32 key bytes of a base64 id, or null if `id` is not exactly that. */
export function parseId(id: unknown): Buffer | null {
  if (typeof id !== 'string' || id.length !== 44) return null
  const bytes = Buffer.from(id, 'base64')
  if (bytes.length !== ID_BYTES || bytes.toString('base64') !== id) return null
  return bytes
}

/** True when `id` is a well-formed signId or boxId. */
export function isId(id: unknown): id is string {
  return parseId(id) !== null
}

export function formatId(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64')
}
