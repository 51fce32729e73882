/**
 * Identity: persistence on MemoryStore and LevelStore, key formats (signId, boxId = ed2curve),
 * refusal to replace a corrupt or missing identity, passphrase sealing, and the `identity` option.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { IdentityError, MemoryStore, Platform, StateError, checkNodeInfo, isId } from '../src/index.js'
import {
  PWHASH_MEMLIMIT_INTERACTIVE,
  PWHASH_MEMLIMIT_MODERATE,
  PWHASH_OPSLIMIT_INTERACTIVE,
  PWHASH_OPSLIMIT_MODERATE,
  pwhash,
  randomBytes,
  secretbox,
  signKeyPair,
  signPublicToBoxPublic,
  verify
} from '../src/crypto/sodium.js'
import { memoryIdentity, tempDir, runNode, FIXTURES } from './helpers/index.js'

async function started(options: import("../src/index.js").PlatformOptions): Promise<Platform> {
  const platform = new Platform(options)
  await platform.ready()
  return platform
}

async function startFails(options: import("../src/index.js").PlatformOptions, code: string): Promise<IdentityError> {
  const platform = new Platform(options)
  const errors: unknown[] = []
  platform.on('error', (err) => errors.push(err))
  let caught: unknown
  await assert.rejects(platform.ready(), (err: unknown) => {
    caught = err
    return err instanceof IdentityError && err.code === code
  })
  assert.equal(errors.length, 1, "the failure is also emitted as 'error'")
  assert.equal(platform.isReady(), false)
  await platform.close()
  return caught as IdentityError
}

function checkKeys(signId: string, boxId: string): void {
  assert.ok(isId(signId), 'signId is base64 of 32 bytes')
  assert.ok(isId(boxId), 'boxId is base64 of 32 bytes')
  assert.equal(Buffer.from(signId, 'base64').length, 32)
  const derived = signPublicToBoxPublic(Buffer.from(signId, 'base64'))
  assert.ok(derived)
  assert.equal(derived.toString('base64'), boxId, 'boxId = ed2curve(signId)')
  assert.ok('nodeInfo' in checkNodeInfo({ signId, boxId, connectionInfo: [] }))
}

function checkStoredKey(value: string | undefined, signId: string): void {
  assert.ok(value !== undefined)
  const bytes = Buffer.from(value, 'base64')
  assert.equal(bytes.length, 64, 'the stored identity is base64 of a 64-byte Ed25519 secret key')
  assert.equal(bytes.toString('base64'), value)
  assert.equal(bytes.subarray(32).toString('base64'), signId, 'its public half is the signId')
}

test('MemoryStore: a new identity is made, stored as base64 of 64 bytes, and kept across restarts', async () => {
  const storage = new MemoryStore()
  const first = await started({ storage })
  const signId = first.identity.getSignId()
  const boxId = first.identity.getBoxId()
  checkKeys(signId, boxId)
  checkStoredKey(await storage.get('identity'), signId)
  assert.equal(await storage.get('node.signId'), signId, 'the store records whose it is')
  const sig = first.identity.sign(Buffer.from('hello'))
  assert.ok(verify(sig, Buffer.from('hello'), Buffer.from(signId, 'base64')), 'sign() signs with the signId key')
  await first.close()

  const second = await started({ storage })
  assert.equal(second.identity.getSignId(), signId)
  assert.equal(second.identity.getBoxId(), boxId)
  await second.close()

  const other = await started({ storage: new MemoryStore() })
  assert.notEqual(other.identity.getSignId(), signId, 'a fresh store makes a fresh identity')
  await other.close()
})

test('LevelStore: identity kept across a restart on the same directory, and across processes', async (t) => {
  const dataDir = tempDir(t)
  const first = await started({ dataDir })
  const signId = first.identity.getSignId()
  checkKeys(signId, first.identity.getBoxId())
  checkStoredKey(fs.readFileSync(path.join(dataDir, 'identity'), 'utf8'), signId)
  assert.equal(fs.statSync(path.join(dataDir, 'identity')).mode & 0o777, 0o600, 'the key file is owner-only')
  await first.close()

  const second = new Platform({ dataDir })
  assert.equal(second.identity.getSignId(), signId, 'known synchronously, before ready')
  await second.ready()
  assert.equal(second.identity.getSignId(), signId)
  await second.close()

  // Another process, through the package, on the same directory.
  const r = await runNode(path.join(FIXTURES, 'readme-my-node-info.mjs'), { env: { MM_PLATFORM_DATA: dataDir } })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, new RegExp(`SIGNID ${signId.replace(/[+/]/g, '\\$&')}`))
})

const CORRUPTIONS: Array<[string, () => string]> = [
  ['junk text', () => 'not a key at all'],
  ['base64 of 63 bytes', () => Buffer.alloc(63, 1).toString('base64')],
  ['a key whose public half does not match its seed', () => {
    const a = signKeyPair().secretKey
    const b = signKeyPair().secretKey
    return Buffer.concat([a.subarray(0, 32), b.subarray(32)]).toString('base64')
  }],
  ['a JSON record of an unknown kind', () => JSON.stringify({ v: 9, kdf: 'rot13' })],
  ['broken JSON', () => '{"v":1,']
]

for (const [what, make] of CORRUPTIONS) {
  test(`a corrupt stored identity (${what}) fails start with ERR_IDENTITY_CORRUPT and is left unchanged`, async () => {
    const storage = new MemoryStore()
    const first = await started({ storage })
    await first.close()
    const bad = make()
    await storage.put('identity', bad)
    const err = await startFails({ storage }, 'ERR_IDENTITY_CORRUPT')
    assert.equal(err.name, 'IdentityError')
    assert.equal(await storage.get('identity'), bad, 'never replaced by a new identity')
  })
}

test('LevelStore: a corrupt identity file fails start with ERR_IDENTITY_CORRUPT and is left unchanged', async (t) => {
  const dataDir = tempDir(t)
  const first = await started({ dataDir })
  await first.close()
  const file = path.join(dataDir, 'identity')
  fs.writeFileSync(file, 'garbage')
  await startFails({ dataDir }, 'ERR_IDENTITY_CORRUPT')
  assert.equal(fs.readFileSync(file, 'utf8'), 'garbage')
})

test('a stored identity that is not the one the store belongs to fails with ERR_IDENTITY_CORRUPT', async () => {
  const storage = new MemoryStore()
  const first = await started({ storage })
  await first.close()
  const foreign = signKeyPair().secretKey.toString('base64')
  await storage.put('identity', foreign)
  await startFails({ storage }, 'ERR_IDENTITY_CORRUPT')
  assert.equal(await storage.get('identity'), foreign)
})

test('identity deleted while node.signId remains: ERR_IDENTITY_MISSING, no new identity written', async (t) => {
  const dataDir = tempDir(t)
  const first = await started({ dataDir })
  const signId = first.identity.getSignId()
  await first.close()
  fs.rmSync(path.join(dataDir, 'identity'))
  const err = await startFails({ dataDir }, 'ERR_IDENTITY_MISSING')
  assert.ok(err.message.includes(signId), 'the message names the node the store belongs to')
  assert.equal(fs.existsSync(path.join(dataDir, 'identity')), false)

  const storage = new MemoryStore()
  const mem = await started({ storage })
  await mem.close()
  await storage.del('identity')
  await startFails({ storage }, 'ERR_IDENTITY_MISSING')
  await assert.rejects(storage.get('identity'), { code: 'ERR_STORAGE_NOT_FOUND' })
})

test('passphrase: sealed record, same identity with the same passphrase, wrong or missing passphrase refused', async () => {
  const storage = new MemoryStore()
  const first = new Platform({ storage, passphrase: 'correct horse' })
  assert.throws(() => first.identity.getSignId(), (err: unknown) => err instanceof StateError && err.code === 'ERR_NOT_READY')
  await first.ready()
  const signId = first.identity.getSignId()
  checkKeys(signId, first.identity.getBoxId())
  await first.close()

  const sealed = await storage.get('identity')
  const record = JSON.parse(sealed) as Record<string, unknown>
  assert.equal(record.kdf, 'argon2id13')
  assert.equal(record.v, 1)
  assert.equal(record.opslimit, PWHASH_OPSLIMIT_MODERATE, 'Argon2id MODERATE by default')
  assert.equal(record.memlimit, PWHASH_MEMLIMIT_MODERATE, 'Argon2id MODERATE by default')
  assert.equal(typeof record.box, 'string')
  assert.ok(!sealed.includes(signId), 'the record does not carry the plain key')
  assert.equal(Buffer.from(record.box as string, 'base64').length, 64 + 16, 'secretbox of the 64-byte key')

  const again = await started({ storage, passphrase: 'correct horse' })
  assert.equal(again.identity.getSignId(), signId)
  await again.close()

  await startFails({ storage, passphrase: 'wrong horse' }, 'ERR_BAD_PASSPHRASE')
  await startFails({ storage }, 'ERR_PASSPHRASE_REQUIRED')
  assert.equal(await storage.get('identity'), sealed, 'failed starts never rewrite the record')
})

/** A sealed identity record as an earlier version (or a tamperer) wrote it. */
async function sealedRecord(secretKey: Buffer, passphrase: string, opslimit: number, memlimit: number, keyLimits = { opslimit, memlimit }): Promise<string> {
  const salt = randomBytes(16)
  const nonce = randomBytes(24)
  const key = await pwhash(passphrase, salt, keyLimits.opslimit, keyLimits.memlimit)
  return JSON.stringify({ v: 1, kdf: 'argon2id13', opslimit, memlimit, salt: salt.toString('base64'), nonce: nonce.toString('base64'), box: secretbox(secretKey, nonce, key).toString('base64') })
}

