/**
 * libsodium over sodium-native's binding (src/crypto/sodium-binding.ts): a fresh process that
 * imports the package and uses its crypto does not load sodium-native's index.js (nor
 * node:assert), and the wrappers keep sodium-native's input checks: a buffer of the wrong length
 * throws before libsodium reads or writes past it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ROOT, runNode, tempDir } from './helpers/index.js'
import { box, boxBeforeNm, boxKeyPair, equalBytes, randomBytes, secretbox, secretboxInto, secretboxOpen, secretboxOpenInto, sign, signKeyPair, verify, wipe } from '../src/crypto/sodium.js'

test('the built package uses libsodium without loading sodium-native’s index.js or node:assert', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'use.mjs')
  fs.writeFileSync(
    file,
    `import { createRequire } from 'node:module'
const { Platform, MemoryStore } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'bundle', 'index.js'))})
const p = new Platform({ storage: new MemoryStore(), tcp: false, udp: false })
await p.ready()
const signed = p.identity.sign(Buffer.from('x')).length
await p.close()
const files = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('sodium-native')).map((f) => f.slice(f.lastIndexOf('sodium-native')))
console.log(JSON.stringify({ signed, indexJs: files.includes('sodium-native/index.js'), binding: files.includes('sodium-native/binding.js'), assert: process.moduleLoadList.includes('NativeModule assert') }))
`
  )
  const r = await runNode(file, { cwd: dir, timeoutMs: 30_000 })
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { signed: 64, indexJs: false, binding: true, assert: false })
})

test('the wrappers refuse buffers of the wrong length before the native call, and compute what libsodium does', () => {
  const key = randomBytes(32)
  const nonce = randomBytes(24)
  const message = Buffer.from('hello, binding')
  // Too short for MAC || ciphertext: libsodium would write past its end.
  assert.throws(() => secretboxInto(Buffer.alloc(message.length), message, nonce, key), RangeError)
  assert.throws(() => secretboxInto(Buffer.alloc(message.length + 16), message, nonce.subarray(0, 23), key), RangeError)
  assert.throws(() => secretboxInto(Buffer.alloc(message.length + 16), message, nonce, key.subarray(0, 31)), RangeError)
  assert.throws(() => wipe('not bytes' as unknown as Uint8Array), TypeError)
  // Round trips and cross-checks against libsodium's own crypto_box.
  const sealed = secretbox(message, nonce, key)
  assert.deepEqual(secretboxOpen(sealed, nonce, key), message)
  const inPlace = Buffer.from(sealed)
  assert.equal(secretboxOpenInto(inPlace.subarray(16), inPlace, nonce, key), true)
  assert.deepEqual(inPlace.subarray(16), message)
  sealed[20]! ^= 1
  assert.equal(secretboxOpen(sealed, nonce, key), null)
  const a = boxKeyPair()
  const b = boxKeyPair()
  const shared = boxBeforeNm(b.publicKey, a.secretKey)
  assert.ok(shared)
  assert.ok(equalBytes(secretbox(message, nonce, shared), box(message, nonce, b.publicKey, a.secretKey)))
  assert.equal(boxBeforeNm(Buffer.alloc(32), a.secretKey), null, 'a low-order key is refused')
  const id = signKeyPair()
  const signature = sign(message, id.secretKey)
  assert.equal(verify(signature, message, id.publicKey), true)
  assert.equal(verify(signature, Buffer.from('other'), id.publicKey), false)
  assert.equal(verify(signature.subarray(0, 63), message, id.publicKey), false)
})
