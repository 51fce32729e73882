/**
 * Reversible key encoding for stores that turn keys into file names (kad-fs writes
 * `datadir + key`). The output uses only `[A-Za-z0-9_.-]`, never starts with a dot, has no
 * slash, so a key can never name a file outside the data directory.
 */
import { StorageError } from '../errors.js'

/** Longest encoded key: below the 255-byte file name limit of common file systems. */
export const MAX_ENCODED_KEY_BYTES = 200

export function encodeKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new StorageError('ERR_STORAGE_BAD_KEY', 'a storage key must be a non-empty string')
  let uri: string
  try {
    uri = encodeURIComponent(key)
  } catch (err) {
    throw new StorageError('ERR_STORAGE_BAD_KEY', 'a storage key must be well-formed Unicode (no lone surrogates)', { cause: err })
  }
  const escaped = uri.replace(/[.!~*'()%]/g, (c) =>
    c === '%' ? '.' : '.' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')
  )
  // A name never starts with a dot (no hidden files, never '.' or '..'): one that would, or that
  // starts with the '_' marker itself, gets a leading '_'.
  const encoded = escaped.startsWith('.') || escaped.startsWith('_') ? '_' + escaped : escaped
  if (encoded.length > MAX_ENCODED_KEY_BYTES) {
    throw new StorageError('ERR_STORAGE_BAD_KEY', `storage key too long (${encoded.length} bytes encoded, at most ${MAX_ENCODED_KEY_BYTES})`)
  }
  return encoded
}

/** Inverse of {@link encodeKey}; null for names that encodeKey cannot have produced. */
export function decodeKey(name: string): string | null {
  const body = name.startsWith('_') ? name.slice(1) : name
  if (body !== name && !body.startsWith('.') && !body.startsWith('_')) return null
  if (body === name && name.startsWith('.')) return null
  if (!/^([A-Za-z0-9_-]|\.[0-9A-F]{2})+$/.test(body)) return null
  try {
    return decodeURIComponent(body.replace(/\.([0-9A-F]{2})/g, '%$1'))
  } catch {
    return null
  }
}
