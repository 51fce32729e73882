/**
 * The behaviours a Node.js user expects to be the same everywhere (issue 9, "Inconsistent
 * behaviour"): one set of argument checks for local and remote sends, made before anything is
 * delivered; one payload form for raw `message` events; DeliveryError for every delivery
 * failure; no identity shown before it is loaded; a failed platform refuses to send; and a start
 * error that the caller awaited is not also a process warning.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {
  DeliveryError,
  InvalidArgumentError,
  MMError,
  MemoryStore,
  Platform,
  StateError,
  type Message,
  type PlatformOptions,
  type SendOptions
} from '../src/index.js'
import { randomSignId, tempDir } from './helpers/index.js'

/**
 * Process warnings of our own errors, caught instead of printed (some tests below provoke one on
 * purpose); other warnings go through.
 */
const warnings: MMError[] = []
const realEmitWarning = process.emitWarning
process.emitWarning = function (warning: string | Error, ...rest: unknown[]): void {
  if (warning instanceof MMError) warnings.push(warning)
  else (realEmitWarning as (...args: unknown[]) => void).call(process, warning, ...rest)
} as typeof process.emitWarning

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

function node(t: import('node:test').TestContext, extra: PlatformOptions = {}): Platform {
  const p = new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 2_000, ...extra })
  t.after(() => p.close())
  return p
}

/** Checks `f` throws an InvalidArgumentError. */
function refused(f: () => unknown, what: string): void {
  assert.throws(f, InvalidArgumentError, what)
}

test('a local send with bad options throws before delivering: a retry cannot duplicate it', async (t) => {
  const p = node(t, { tcp: false })
  await p.ready()
  const got: unknown[] = []
  const raw: Message[] = []
  p.messaging.on('self.once', (_t, _s, payload) => got.push(payload))
  const bad: SendOptions[] = [
    { callback: 'no' as unknown as () => void },
    { expireAfter: 'soon' as unknown as number },
    { expireAfter: -1 },
    { realtime: 'yes' as unknown as boolean },
    null as unknown as SendOptions
  ]
  for (const [i, options] of bad.entries()) refused(() => p.messaging.send('once', 'local', { n: 1 }, options), `api, case ${i}`)
  assert.deepEqual(got, [], 'nothing delivered by the API fast path')
  // With a raw listener the platform builds message objects: the same, checked first.
  p.on('message', (m: Message) => raw.push(m))
  for (const [i, options] of bad.entries()) refused(() => p.messaging.send('once', 'local', { n: 1 }, options), `api + raw listener, case ${i}`)
  for (const [i, options] of bad.entries()) {
    refused(() => p.send({ destination: 'local', topic: 'once', protocol: 'ms', payload: '1' }, options), `platform.send, case ${i}`)
  }
  assert.deepEqual(got, [])
  assert.deepEqual(raw, [])
  // The corrected retry is delivered once.
  p.messaging.send('once', 'local', { n: 1 }, { expireAfter: 1000 })
  assert.deepEqual(got, [{ n: 1 }])
})

test('local and remote sends refuse the same things', async (t) => {
  const p = node(t, { tcp: false })
  await p.ready()
  const remote = randomSignId()
  for (const destination of ['local', remote]) {
    refused(() => p.messaging.send('t', destination, 1, { expireAfter: 'soon' as unknown as number }), `expireAfter 'soon' to ${destination}`)
    refused(() => p.messaging.send('t', destination, 1, { expireAfter: Infinity }), `expireAfter Infinity to ${destination}`)
    refused(() => p.torrenting.send('t', destination, { not: 'bytes' }), `an object on torrenting to ${destination}`)
    refused(() => p.torrenting.send('t', destination, 42), `a number on torrenting to ${destination}`)
    refused(() => p.messaging.send('t', destination, undefined), `undefined on messaging to ${destination}`)
    refused(() => p.messaging.send('t', destination, () => 1), `a function on messaging to ${destination}`)
    refused(() => p.send({ destination, topic: 't', protocol: 'ms', payload: { an: 'object' } }), `an object to platform.send for ${destination}`)
  }
  let bytes: unknown
  p.torrenting.on('self.t', (_t, _s, payload) => (bytes = payload))
  p.torrenting.send('t', 'local', Buffer.from([1, 2]))
  assert.deepEqual(bytes, Buffer.from([1, 2]), 'what is allowed still goes')
})

test('the raw message event has the wire form for local and remote messages alike', async (t) => {
  const a = node(t)
  const b = node(t)
  await Promise.all([a.ready(), b.ready()])
  const { timestamp: _ts, signature: _sig, ...info } = b.directory.getMyNodeInfo()
  a.messaging.send('transports.nodeInfo', 'local', info)
  const raw: Message[] = []
  b.on('message', (m: Message) => {
    if (m.topic === 'form') raw.push(m)
  })
  const handled: unknown[] = []
  b.messaging.on('*.form', (_t, _s, payload) => handled.push(payload))
  await new Promise<void>((resolve, reject) =>
    a.messaging.send('form', b.identity.getSignId(), { x: 1 }, { callback: (err) => (err ? reject(err) : resolve()) })
  )
  b.messaging.send('form', 'local', { x: 1 })
  assert.deepEqual(
    raw.map((m) => [m.scope, m.payload]),
    [
      ['public', '{"x":1}'],
      ['self', '{"x":1}']
    ]
  )
  assert.deepEqual(handled, [{ x: 1 }, { x: 1 }], 'API handlers get the value in both cases')
  // Binary: bytes on both sides.
  const rawBt: unknown[] = []
  b.on('message', (m: Message) => m.protocol === 'bt' && rawBt.push(m.payload))
  b.torrenting.send('bin', 'local', 'text')
  assert.ok(rawBt[0] instanceof Uint8Array)
})

