/**
 * The part of sodium-native's API that sodium.ts uses, over its native binding directly.
 *
 * Why: sodium-native's index.js (108 KB, some 150 wrappers) and what it requires (node:assert,
 * which-runtime) cost a fresh process ~5 ms of CPU to load, about a twentieth of a cold start to
 * the first message. These wrappers do what sodium-native's do for these functions: the same
 * input checks (a wrong length throws before the native call: libsodium reads and writes the
 * lengths it expects, whatever the buffer holds), the same native calls and the same status
 * checks. Anything else (Argon2id, used only for a passphrase) comes from sodium-native itself,
 * loaded on first use.
 */
import type * as SodiumNative from 'sodium-native'

/** The functions and constants sodium.ts takes from sodium-native. */
export type SodiumApi = Pick<
  typeof SodiumNative,
  | 'randombytes_buf'
  | 'crypto_sign_keypair'
  | 'crypto_sign_seed_keypair'
  | 'crypto_sign_ed25519_sk_to_pk'
  | 'crypto_sign_detached'
  | 'crypto_sign_verify_detached'
  | 'crypto_sign_ed25519_pk_to_curve25519'
  | 'crypto_sign_ed25519_sk_to_curve25519'
  | 'crypto_box_keypair'
  | 'crypto_scalarmult_base'
  | 'crypto_scalarmult'
  | 'crypto_stream_salsa20'
  | 'crypto_secretbox_easy'
  | 'crypto_secretbox_open_easy'
  | 'crypto_box_easy'
  | 'crypto_pwhash_async'
  | 'sodium_memcmp'
  | 'sodium_memzero'
  | 'crypto_pwhash_SALTBYTES'
  | 'crypto_pwhash_OPSLIMIT_INTERACTIVE'
  | 'crypto_pwhash_MEMLIMIT_INTERACTIVE'
  | 'crypto_pwhash_OPSLIMIT_MODERATE'
  | 'crypto_pwhash_MEMLIMIT_MODERATE'
  | 'crypto_pwhash_OPSLIMIT_MIN'
  | 'crypto_pwhash_MEMLIMIT_MIN'
  | 'crypto_pwhash_ALG_ARGON2ID13'
>

/** The native functions used here, as the binding exports them (status 0 = success). */
interface Binding {
  randombytes_buf(buffer: ArrayBufferLike, offset: number, length: number): void
  crypto_sign_keypair(pk: Uint8Array, sk: Uint8Array): number
  crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): number
  crypto_sign_ed25519_sk_to_pk(pk: Uint8Array, sk: Uint8Array): number
  crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): number
  crypto_sign_verify_detached(
    sig: ArrayBufferLike, sigOffset: number, sigLength: number,
    m: ArrayBufferLike, mOffset: number, mLength: number,
    pk: ArrayBufferLike, pkOffset: number, pkLength: number
  ): boolean
  crypto_sign_ed25519_pk_to_curve25519(x: Uint8Array, ed: Uint8Array): number
  crypto_sign_ed25519_sk_to_curve25519(x: Uint8Array, ed: Uint8Array): number
  crypto_box_keypair(pk: Uint8Array, sk: Uint8Array): number
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): number
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): number
  crypto_stream_salsa20(c: Uint8Array, n: Uint8Array, k: Uint8Array): number
  crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): number
  crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean
  crypto_box_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, pk: Uint8Array, sk: Uint8Array): number
  sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean
  sodium_memzero(buf: Uint8Array): void
  [constant: string]: unknown
}

/** The names of the native functions the wrappers call: a binding lacking one is not used. */
const NEEDED = [
  'randombytes_buf',
  'crypto_sign_keypair',
  'crypto_sign_seed_keypair',
  'crypto_sign_ed25519_sk_to_pk',
  'crypto_sign_detached',
  'crypto_sign_verify_detached',
  'crypto_sign_ed25519_pk_to_curve25519',
  'crypto_sign_ed25519_sk_to_curve25519',
  'crypto_box_keypair',
  'crypto_scalarmult_base',
  'crypto_scalarmult',
  'crypto_stream_salsa20',
  'crypto_secretbox_easy',
  'crypto_secretbox_open_easy',
  'crypto_box_easy',
  'sodium_memcmp',
  'sodium_memzero'
] as const

