/**
 * The one module over libsodium (sodium-native). Nothing else imports the binding, so the
 * primitive set, the byte lengths and the input checks live here.
 *
 * sodium-native 5.1 has no `crypto_box_beforenm`; {@link boxBeforeNm} builds it the way NaCl
 * defines it: HSalsa20(key = X25519(sk, pk), nonce = 0), which yields the same bytes.
 */
import fs from 'node:fs'
import Module, { createRequire } from 'node:module'
import path from 'node:path'
import type * as SodiumNative from 'sodium-native'
import { InvalidArgumentError } from '../errors.js'
import { sodiumOverBinding, type SodiumApi } from './sodium-binding.js'

// Loaded with require(), not `import`: an ESM import of this 108 KB CommonJS file runs Node's
// export scanner over it first (~7-14 ms of a cold start here). The CommonJS build defines
// import.meta.url as __filename (scripts/build.mjs); createRequire takes either.
const requireHere = createRequire(import.meta.url)
const sodium = loadSodium()

/**
 * sodium-native finds its prebuilt binary with require-addon and bare-addon-resolve (five small
 * packages: about 8 ms of a cold start here). Their first two candidates are
 * prebuilds/<host>/sodium-native@<version>.node, then prebuilds/<host>/sodium-native.node; the
 * first of them that exists is loaded here and put in the require cache as sodium-native's
 * binding.js, from where its index.js takes it if it is loaded after all. The functions used
 * here are called over that binding (sodium-binding.ts: sodium-native's own checks, without
 * loading its index.js, another ~5 ms). Anything else (no such prebuild for this host, a package
 * laid out otherwise, a binding without those functions) goes sodium-native's own way.
 */
function loadSodium(): SodiumApi {
  const full = (): typeof SodiumNative => requireHere('sodium-native') as typeof SodiumNative
  try {
    const pkgFile = requireHere.resolve('sodium-native/package.json')
    const dir = path.dirname(pkgFile)
    const bindingFile = path.join(dir, 'binding.js')
    const cache = requireHere.cache
    if (!cache[bindingFile] && fs.existsSync(bindingFile)) {
      // The host as require-addon names it (musl on Alpine, which it detects the same way).
      const musl = process.platform === 'linux' && fs.existsSync('/etc/alpine-release')
      const host = `${process.platform}-${process.arch}${musl ? '-musl' : ''}`
      const { version } = requireHere(pkgFile) as { version: string }
      const addon = [`sodium-native@${version}.node`, 'sodium-native.node'].map((name) => path.join(dir, 'prebuilds', host, name)).find((file) => fs.existsSync(file))
      if (addon) {
        const binding = new Module(bindingFile)
        binding.filename = bindingFile
        binding.exports = requireHere(addon) as unknown
        binding.loaded = true
        cache[bindingFile] = binding
      }
    }
    const binding = cache[bindingFile]?.exports as Parameters<typeof sodiumOverBinding>[0] | undefined
    const api = binding ? sodiumOverBinding(binding, full) : null
    if (api) return api
  } catch {
    // sodium-native's own way below
  }
  return full()
}

export const SIGN_PUBLIC_BYTES = 32
export const SIGN_SECRET_BYTES = 64
export const SIGN_SEED_BYTES = 32
export const SIGNATURE_BYTES = 64
export const BOX_PUBLIC_BYTES = 32
export const BOX_SECRET_BYTES = 32
/** Precomputed crypto_box key (crypto_box_beforenm output). */
export const BOX_SHARED_BYTES = 32
export const NONCE_BYTES = 24
export const MAC_BYTES = 16
export const SECRETBOX_KEY_BYTES = 32
export const PWHASH_SALT_BYTES = sodium.crypto_pwhash_SALTBYTES
export const PWHASH_OPSLIMIT_INTERACTIVE = sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE
export const PWHASH_MEMLIMIT_INTERACTIVE = sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE
/** Argon2id MODERATE: 3 passes over 256 MiB (about a second). */
export const PWHASH_OPSLIMIT_MODERATE = sodium.crypto_pwhash_OPSLIMIT_MODERATE
export const PWHASH_MEMLIMIT_MODERATE = sodium.crypto_pwhash_MEMLIMIT_MODERATE
export const PWHASH_OPSLIMIT_MIN = sodium.crypto_pwhash_OPSLIMIT_MIN
export const PWHASH_MEMLIMIT_MIN = sodium.crypto_pwhash_MEMLIMIT_MIN

export interface KeyPair {
  publicKey: Buffer
  secretKey: Buffer
}