test('messages still queued when the platform closes fail with a DeliveryError ERR_CLOSED', async (t) => {
  const p = node(t, { lookupTimeoutMs: 60_000 })
  await p.ready()
  // Nobody answers the lookup: the message waits in the queue.
  const failed = new Promise<Error | null>((resolve) => p.messaging.send('t', randomSignId(), 'x', { callback: resolve }))
  await turn()
  await p.close()
  const err = await failed
  assert.ok(err instanceof DeliveryError, `a DeliveryError, not ${err?.constructor.name}`)
  assert.equal(err.code, 'ERR_CLOSED')
})

test('no identity is visible before it is loaded: a locked directory, an identity file gone', async (t) => {
  const dataDir = tempDir(t)
  const first = new Platform({ dataDir, tcp: false, udp: false })
  await first.ready()
  const signId = first.identity.getSignId()
  // A second platform on the same directory while the first runs: it may read the stored key
  // (that is the real identity) but must never show a made-up one.
  const second = new Platform({ dataDir, tcp: false, udp: false })
  await assert.rejects(second.ready(), { code: 'ERR_STORAGE_LOCKED' })
  assert.equal(second.identity.getSignId(), signId, 'the stored identity, never a random one')
  await second.close()
  await first.close()
  // The identity file removed: the store belongs to a node whose key is gone.
  fs.rmSync(path.join(dataDir, 'identity'))
  const third = new Platform({ dataDir, tcp: false, udp: false })
  assert.throws(() => third.identity.getSignId(), (err: unknown) => err instanceof StateError && err.code === 'ERR_NOT_READY')
  await assert.rejects(third.ready(), { code: 'ERR_IDENTITY_MISSING' })
  assert.throws(() => third.identity.getSignId(), StateError, 'still none after the failed start')
  await third.close()
  // Locked, and no identity file: nothing to show either.
  const fourth = new Platform({ dataDir: path.join(dataDir, 'fresh'), tcp: false, udp: false })
  await fourth.ready()
  fs.rmSync(path.join(dataDir, 'fresh', 'identity'))
  const fifth = new Platform({ dataDir: path.join(dataDir, 'fresh'), tcp: false, udp: false })
  assert.throws(() => fifth.identity.getSignId(), (err: unknown) => err instanceof StateError && err.code === 'ERR_NOT_READY')
  await assert.rejects(fifth.ready(), { code: 'ERR_STORAGE_LOCKED' })
  await fifth.close()
  await fourth.close()
})

test('a platform whose start failed refuses to send, locally too, with the start error as cause', async (t) => {
  const dataDir = tempDir(t)
  const holder = new Platform({ dataDir, tcp: false, udp: false })
  t.after(() => holder.close())
  await holder.ready()
  const failed = new Platform({ dataDir, tcp: false, udp: false })
  t.after(() => failed.close())
  const startError = await failed.ready().then(
    () => assert.fail('start should fail'),
    (err: unknown) => err
  )
  let got = 0
  failed.messaging.on('self.t', () => got++)
  const notReady = (err: unknown): boolean => err instanceof StateError && err.code === 'ERR_NOT_READY' && err.cause === startError
  assert.throws(() => failed.messaging.send('t', 'local', 1), notReady)
  assert.throws(() => failed.torrenting.send('t', 'local', 'x'), notReady)
  assert.throws(() => failed.send({ destination: 'local', topic: 't', protocol: 'ms', payload: '1' }), notReady)
  assert.throws(() => failed.messaging.send('t', randomSignId(), 1), notReady)
  assert.equal(got, 0)
})

test('a start error is a process warning only when nobody awaits ready() or listens for error', async (t) => {
  const dataDir = tempDir(t)
  const holder = new Platform({ dataDir, tcp: false, udp: false })
  t.after(() => holder.close())
  await holder.ready()
  const before = warnings.length
  const awaited = new Platform({ dataDir, tcp: false, udp: false })
  await assert.rejects(awaited.ready(), { code: 'ERR_STORAGE_LOCKED' })
  await turn()
  await turn()
  assert.equal(warnings.length, before, 'a caught ready() rejection is not also a warning')
  await awaited.close()
  // Nobody told: the warning is the only report, so it stays.
  const unheard = new Platform({ dataDir, tcp: false, udp: false })
  while (warnings.length === before) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(warnings.at(-1)?.code, 'ERR_STORAGE_LOCKED')
  await unheard.close()
})