const CONSTANTS = [
  'crypto_pwhash_SALTBYTES',
  'crypto_pwhash_OPSLIMIT_INTERACTIVE',
  'crypto_pwhash_MEMLIMIT_INTERACTIVE',
  'crypto_pwhash_OPSLIMIT_MODERATE',
  'crypto_pwhash_MEMLIMIT_MODERATE',
  'crypto_pwhash_OPSLIMIT_MIN',
  'crypto_pwhash_MEMLIMIT_MIN',
  'crypto_pwhash_ALG_ARGON2ID13'
] as const

/** sodium-native's own lengths (libsodium's, fixed for these primitives). */
const SIGN_PK = 32
const SIGN_SK = 64
const SIGN_SEED = 32
const SIG = 64
const BOX_PK = 32
const BOX_SK = 32
const SCALAR = 32
const MAC = 16
const NONCE = 24
const KEY = 32
const SALSA_NONCE = 8

function view(name: string, value: unknown): asserts value is Uint8Array {
  if (!ArrayBuffer.isView(value)) throw new TypeError(`${name} must be a typed array`)
}

function bytes(name: string, value: unknown, length: number): asserts value is Uint8Array {
  view(name, value)
  if (value.byteLength !== length) throw new RangeError(`${name} must be ${length} bytes`)
}

function ok(status: number): void {
  if (status !== 0) throw new Error('status: ' + status)
}

/**
 * The API over `binding` (sodium-native's native module), or null when the binding lacks one of
 * the functions or constants (another sodium-native version: then sodium-native is used whole).
 * `full` loads sodium-native itself, for what is not wrapped here.
 */
