/**
 * The node's persistent identity: one Ed25519 key pair (signId) and the X25519 key derived from
 * it (boxId, by ed2curve), so a peer that knows the signId knows the boxId too.
 *
 * Stored under the key `identity` as base64 of the 64-byte Ed25519 secret key (the original's
 * format), or, with a passphrase, as JSON sealed by secretbox under an Argon2id key (MODERATE limits
 * when we seal; the limits a stored record names are bounded before use, see
 * {@link MAX_STORED_OPSLIMIT}, so a tampered file cannot make start-up hang or exhaust memory;
 * records sealed at INTERACTIVE limits by earlier versions still load). A second key,
 * `node.signId`, records whose store this is: if the identity ever goes missing or changes while
 * that record stays, loading fails instead of silently making a new node.
 */
import {
  PWHASH_MEMLIMIT_MIN,
  PWHASH_MEMLIMIT_MODERATE,
  PWHASH_OPSLIMIT_MIN,
  PWHASH_OPSLIMIT_MODERATE,
  PWHASH_SALT_BYTES,
  NONCE_BYTES,
  SIGN_SECRET_BYTES,
  boxBeforeNm,
  equalBytes,
  pwhash,
  randomBytes,
  secretbox,
  secretboxOpen,
  sign,
  signKeyPair,
  signPublicFromSecret,
  signPublicToBoxPublic,
  signSecretToBoxSecret,
  boxPublicFromSecret,
  wipe
} from '../crypto/sodium.js'
import { IdentityError, StateError } from '../errors.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { formatId } from './ids.js'
import { silentLogger, type Logger } from '../logger.js'

export const IDENTITY_KEY = 'identity'
export const OWNER_KEY = 'node.signId'
/** Argon2id limits used to seal a new record: libsodium's MODERATE (3 passes, 256 MiB). */
export const PASSPHRASE_OPSLIMIT = PWHASH_OPSLIMIT_MODERATE
export const PASSPHRASE_MEMLIMIT = PWHASH_MEMLIMIT_MODERATE
/**
 * Largest Argon2id limits accepted from a stored record: 10 passes and 1 GiB (libsodium's
 * SENSITIVE is 4 passes over 1 GiB). Anything above, or below libsodium's minimum, is refused
 * with IdentityError ERR_IDENTITY_CORRUPT before any work.
 */
export const MAX_STORED_OPSLIMIT = 10
export const MAX_STORED_MEMLIMIT = 1024 * 1024 * 1024
/** Long-term shared keys cached per identity. */
const MAX_CACHED_SHARED_KEYS = 1024

/**
 * What the platform needs of an identity. Pass your own object as the `identity` option (for
 * example one backed by a hardware key); `load()` is awaited before `ready` if present.
 */
export interface IdentityLike {
  /** base64 Ed25519 public key. */
  getSignId(): string
  /** base64 X25519 public key, equal to ed2curve(signId). */
  getBoxId(): string
  /** Detached Ed25519 signature (64 bytes) by the signId key. */
  sign(message: Uint8Array): Buffer
  /** crypto_box_beforenm(theirBoxPublic, our box secret key); null for a low-order key. */
  boxBeforeNm(theirBoxPublic: Uint8Array): Buffer | null
  /** Optional cached form of boxBeforeNm for long-term peer keys; returns a copy. */
  longTermSharedKey?(theirBoxPublic: Uint8Array): Buffer | null
  load?(): Promise<void>
}

interface SealedRecord {
  v: 1
  kdf: 'argon2id13'
  opslimit: number
  memlimit: number
  salt: string
  nonce: string
  box: string
}

export interface IdentityOptions {
  /** Encrypts the stored secret key; required to load one stored encrypted. */
  passphrase?: string
  logger?: Logger
}

export class Identity implements IdentityLike {
  private readonly storage: PlatformStorage
  private readonly passphrase: string | undefined
  private readonly logger: Logger
  private signSecret: Buffer | undefined
  private signPublic: Buffer | undefined
  private boxSecret: Buffer | undefined
  private boxPublic: Buffer | undefined
  /** Keys made synchronously at construction, not yet written. */
  private fresh = false
  /** A problem found by the synchronous read, reported by load(). */
  private syncError: unknown
  private loading: Promise<void> | undefined
  private signIdText: string | undefined
  private boxIdText: string | undefined
  /** beforenm with long-term peers, as WireGuard precomputes its static-static DH. Bounded. */
  private readonly sharedKeys = new Map<string, Buffer>()

  constructor(storage: PlatformStorage, options: IdentityOptions = {}) {
    this.storage = storage
    this.passphrase = options.passphrase
    this.logger = options.logger ?? silentLogger
    if (this.passphrase === undefined) this.tryLoadSync()
  }

  /** True once the keys are known (they may still be unwritten until load() resolves). */
  get known(): boolean {
    return this.signSecret !== undefined
  }

  getSignId(): string {
    return (this.signIdText ??= formatId(this.need().signPublic))
  }