test('passphrase: a record sealed at INTERACTIVE limits (earlier versions) still loads', async () => {
  const keys = signKeyPair()
  const storage = new MemoryStore()
  await storage.put('identity', await sealedRecord(keys.secretKey, 'pw', PWHASH_OPSLIMIT_INTERACTIVE, PWHASH_MEMLIMIT_INTERACTIVE))
  const platform = await started({ storage, passphrase: 'pw' })
  assert.equal(platform.identity.getSignId(), keys.publicKey.toString('base64'))
  await platform.close()
})

test('passphrase: absurd Argon2id limits in a stored record are refused at once, not run', { timeout: 30_000 }, async () => {
  const keys = signKeyPair()
  // Sealed under small limits but claiming huge ones: without the bound, start-up would grind
  // for minutes (opslimit) or try to allocate terabytes (memlimit).
  const small = { opslimit: PWHASH_OPSLIMIT_INTERACTIVE, memlimit: PWHASH_MEMLIMIT_INTERACTIVE }
  for (const [opslimit, memlimit] of [
    [100_000, PWHASH_MEMLIMIT_INTERACTIVE],
    [PWHASH_OPSLIMIT_INTERACTIVE, 2 ** 42],
    [0, PWHASH_MEMLIMIT_INTERACTIVE],
    [PWHASH_OPSLIMIT_INTERACTIVE, 1024]
  ] as const) {
    const storage = new MemoryStore()
    await storage.put('identity', await sealedRecord(keys.secretKey, 'pw', opslimit, memlimit, small))
    const t0 = performance.now()
    const err = await startFails({ storage, passphrase: 'pw' }, 'ERR_IDENTITY_CORRUPT')
    assert.match(err.message, /limits out of bounds/, `opslimit ${opslimit}, memlimit ${memlimit}`)
    assert.ok(performance.now() - t0 < 5_000, 'refused before any key derivation')
  }
})