export function sodiumOverBinding(binding: Binding, full: () => typeof SodiumNative): SodiumApi | null {
  if (NEEDED.some((name) => typeof binding[name] !== 'function') || CONSTANTS.some((name) => typeof binding[name] !== 'number')) return null
  const b = binding
  const constant = (name: (typeof CONSTANTS)[number]): number => b[name] as number
  return {
    crypto_pwhash_SALTBYTES: constant('crypto_pwhash_SALTBYTES'),
    crypto_pwhash_OPSLIMIT_INTERACTIVE: constant('crypto_pwhash_OPSLIMIT_INTERACTIVE'),
    crypto_pwhash_MEMLIMIT_INTERACTIVE: constant('crypto_pwhash_MEMLIMIT_INTERACTIVE'),
    crypto_pwhash_OPSLIMIT_MODERATE: constant('crypto_pwhash_OPSLIMIT_MODERATE'),
    crypto_pwhash_MEMLIMIT_MODERATE: constant('crypto_pwhash_MEMLIMIT_MODERATE'),
    crypto_pwhash_OPSLIMIT_MIN: constant('crypto_pwhash_OPSLIMIT_MIN'),
    crypto_pwhash_MEMLIMIT_MIN: constant('crypto_pwhash_MEMLIMIT_MIN'),
    crypto_pwhash_ALG_ARGON2ID13: constant('crypto_pwhash_ALG_ARGON2ID13'),
    randombytes_buf(buffer) {
      view('buffer', buffer)
      b.randombytes_buf(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    },
    crypto_sign_keypair(pk, sk) {
      bytes('pk', pk, SIGN_PK)
      bytes('sk', sk, SIGN_SK)
      ok(b.crypto_sign_keypair(pk, sk))
    },
    crypto_sign_seed_keypair(pk, sk, seed) {
      bytes('pk', pk, SIGN_PK)
      bytes('sk', sk, SIGN_SK)
      bytes('seed', seed, SIGN_SEED)
      ok(b.crypto_sign_seed_keypair(pk, sk, seed))
    },
    crypto_sign_ed25519_sk_to_pk(pk, sk) {
      bytes('pk', pk, SIGN_PK)
      bytes('sk', sk, SIGN_SK)
      ok(b.crypto_sign_ed25519_sk_to_pk(pk, sk))
    },
    crypto_sign_detached(sig, m, sk) {
      bytes('sig', sig, SIG)
      view('m', m)
      bytes('sk', sk, SIGN_SK)
      ok(b.crypto_sign_detached(sig, m, sk))
    },
    crypto_sign_verify_detached(sig, m, pk) {
      view('sig', sig)
      view('m', m)
      bytes('pk', pk, SIGN_PK)
      if (sig.byteLength < SIG) throw new RangeError(`sig must be at least ${SIG} bytes`)
      return b.crypto_sign_verify_detached(sig.buffer, sig.byteOffset, sig.byteLength, m.buffer, m.byteOffset, m.byteLength, pk.buffer, pk.byteOffset, pk.byteLength)
    },
    crypto_sign_ed25519_pk_to_curve25519(x, ed) {
      bytes('x25519pk', x, BOX_PK)
      bytes('ed25519pk', ed, SIGN_PK)
      ok(b.crypto_sign_ed25519_pk_to_curve25519(x, ed))
    },
    crypto_sign_ed25519_sk_to_curve25519(x, ed) {
      bytes('x25519sk', x, BOX_SK)
      view('ed25519sk', ed)
      if (ed.byteLength !== SIGN_SK && ed.byteLength !== BOX_SK) throw new RangeError(`ed25519sk must be ${SIGN_SK} or ${BOX_SK} bytes`)
      ok(b.crypto_sign_ed25519_sk_to_curve25519(x, ed))
    },
    crypto_box_keypair(pk, sk) {
      bytes('pk', pk, BOX_PK)
      bytes('sk', sk, BOX_SK)
      ok(b.crypto_box_keypair(pk, sk))
    },
    crypto_scalarmult_base(q, n) {
      bytes('q', q, BOX_PK)
      bytes('n', n, SCALAR)
      ok(b.crypto_scalarmult_base(q, n))
    },
    crypto_scalarmult(q, n, p) {
      bytes('q', q, BOX_PK)
      bytes('n', n, SCALAR)
      bytes('p', p, BOX_PK)
      ok(b.crypto_scalarmult(q, n, p))
    },
    crypto_stream_salsa20(c, n, k) {
      view('c', c)
      bytes('n', n, SALSA_NONCE)
      bytes('k', k, KEY)
      ok(b.crypto_stream_salsa20(c, n, k))
    },
    crypto_secretbox_easy(c, m, n, k) {
      view('c', c)
      view('m', m)
      if (c.byteLength !== m.byteLength + MAC) throw new RangeError(`c must be m.byteLength + ${MAC} bytes`)
      bytes('n', n, NONCE)
      bytes('k', k, KEY)
      ok(b.crypto_secretbox_easy(c, m, n, k))
    },
    crypto_secretbox_open_easy(m, c, n, k) {
      view('m', m)
      view('c', c)
      if (c.byteLength < MAC) throw new RangeError(`c must be at least ${MAC} bytes`)
      if (m.byteLength !== c.byteLength - MAC) throw new RangeError(`m must be c.byteLength - ${MAC} bytes`)
      bytes('n', n, NONCE)
      bytes('k', k, KEY)
      return b.crypto_secretbox_open_easy(m, c, n, k)
    },
    crypto_box_easy(c, m, n, pk, sk) {
      view('c', c)
      view('m', m)
      if (c.byteLength !== m.byteLength + MAC) throw new RangeError(`c must be m.byteLength + ${MAC} bytes`)
      bytes('n', n, NONCE)
      bytes('pk', pk, BOX_PK)
      bytes('sk', sk, BOX_SK)
      ok(b.crypto_box_easy(c, m, n, pk, sk))
    },
    crypto_pwhash_async(...args: Parameters<typeof SodiumNative.crypto_pwhash_async>) {
      return full().crypto_pwhash_async(...args)
    },
    sodium_memcmp(a, c) {
      view('a', a)
      view('b', c)
      if (a.byteLength !== c.byteLength) throw new RangeError('buffers must be of same length')
      return b.sodium_memcmp(a, c)
    },
    sodium_memzero(buf) {
      view('buf', buf)
      b.sodium_memzero(buf)
    }
  } as SodiumApi
}