  getBoxId(): string {
    return (this.boxIdText ??= formatId(this.need().boxPublic))
  }

  sign(message: Uint8Array): Buffer {
    return sign(message, this.need().signSecret)
  }

  boxBeforeNm(theirBoxPublic: Uint8Array): Buffer | null {
    return boxBeforeNm(theirBoxPublic, this.need().boxSecret)
  }

  /**
   * Like boxBeforeNm, cached: for peers' long-term keys (the vouch), never for short-term keys.
   * Returns a copy the caller may wipe.
   */
  longTermSharedKey(theirBoxPublic: Uint8Array): Buffer | null {
    const id = Buffer.from(theirBoxPublic.buffer, theirBoxPublic.byteOffset, theirBoxPublic.byteLength).toString('base64')
    let key = this.sharedKeys.get(id)
    if (!key) {
      const k = this.boxBeforeNm(theirBoxPublic)
      if (!k) return null
      if (this.sharedKeys.size >= MAX_CACHED_SHARED_KEYS) {
        const oldest = this.sharedKeys.keys().next().value as string
        wipe(this.sharedKeys.get(oldest) as Buffer)
        this.sharedKeys.delete(oldest)
      }
      this.sharedKeys.set(id, k)
      key = k
    }
    return Buffer.from(key)
  }

  /** Loads the stored identity, or makes and stores one on a fresh store. Idempotent. */
  load(): Promise<void> {
    this.loading ??= this.doLoad()
    return this.loading
  }

  /** Forgets the secret keys (zeroed). */
  wipe(): void {
    for (const k of this.sharedKeys.values()) wipe(k)
    this.sharedKeys.clear()
    this.signIdText = this.boxIdText = undefined
    for (const key of [this.signSecret, this.boxSecret]) if (key) wipe(key)
    this.signSecret = this.signPublic = this.boxSecret = this.boxPublic = undefined
  }

  private need(): { signSecret: Buffer; signPublic: Buffer; boxSecret: Buffer; boxPublic: Buffer } {
    if (!this.signSecret || !this.signPublic || !this.boxSecret || !this.boxPublic) {
      throw new StateError('ERR_NOT_READY', "the identity is not loaded yet: wait for the platform's 'ready' event")
    }
    return { signSecret: this.signSecret, signPublic: this.signPublic, boxSecret: this.boxSecret, boxPublic: this.boxPublic }
  }

  private tryLoadSync(): void {
    let raw: string | null | undefined
    try {
      raw = this.storage.getSync(IDENTITY_KEY)
    } catch (err) {
      this.syncError = err
      return
    }
    if (raw === undefined) return // this store only answers asynchronously
    if (raw === null) {
      // Keys shown before load() must be the ones kept: only a store that holds nothing gets
      // them now. On any other (locked by another process, or with its identity file gone) the
      // identity is known from `ready` on, and load() says what is wrong.
      if (!this.storage.isEmptySync()) return
      this.adopt(signKeyPair().secretKey)
      this.fresh = true
      return
    }
    if (raw.trimStart().startsWith('{')) return // sealed: needs the passphrase, done in load()
    try {
      this.adopt(parsePlain(raw))
    } catch (err) {
      this.syncError = err
    }
  }

  private async doLoad(): Promise<void> {
    if (this.syncError) throw this.syncError
    const owner = await this.storage.get(OWNER_KEY)
    if (this.fresh) {
      // Keys were made at construction; the store was empty of an identity then. Check again.
      const raw = await this.storage.get(IDENTITY_KEY)
      if (raw !== undefined) {
        this.wipe()
        this.fresh = false
        await this.loadStored(raw)
      } else {
        this.refuseIfOwned(owner)
        await this.persist()
        this.fresh = false
      }
    } else if (!this.known) {
      const raw = await this.storage.get(IDENTITY_KEY)
      if (raw === undefined) {
        this.refuseIfOwned(owner)
        this.adopt(signKeyPair().secretKey)
        await this.persist()
      } else {
        await this.loadStored(raw)
      }
    }
    const signId = this.getSignId()
    if (owner === undefined) {
      await this.storage.put(OWNER_KEY, signId)
    } else if (owner !== signId) {
      throw new IdentityError(
        'ERR_IDENTITY_CORRUPT',
        `the stored identity (${signId}) is not the one this store belongs to (${owner}); refusing to start`
      )
    }
  }

  private refuseIfOwned(owner: string | undefined): void {
    if (owner !== undefined) {
      throw new IdentityError(
        'ERR_IDENTITY_MISSING',
        `this store belongs to node ${owner} but its identity key is gone; refusing to make a new identity (restore the key, or start on an empty store)`
      )
    }
  }

  private async loadStored(raw: string): Promise<void> {
    if (raw.trimStart().startsWith('{')) {
      this.adopt(await this.unseal(raw))
      return
    }
    this.adopt(parsePlain(raw))
    if (this.passphrase !== undefined) {
      this.logger.info({ signId: this.getSignId() }, 'encrypting the stored identity with the given passphrase')
      await this.persist()
    }
  }

