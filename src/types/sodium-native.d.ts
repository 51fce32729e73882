// sodium-native ships no types; only the functions src/crypto uses are declared.
declare module 'sodium-native' {
  export const crypto_sign_PUBLICKEYBYTES: number
  export const crypto_sign_SECRETKEYBYTES: number
  export const crypto_sign_SEEDBYTES: number
  export const crypto_sign_BYTES: number
  export const crypto_box_PUBLICKEYBYTES: number
  export const crypto_box_SECRETKEYBYTES: number
  export const crypto_secretbox_KEYBYTES: number
  export const crypto_secretbox_NONCEBYTES: number
  export const crypto_secretbox_MACBYTES: number
  export const crypto_pwhash_SALTBYTES: number
  export const crypto_pwhash_OPSLIMIT_INTERACTIVE: number
  export const crypto_pwhash_MEMLIMIT_INTERACTIVE: number
  export const crypto_pwhash_OPSLIMIT_MODERATE: number
  export const crypto_pwhash_MEMLIMIT_MODERATE: number
  export const crypto_pwhash_OPSLIMIT_MIN: number
  export const crypto_pwhash_MEMLIMIT_MIN: number
  export const crypto_pwhash_ALG_ARGON2ID13: number
  export function randombytes_buf(buf: Uint8Array): void
  export function crypto_sign_keypair(pk: Uint8Array, sk: Uint8Array): void
  export function crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void
  export function crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void
  export function crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean
  export function crypto_sign_ed25519_sk_to_pk(pk: Uint8Array, sk: Uint8Array): void
  export function crypto_sign_ed25519_pk_to_curve25519(x: Uint8Array, ed: Uint8Array): void
  export function crypto_sign_ed25519_sk_to_curve25519(x: Uint8Array, ed: Uint8Array): void
  export function crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void
  export function crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void
  export function crypto_box_keypair(pk: Uint8Array, sk: Uint8Array): void
  export function crypto_stream_salsa20(c: Uint8Array, n: Uint8Array, k: Uint8Array): void
  export function crypto_box_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, pk: Uint8Array, sk: Uint8Array): void
  export function crypto_box_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean
  export function crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void
  export function crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean
  export function crypto_pwhash(out: Uint8Array, pw: Uint8Array, salt: Uint8Array, ops: number, mem: number, alg: number): void
  export function crypto_pwhash_async(out: Uint8Array, pw: Uint8Array, salt: Uint8Array, ops: number, mem: number, alg: number): Promise<void>
  export function sodium_memzero(buf: Uint8Array): void
  export function sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean
  export function sodium_is_zero(buf: Uint8Array): boolean
}