test('passphrase: a plain stored key given a passphrase is sealed on load, same identity', async () => {
  const storage = new MemoryStore()
  const plain = await started({ storage })
  const signId = plain.identity.getSignId()
  await plain.close()
  const sealing = await started({ storage, passphrase: 'pw' })
  assert.equal(sealing.identity.getSignId(), signId)
  await sealing.close()
  const stored = await storage.get('identity')
  assert.ok(stored.trimStart().startsWith('{'), 'now a sealed record')
  assert.equal((JSON.parse(stored) as { kdf: string }).kdf, 'argon2id13')
  await startFails({ storage }, 'ERR_PASSPHRASE_REQUIRED')
})

test('the identity option replaces the stored identity', async () => {
  const identity = memoryIdentity()
  const storage = new MemoryStore()
  const platform = new Platform({ storage, identity })
  assert.equal(platform.identity, identity)
  assert.equal(platform.directory.identity, identity)
  await platform.ready()
  assert.equal(identity.loads, 1, 'its load() is awaited before ready')
  assert.equal(platform.identity.getSignId(), identity.getSignId())
  assert.equal(platform.isLocal(identity.getSignId()), true, 'its signId is ours')
  await assert.rejects(storage.get('identity'), { code: 'ERR_STORAGE_NOT_FOUND' }, 'nothing stored for it')
  await platform.close()
})

test('an identity option whose load() fails makes start fail with that error', async () => {
  const identity = memoryIdentity()
  identity.load = async () => {
    throw new IdentityError('ERR_IDENTITY_MISSING', 'hardware key unplugged')
  }
  await startFails({ storage: new MemoryStore(), identity }, 'ERR_IDENTITY_MISSING')
})