  private adopt(secretKey: Buffer): void {
    this.signSecret = secretKey
    this.signPublic = signPublicFromSecret(secretKey)
    this.boxSecret = signSecretToBoxSecret(secretKey)
    this.boxPublic = boxPublicFromSecret(this.boxSecret)
    const derived = signPublicToBoxPublic(this.signPublic)
    if (!derived || !equalBytes(derived, this.boxPublic)) {
      throw new IdentityError('ERR_IDENTITY_CORRUPT', 'the stored identity key does not derive a consistent box key')
    }
  }

  private async persist(): Promise<void> {
    const { signSecret } = this.need()
    const value = this.passphrase === undefined ? signSecret.toString('base64') : await seal(signSecret, this.passphrase)
    await this.storage.put(IDENTITY_KEY, value)
  }

  private async unseal(raw: string): Promise<Buffer> {
    let record: SealedRecord
    try {
      record = JSON.parse(raw) as SealedRecord
    } catch (err) {
      throw new IdentityError('ERR_IDENTITY_CORRUPT', 'the stored identity is neither a key nor a sealed key record', { cause: err })
    }
    if (record?.v !== 1 || record.kdf !== 'argon2id13' || typeof record.box !== 'string') {
      throw new IdentityError('ERR_IDENTITY_CORRUPT', 'the sealed identity record is of an unknown kind')
    }
    if (this.passphrase === undefined) {
      throw new IdentityError('ERR_PASSPHRASE_REQUIRED', 'the stored identity is encrypted: give the passphrase option')
    }
    const salt = Buffer.from(record.salt, 'base64')
    const nonce = Buffer.from(record.nonce, 'base64')
    if (salt.length !== PWHASH_SALT_BYTES || nonce.length !== NONCE_BYTES || !Number.isSafeInteger(record.opslimit) || !Number.isSafeInteger(record.memlimit)) {
      throw new IdentityError('ERR_IDENTITY_CORRUPT', 'the sealed identity record has bad parameters')
    }
    if (record.opslimit < PWHASH_OPSLIMIT_MIN || record.opslimit > MAX_STORED_OPSLIMIT || record.memlimit < PWHASH_MEMLIMIT_MIN || record.memlimit > MAX_STORED_MEMLIMIT) {
      throw new IdentityError(
        'ERR_IDENTITY_CORRUPT',
        `the sealed identity record asks for Argon2id limits out of bounds (opslimit ${record.opslimit}, memlimit ${record.memlimit}; ` +
          `accepted: opslimit ${PWHASH_OPSLIMIT_MIN}..${MAX_STORED_OPSLIMIT}, memlimit ${PWHASH_MEMLIMIT_MIN}..${MAX_STORED_MEMLIMIT} bytes)`
      )
    }
    let key: Buffer
    try {
      key = await pwhash(this.passphrase, salt, record.opslimit, record.memlimit)
    } catch (err) {
      throw new IdentityError('ERR_IDENTITY_CORRUPT', 'the sealed identity record has key derivation limits libsodium refuses', { cause: err })
    }
    const secret = secretboxOpen(Buffer.from(record.box, 'base64'), nonce, key)
    wipe(key)
    if (!secret) throw new IdentityError('ERR_BAD_PASSPHRASE', 'wrong passphrase for the stored identity')
    if (secret.length !== SIGN_SECRET_BYTES) throw new IdentityError('ERR_IDENTITY_CORRUPT', 'the sealed identity holds a key of the wrong length')
    return secret
  }
}

function parsePlain(raw: string): Buffer {
  const text = raw.trim()
  const secret = Buffer.from(text, 'base64')
  if (secret.length !== SIGN_SECRET_BYTES || secret.toString('base64') !== text) {
    throw new IdentityError('ERR_IDENTITY_CORRUPT', `the stored identity is not base64 of a ${SIGN_SECRET_BYTES}-byte secret key`)
  }
  // The last 32 bytes are the public key; they must match the seed, else the record is damaged.
  const fromSeed = signKeyPair(secret.subarray(0, 32))
  if (!equalBytes(fromSeed.secretKey, secret)) {
    throw new IdentityError('ERR_IDENTITY_CORRUPT', 'the stored identity key is damaged (its public half does not match its seed)')
  }
  return secret
}

async function seal(secret: Buffer, passphrase: string): Promise<string> {
  const salt = randomBytes(PWHASH_SALT_BYTES)
  const nonce = randomBytes(NONCE_BYTES)
  const key = await pwhash(passphrase, salt, PASSPHRASE_OPSLIMIT, PASSPHRASE_MEMLIMIT)
  const record: SealedRecord = {
    v: 1,
    kdf: 'argon2id13',
    opslimit: PASSPHRASE_OPSLIMIT,
    memlimit: PASSPHRASE_MEMLIMIT,
    salt: salt.toString('base64'),
    nonce: nonce.toString('base64'),
    box: secretbox(secret, nonce, key).toString('base64')
  }
  wipe(key)
  return JSON.stringify(record)
}
