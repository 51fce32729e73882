/**
 * Crypto known answers (NaCl's own box test vector) and cross-checks of the beforenm built from
 * X25519 + HSalsa20 against libsodium's crypto_box.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import fc from './helpers/fast-check.js'
import {
  box,
  boxBeforeNm,
  boxKeyPair,
  boxPublicFromSecret,
  randomBytes,
  secretbox,
  secretboxOpen,
  signKeyPair,
  signPublicToBoxPublic,
  signSecretToBoxSecret,
  NONCE_BYTES
} from '../src/crypto/sodium.js'
import { ROOT } from './helpers/index.js'

interface BoxVector {
  alicesk: string
  bobpk: string
  nonce: string
  plaintext: string
  ciphertext: string
  beforenm: string
}

const vectorFile = path.join(ROOT, 'test', 'vectors', 'nacl-box.json')
const hex = (s: string): Buffer => Buffer.from(s, 'hex')

function loadVector(): BoxVector {
  const v = JSON.parse(fs.readFileSync(vectorFile, 'utf8')) as Partial<BoxVector>
  for (const k of ['alicesk', 'bobpk', 'nonce', 'plaintext', 'ciphertext', 'beforenm'] as const) {
    assert.equal(typeof v[k], 'string', `vector field ${k}`)
  }
  return v as BoxVector
}

test('the NaCl box vector file exists and has the expected shapes', () => {
  assert.ok(fs.existsSync(vectorFile))
  const v = loadVector()
  assert.equal(hex(v.alicesk).length, 32)
  assert.equal(hex(v.bobpk).length, 32)
  assert.equal(hex(v.nonce).length, 24)
  assert.equal(hex(v.beforenm).length, 32)
  assert.equal(hex(v.ciphertext).length, hex(v.plaintext).length + 16)
})

test('boxBeforeNm(bobpk, alicesk) is the vector beforenm; secretbox with it is the vector ciphertext', () => {
  const v = loadVector()
  const k = boxBeforeNm(hex(v.bobpk), hex(v.alicesk))
  assert.ok(k)
  assert.equal(k.toString('hex'), v.beforenm)
  const c = secretbox(hex(v.plaintext), hex(v.nonce), k)
  assert.equal(c.toString('hex'), v.ciphertext)
  const opened = secretboxOpen(c, hex(v.nonce), k)
  assert.equal(opened?.toString('hex'), v.plaintext)
})

test("box() (libsodium's crypto_box_easy) gives the vector ciphertext", () => {
  const v = loadVector()
  assert.equal(box(hex(v.plaintext), hex(v.nonce), hex(v.bobpk), hex(v.alicesk)).toString('hex'), v.ciphertext)
})

test('boxBeforeNm agrees with crypto_box for random key pairs and messages, both directions', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 2048 }), (message) => {
      const alice = boxKeyPair()
      const bob = boxKeyPair()
      const nonce = randomBytes(NONCE_BYTES)
      const k = boxBeforeNm(bob.publicKey, alice.secretKey)
      assert.ok(k)
      assert.deepEqual(boxBeforeNm(alice.publicKey, bob.secretKey), k, 'both sides derive the same key')
      const expected = box(message, nonce, bob.publicKey, alice.secretKey)
      assert.deepEqual(secretbox(message, nonce, k), expected)
      assert.deepEqual(secretboxOpen(expected, nonce, k), Buffer.from(message))
    }),
    { numRuns: 200 }
  )
})

test('the boxId key pair derived from a signing key works with crypto_box', () => {
  const { publicKey, secretKey } = signKeyPair()
  const boxSecret = signSecretToBoxSecret(secretKey)
  const boxPublic = signPublicToBoxPublic(publicKey)
  assert.ok(boxPublic)
  assert.deepEqual(boxPublicFromSecret(boxSecret), boxPublic, 'ed2curve of the public key = public key of ed2curve of the secret')
  const peer = boxKeyPair()
  const nonce = randomBytes(NONCE_BYTES)
  const k = boxBeforeNm(peer.publicKey, boxSecret)
  assert.ok(k)
  assert.deepEqual(secretbox(Buffer.from('hi'), nonce, k), box(Buffer.from('hi'), nonce, peer.publicKey, boxSecret))
})

test('a low-order public key gives null', () => {
  const { secretKey } = boxKeyPair()
  assert.equal(boxBeforeNm(Buffer.alloc(32), secretKey), null, 'all zero bytes')
  const one = Buffer.alloc(32)
  one[0] = 1
  assert.equal(boxBeforeNm(one, secretKey), null, 'the point u = 1')
  assert.throws(() => boxBeforeNm(Buffer.alloc(31), secretKey), { code: 'ERR_INVALID_ARGUMENT' })
})

test('secretboxOpen refuses tampered boxes and bad lengths without throwing', () => {
  const key = randomBytes(32)
  const nonce = randomBytes(NONCE_BYTES)
  const c = secretbox(Buffer.from('message'), nonce, key)
  const tampered = Buffer.from(c)
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1
  assert.equal(secretboxOpen(tampered, nonce, key), null)
  assert.equal(secretboxOpen(c.subarray(0, 15), nonce, key), null)
  assert.equal(secretboxOpen(c, nonce.subarray(1), key), null)
})

test("libsodium's prebuilt binary loads without sodium-native's addon resolver (require-addon), and works", async () => {
  // A fresh process: what src/crypto/sodium.ts loads on import, and that the binding it put in
  // place is the one sodium-native's functions use.
  const script = `
import { createRequire } from 'node:module'
const { boxBeforeNm, boxKeyPair, box, secretbox, randomBytes } = await import('./src/crypto/sodium.ts')
const cache = Object.keys(createRequire(import.meta.url).cache)
const a = boxKeyPair(), b = boxKeyPair(), n = randomBytes(24), m = Buffer.from('hello')
console.log(JSON.stringify({
  resolver: cache.filter((f) => /node_modules[\\\\/](require-addon|bare-addon-resolve|bare-module-resolve|bare-semver)[\\\\/]/.test(f)),
  binary: cache.filter((f) => f.endsWith('.node')).map((f) => path(f)),
  works: secretbox(m, n, boxBeforeNm(b.publicKey, a.secretKey)).equals(box(m, n, b.publicKey, a.secretKey))
}))
function path(f) { return f.split(/[\\\\/]/).slice(-3).join('/') }
`
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env, encoding: 'utf8' })
  const out = JSON.parse(stdout) as { resolver: string[]; binary: string[]; works: boolean }
  assert.deepEqual(out.resolver, [], 'no addon resolver module loaded')
  assert.equal(out.binary.length, 1)
  assert.match(out.binary[0]!, new RegExp(`^prebuilds/${process.platform}-${process.arch}/sodium-native(@[0-9.]+)?\\.node$`))
  assert.equal(out.works, true)
})