function expectBytes(name: string, value: Uint8Array, length?: number): void {
  if (!(value instanceof Uint8Array)) throw new InvalidArgumentError(`${name} must be a Uint8Array`)
  if (length !== undefined && value.length !== length) {
    throw new InvalidArgumentError(`${name} must be ${length} bytes, got ${value.length}`)
  }
}

/** `n` bytes from libsodium's CSPRNG. */
export function randomBytes(n: number): Buffer {
  const out = Buffer.allocUnsafe(n)
  sodium.randombytes_buf(out)
  return out
}

/** Ed25519 key pair; from a 32-byte seed when given (deterministic, for tests). */
export function signKeyPair(seed?: Uint8Array): KeyPair {
  const publicKey = Buffer.alloc(SIGN_PUBLIC_BYTES)
  const secretKey = Buffer.alloc(SIGN_SECRET_BYTES)
  if (seed) {
    expectBytes('seed', seed, SIGN_SEED_BYTES)
    sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  } else {
    sodium.crypto_sign_keypair(publicKey, secretKey)
  }
  return { publicKey, secretKey }
}

/** The Ed25519 public key held in a 64-byte secret key. */
export function signPublicFromSecret(secretKey: Uint8Array): Buffer {
  expectBytes('secretKey', secretKey, SIGN_SECRET_BYTES)
  const pk = Buffer.alloc(SIGN_PUBLIC_BYTES)
  sodium.crypto_sign_ed25519_sk_to_pk(pk, secretKey)
  return pk
}

/** Detached Ed25519 signature, 64 bytes. */
export function sign(message: Uint8Array, secretKey: Uint8Array): Buffer {
  expectBytes('secretKey', secretKey, SIGN_SECRET_BYTES)
  const sig = Buffer.alloc(SIGNATURE_BYTES)
  sodium.crypto_sign_detached(sig, message, secretKey)
  return sig
}

/** True when `signature` is `publicKey`'s signature of `message`; false for any bad input. */
export function verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== SIGN_PUBLIC_BYTES) return false
  try {
    return sodium.crypto_sign_verify_detached(signature, message, publicKey)
  } catch {
    return false
  }
}

/** Public keys only (ed2curve is a pure function of them): recent conversions, bounded. */
const ed2curveCache = new Map<string, Buffer | null>()
const ED2CURVE_CACHE_SIZE = 4096

/**
 * X25519 public key of an Ed25519 public key (ed2curve); null if it is not a valid point.
 * Cached (it costs ~46 us here and runs on every handshake and dial); returns a fresh copy.
 */
export function signPublicToBoxPublic(signPublic: Uint8Array): Buffer | null {
  if (!(signPublic instanceof Uint8Array) || signPublic.length !== SIGN_PUBLIC_BYTES) return null
  const id = Buffer.from(signPublic.buffer, signPublic.byteOffset, signPublic.byteLength).toString('latin1')
  let out = ed2curveCache.get(id)
  if (out === undefined) {
    out = Buffer.alloc(BOX_PUBLIC_BYTES)
    try {
      sodium.crypto_sign_ed25519_pk_to_curve25519(out, signPublic)
    } catch {
      out = null
    }
    if (ed2curveCache.size >= ED2CURVE_CACHE_SIZE) ed2curveCache.delete(ed2curveCache.keys().next().value as string)
    ed2curveCache.set(id, out)
  }
  return out && Buffer.from(out)
}

/** X25519 secret key of an Ed25519 secret key. */
export function signSecretToBoxSecret(signSecret: Uint8Array): Buffer {
  expectBytes('signSecret', signSecret, SIGN_SECRET_BYTES)
  const out = Buffer.alloc(BOX_SECRET_BYTES)
  sodium.crypto_sign_ed25519_sk_to_curve25519(out, signSecret)
  return out
}

/** X25519 key pair for short-term (per-session) keys. */
export function boxKeyPair(): KeyPair {
  const publicKey = Buffer.alloc(BOX_PUBLIC_BYTES)
  const secretKey = Buffer.alloc(BOX_SECRET_BYTES)
  sodium.crypto_box_keypair(publicKey, secretKey)
  return { publicKey, secretKey }
}

/** X25519 public key of a secret key. */
export function boxPublicFromSecret(secretKey: Uint8Array): Buffer {
  expectBytes('secretKey', secretKey, BOX_SECRET_BYTES)
  const out = Buffer.alloc(BOX_PUBLIC_BYTES)
  sodium.crypto_scalarmult_base(out, secretKey)
  return out
}

const SIGMA = new Uint32Array(new Uint8Array(Buffer.from('expand 32-byte k', 'latin1')).buffer)
const ZERO_NONCE8 = new Uint8Array(8)

/**
 * HSalsa20(key, nonce = 0) from libsodium's Salsa20: block 0 of Salsa20 under a zero nonce has
 * the same input words as HSalsa20 with a zero 16-byte nonce, and its output is those words after
 * the 20 rounds plus the input. HSalsa20's output is the round words 0, 5, 10, 15 (input there:
 * the constants) and 6..9 (input there: zero), so subtracting the constants gives it.
 */
function hsalsaZeroNonce(key: Uint8Array): Buffer {
  const block = new Uint8Array(64)
  sodium.crypto_stream_salsa20(block, ZERO_NONCE8, key)
  const w = new Uint32Array(block.buffer)
  const out = new Uint32Array([w[0]! - SIGMA[0]!, w[5]! - SIGMA[1]!, w[10]! - SIGMA[2]!, w[15]! - SIGMA[3]!, w[6]!, w[7]!, w[8]!, w[9]!])
  sodium.sodium_memzero(block)
  return Buffer.from(out.buffer)
}

/**
 * crypto_box_beforenm: the 32-byte key that crypto_box(m, n, pk, sk) uses for every nonce.
 * Returns null when the shared point is all zero (a low-order public key), as libsodium refuses.
 */
export function boxBeforeNm(publicKey: Uint8Array, secretKey: Uint8Array): Buffer | null {
  expectBytes('publicKey', publicKey, BOX_PUBLIC_BYTES)
  expectBytes('secretKey', secretKey, BOX_SECRET_BYTES)
  const shared = new Uint8Array(32)
  try {
    sodium.crypto_scalarmult(shared, secretKey, publicKey)
  } catch {
    return null // libsodium throws on an all-zero result
  }
  const key = hsalsaZeroNonce(shared)
  sodium.sodium_memzero(shared)
  return key
}

/** crypto_secretbox (also crypto_box_afternm): returns MAC (16) || ciphertext. */
export function secretbox(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer {
  expectBytes('nonce', nonce, NONCE_BYTES)
  expectBytes('key', key, SECRETBOX_KEY_BYTES)
  const out = Buffer.allocUnsafe(message.length + MAC_BYTES)
  sodium.crypto_secretbox_easy(out, message, nonce, key)
  return out
}

/** Writes MAC || ciphertext of `message` into `out` (message.length + 16 bytes), no allocation. */
export function secretboxInto(out: Uint8Array, message: Uint8Array, nonce: Uint8Array, key: Uint8Array): void {
  sodium.crypto_secretbox_easy(out, message, nonce, key)
}

/** Opens MAC || ciphertext; null when it does not authenticate (never throws on bad input). */
export function secretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer | null {
  if (box.length < MAC_BYTES || nonce.length !== NONCE_BYTES || key.length !== SECRETBOX_KEY_BYTES) return null
  const out = Buffer.allocUnsafe(box.length - MAC_BYTES)
  return sodium.crypto_secretbox_open_easy(out, box, nonce, key) ? out : null
}

/**
 * Opens MAC || ciphertext into `out` (box.length - 16 bytes), which may be `box.subarray(16)`:
 * in place, no allocation. False when it does not authenticate (then `out` is left as it was).
 */
export function secretboxOpenInto(out: Uint8Array, box: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean {
  if (box.length < MAC_BYTES || out.length !== box.length - MAC_BYTES || nonce.length !== NONCE_BYTES || key.length !== SECRETBOX_KEY_BYTES) return false
  return sodium.crypto_secretbox_open_easy(out, box, nonce, key)
}

/** crypto_box (NaCl), MAC || ciphertext, computed by libsodium directly; used to check boxBeforeNm. */
export function box(message: Uint8Array, nonce: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(message.length + MAC_BYTES)
  sodium.crypto_box_easy(out, message, nonce, publicKey, secretKey)
  return out
}

/** Argon2id13 key derivation (crypto_pwhash), off the main thread. */
export async function pwhash(
  passphrase: string,
  salt: Uint8Array,
  opslimit: number = PWHASH_OPSLIMIT_INTERACTIVE,
  memlimit: number = PWHASH_MEMLIMIT_INTERACTIVE
): Promise<Buffer> {
  expectBytes('salt', salt, PWHASH_SALT_BYTES)
  const out = Buffer.alloc(SECRETBOX_KEY_BYTES)
  await sodium.crypto_pwhash_async(out, Buffer.from(passphrase, 'utf8'), salt, opslimit, memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13)
  return out
}

/** Constant-time equality of two byte strings of the same length. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.sodium_memcmp(a, b)
}

/** Overwrites a secret with zeros. */
export function wipe(secret: Uint8Array): void {
  sodium.sodium_memzero(secret)
}
