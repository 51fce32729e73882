/**
 * The local broker: wildcard rules (checked against an independent reference), once/off,
 * handler isolation and error reporting, API objects, Layers, torrenting, send validation,
 * callbacks, and sends after close.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from './helpers/fast-check.js'
import {
  API,
  DeliveryError,
  HandlerError,
  InvalidArgumentError,
  MMError,
  Layer,
  MemoryStore,
  Platform,
  StateError,
  topicMatches,
  type Logger,
  type Message,
  type OutgoingMessage,
  type SendOptions
} from '../src/index.js'
import { TopicEmitter } from '../src/platform/topic-emitter.js'
import { delay, nextEvent, randomSignId, waitUntil } from './helpers/index.js'

async function platformFor(t: import('node:test').TestContext, options: import("../src/index.js").PlatformOptions = {}): Promise<Platform> {
  // No TCP listener: these tests are about the local broker (dialling out still works).
  const platform = new Platform({ storage: new MemoryStore(), tcp: false, ...options })
  t.after(() => platform.close())
  await platform.ready()
  return platform
}

/**
 * Process warnings of our own errors are caught here instead of printed: the tests below throw in
 * handlers on purpose, and a HandlerError on the console of `npm test` reads like a failure.
 * Other warnings go through as usual.
 */
const caughtWarnings: MMError[] = []
const warningWaiters = new Set<(w: MMError) => void>()
const realEmitWarning = process.emitWarning
process.emitWarning = function (warning: string | Error, ...rest: unknown[]): void {
  if (!(warning instanceof MMError)) return (realEmitWarning as (...args: unknown[]) => void).call(process, warning, ...rest)
  caughtWarnings.push(warning)
  for (const waiter of [...warningWaiters]) waiter(warning)
} as typeof process.emitWarning

function nextHandlerWarning(timeoutMs = 5_000): Promise<HandlerError> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      warningWaiters.delete(onWarning)
      reject(new Error(`no HandlerError warning within ${timeoutMs} ms`))
    }, timeoutMs)
    const onWarning = (w: MMError): void => {
      if (!(w instanceof HandlerError)) return
      clearTimeout(timer)
      warningWaiters.delete(onWarning)
      resolve(w)
    }
    warningWaiters.add(onWarning)
  })
}

/** Independent reference for the wildcard rules: a regular expression built from the pattern. */
function reference(pattern: string, topic: string): boolean {
  const segments = pattern.split('.')
  const parts = segments.map((s, i) => {
    if (s !== '*') return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    return i === segments.length - 1 ? '[^.]+(?:\\.[^.]+)*' : '[^.]+'
  })
  return new RegExp('^' + parts.join('\\.') + '$').test(topic)
}

const segment = fc.constantFrom('a', 'b', 'c')
const patternArb = fc.array(fc.oneof(segment, fc.constant('*')), { minLength: 1, maxLength: 4 }).map((s) => s.join('.'))
const topicArb = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('.'))

test('wildcards: the documented examples', () => {
  const m = (p: string, t: string): boolean => topicMatches(p.split('.'), t.split('.'))
  assert.equal(m('self.*', 'self.a'), true)
  assert.equal(m('self.*', 'self.a.b'), true)
  assert.equal(m('self.*', 'self'), false)
  assert.equal(m('self.*.ping', 'self.x.ping'), true)
  assert.equal(m('self.*.ping', 'self.x.y.ping'), false)
  assert.equal(m('self.*.ping', 'self.ping'), false)
  assert.equal(m('a.b.c', 'a.b.c'), true)
  assert.equal(m('a.b.c', 'a.b'), false)
  assert.equal(m('a.b', 'a.b.c'), false)
  assert.equal(m('*', 'x'), true)
  assert.equal(m('*', 'x.y.z'), true)
  assert.equal(m('*.*', 'x'), false)
  assert.equal(m('*.*', 'x.y.z'), true)
})

test('wildcards: matches() agrees with a regular-expression reference (property)', () => {
  fc.assert(
    fc.property(patternArb, topicArb, (pattern, topic) => {
      assert.equal(topicMatches(pattern.split('.'), topic.split('.')), reference(pattern, topic), `${pattern} vs ${topic}`)
    }),
    { numRuns: 5000 }
  )
})

test('wildcards: the API delivers to exactly the matching subscriptions (property)', async (t) => {
  const platform = await platformFor(t)
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(patternArb, { minLength: 1, maxLength: 6 }), topicArb, async (patterns, topic) => {
      const api = new API({ platform, protocol: 'prop' })
      const hits: string[] = []
      for (const p of patterns) api.on('self.' + p, () => hits.push(p))
      api.send(topic, 'local', null)
      api.detach()
      assert.deepEqual(hits.sort(), patterns.filter((p) => reference(p, topic)).sort())
    }),
    { numRuns: 300 }
  )
})

test('exact topics, once and off', async (t) => {
  const platform = await platformFor(t)
  const got: string[] = []
  const exact = (topic: string): void => void got.push('exact:' + topic)
  const wild = (topic: string): void => void got.push('wild:' + topic)
  const onceExact = (topic: string): void => void got.push('onceExact:' + topic)
  const onceWild = (topic: string): void => void got.push('onceWild:' + topic)
  platform.messaging.on('self.x.y', exact).on('self.x.*', wild).once('self.x.y', onceExact).once('self.*', onceWild)
  platform.messaging.send('x.y', 'local', 1)
  platform.messaging.send('x.y', 'local', 2)
  platform.messaging.send('x.z', 'local', 3)
  assert.deepEqual(got, ['exact:self.x.y', 'onceExact:self.x.y', 'wild:self.x.y', 'onceWild:self.x.y', 'exact:self.x.y', 'wild:self.x.y', 'wild:self.x.z'])
  got.length = 0
  platform.messaging.off('self.x.y', exact)
  platform.messaging.removeListener('self.x.*', wild)
  platform.messaging.off('self.x.*', () => {}) // unknown handler: no effect
  platform.messaging.send('x.y', 'local', 4)
  assert.deepEqual(got, [])
  assert.throws(() => platform.messaging.on('', exact), InvalidArgumentError)
  assert.throws(() => platform.messaging.on('self.a', 'nope' as unknown as () => void), InvalidArgumentError)
})

test('once and on with the same handler on the same pattern: the permanent subscription stays', () => {
  for (const pattern of ['a.b', 'a.*']) {
    const emitter = new TopicEmitter((err) => {
      throw err
    })
    let calls = 0
    const h = (): void => void calls++
    emitter.on(pattern, h)
    emitter.on(pattern, h, true)
    const counts: number[] = []
    for (let i = 0; i < 3; i++) {
      calls = 0
      emitter.emit('a.b', 'local', null)
      counts.push(calls)
    }
    assert.deepEqual(counts, [2, 1, 1], pattern)
    assert.equal(emitter.size, 1)
  }
})

test('a once handler runs once even when an earlier handler re-emits the same topic', () => {
  for (const pattern of ['a.b', 'a.*']) {
    const emitter = new TopicEmitter((err) => {
      throw err
    })
    let depth = 0
    let onceCalls = 0
    emitter.on('a.b', () => {
      if (depth++ === 0) emitter.emit('a.b', 'local', 'nested')
    })
    emitter.on(pattern, () => void onceCalls++, true)
    emitter.emit('a.b', 'local', 'outer')
    assert.equal(onceCalls, 1, pattern)
    assert.equal(emitter.size, 1)
  }
})

test('the same handler on two patterns is called for each; off removes only one', async (t) => {
  const platform = await platformFor(t)
  let calls = 0
  const h = (): void => void calls++
  platform.messaging.on('self.a.b', h).on('self.a.*', h)
  platform.messaging.send('a.b', 'local', null)
  assert.equal(calls, 2)
  platform.messaging.off('self.a.b', h)
  platform.messaging.send('a.b', 'local', null)
  assert.equal(calls, 3)
})

test('a handler may subscribe and unsubscribe during a dispatch without disturbing it', async (t) => {
  const platform = await platformFor(t)
  const calls: string[] = []
  const second = (): void => void calls.push('second')
  const late = (): void => void calls.push('late')
  platform.messaging.on('self.t', () => {
    calls.push('first')
    platform.messaging.off('self.t', second)
    platform.messaging.on('self.t', late)
  })
  platform.messaging.on('self.t', second)
  platform.messaging.send('t', 'local', null)
  assert.deepEqual(calls, ['first', 'second'], 'this dispatch sees the list as it was')
  calls.length = 0
  platform.messaging.send('t', 'local', null)
  assert.deepEqual(calls.filter((c) => c !== 'first'), ['late'])
})

test('the subscription limit is a typed error', () => {
  const emitter = new TopicEmitter(() => {}, 3)
  for (let i = 0; i < 3; i++) emitter.on('a.' + i, () => {})
  assert.throws(() => emitter.on('a.x', () => {}), { code: 'ERR_LIMIT_REACHED' })
  emitter.off('a.0', () => {}) // not subscribed with this handler: still full
  assert.throws(() => emitter.on('a.x', () => {}), { code: 'ERR_LIMIT_REACHED' })
})

test('a throwing API handler does not stop the others; reported as HandlerError with topic and cause', async (t) => {
  const platform = await platformFor(t)
  const calls: string[] = []
  const boom = new TypeError('boom')
  platform.messaging.on('self.iso.test', () => calls.push('first'))
  platform.messaging.on('self.iso.test', () => {
    calls.push('thrower')
    throw boom
  })
  platform.messaging.on('self.iso.test', () => calls.push('third'))
  platform.messaging.on('self.iso.*', () => {
    calls.push('wild thrower')
    throw new Error('wild boom')
  })
  platform.messaging.on('self.*', () => calls.push('wild last'))
  const reports: HandlerError[] = []
  platform.on('handlerError', (err: HandlerError) => reports.push(err))
  platform.messaging.send('iso.test', 'local', {})
  assert.deepEqual(calls, ['first', 'thrower', 'third', 'wild thrower', 'wild last'])
  assert.equal(reports.length, 2)
  const [first, second] = reports
  assert.ok(first instanceof HandlerError)
  assert.equal(first.code, 'ERR_HANDLER_THREW')
  assert.equal(first.topic, 'self.iso.test')
  assert.equal(first.cause, boom)
  assert.ok(second instanceof HandlerError)
  assert.equal((second.cause as Error).message, 'wild boom')
})

test("a throwing platform.on('message') listener does not stop the others; reported as HandlerError", async (t) => {
  const platform = await platformFor(t)
  const seen: string[] = []
  const thrown = new RangeError('listener failed')
  platform.on('message', (m: Message) => seen.push('a:' + m.topic))
  platform.on('message', () => {
    throw thrown
  })
  platform.on('message', (m: Message) => seen.push('c:' + m.topic))
  let apiGot = false
  platform.messaging.on('self.raw', () => (apiGot = true))
  const reported = nextEvent<[HandlerError]>(platform, 'handlerError')
  platform.send({ destination: 'local', topic: 'raw', protocol: 'ms', payload: '"p"' })
  assert.deepEqual(seen, ['a:raw', 'c:raw'])
  assert.equal(apiGot, true, 'API objects still receive')
  const [err] = await reported
  assert.ok(err instanceof HandlerError)
  assert.equal(err.topic, 'self.raw')
  assert.equal(err.cause, thrown)
})

test('with no handlerError listener a throwing handler becomes a process warning, never fatal', async (t) => {
  const platform = await platformFor(t)
  const warning = nextHandlerWarning()
  let after = false
  platform.messaging.on('self.warn.me', () => {
    throw new Error('unheard')
  })
  platform.messaging.on('self.warn.me', () => (after = true))
  platform.messaging.send('warn.me', 'local', 1)
  assert.equal(after, true)
  const w = await warning
  assert.equal(w.topic, 'self.warn.me')
  assert.equal((w.cause as Error).message, 'unheard')
  // And through the low-level listener path too.
  const warning2 = nextHandlerWarning()
  const listener = (): void => {
    throw new Error('raw unheard')
  }
  platform.on('message', listener)
  platform.send({ destination: 'local', topic: 'x', protocol: 'zz', payload: 'null' })
  platform.off('message', listener)
  const w2 = await warning2
  assert.equal((w2.cause as Error).message, 'raw unheard')
})

test('with a logger and no handlerError listener, the failure goes to logger.error (no warning)', async (t) => {
  const errors: unknown[] = []
  const logger: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error: (obj) => void errors.push(obj) }
  const platform = await platformFor(t, { logger })
  const warningsBefore = caughtWarnings.length
  platform.messaging.on('self.log.me', () => {
    throw new Error('logged')
  })
  platform.messaging.send('log.me', 'local', 1)
  await waitUntil(() => errors.length > 0, 2_000, 'logger.error')
  assert.equal(errors.length, 1)
  assert.equal(((errors[0] as { err: HandlerError }).err.cause as Error).message, 'logged')
  assert.equal(caughtWarnings.length, warningsBefore, 'no process warning')
})

test('a handlerError listener that throws is not fatal either', async (t) => {
  const platform = await platformFor(t)
  platform.on('handlerError', () => {
    throw new Error('listener of listener')
  })
  const warning = nextHandlerWarning()
  let ran = false
  platform.messaging.on('self.double', () => {
    throw new Error('first failure')
  })
  platform.messaging.on('self.double', () => (ran = true))
  platform.messaging.send('double', 'local', 0)
  assert.equal(ran, true)
  const w = await warning
  assert.equal((w.cause as Error).message, 'first failure', 'the original failure still surfaces')
})

test('a custom protocol API only sees its own protocol', async (t) => {
  const platform = await platformFor(t)
  const xx = new API({ platform, protocol: 'xx' })
  assert.equal(xx.protocol, 'xx')
  const xxGot: unknown[] = []
  const msGot: unknown[] = []
  const raw: Message[] = []
  xx.on('self.shared.topic', (_t, sender, payload) => xxGot.push([sender, payload]))
  platform.messaging.on('self.shared.topic', (_t, _s, payload) => msGot.push(payload))
  platform.on('message', (m: Message) => raw.push(m))
  xx.send('shared.topic', 'local', { from: 'xx' })
  platform.messaging.send('shared.topic', 'local', { from: 'ms' })
  assert.deepEqual(xxGot, [['local', { from: 'xx' }]])
  assert.deepEqual(msGot, [{ from: 'ms' }])
  assert.deepEqual(raw.map((m) => m.protocol), ['xx', 'ms'])
  assert.equal(xx.subscriptions, 1)
  xx.detach()
  xx.send('shared.topic', 'local', 'after detach') // still sends, no longer receives
  assert.equal(xxGot.length, 1)
  assert.throws(() => new API({ platform, protocol: '' }), InvalidArgumentError)
  assert.throws(() => new API({ platform: {} as Platform, protocol: 'yy' }), InvalidArgumentError)
})

test('a Layer chained between the platform and an API sees sends and receives, in wire form, and can rewrite them', async (t) => {
  const platform = await platformFor(t)
  class Counting extends Layer {
    sent: OutgoingMessage[] = []
    received: Message[] = []
    override send(message: OutgoingMessage, options?: SendOptions): void {
      this.sent.push(message)
      super.send({ ...message, topic: message.topic + '.viaLayer' }, options)
    }
    protected override receive(message: Message): void {
      this.received.push(message)
      if (message.topic.startsWith('drop.')) return
      // A Layer sees payloads in wire form (JSON text here), as raw `message` listeners do.
      super.receive({ ...message, payload: JSON.stringify({ wrapped: JSON.parse(message.payload as string) as unknown }) })
    }
  }
  const layer = new Counting(platform)
  t.after(() => layer.detach())
  const api = new API({ platform: layer, protocol: 'ly' })
  const got: Array<[string, string, unknown]> = []
  api.on('self.*', (topic, sender, payload) => got.push([topic, sender, payload]))
  api.send('hello', 'local', 1)
  api.send('drop.me', 'local', 2)
  assert.deepEqual(layer.sent.map((m) => m.topic), ['hello', 'drop.me'])
  assert.deepEqual(layer.received.filter((m) => m.protocol === 'ly').map((m) => m.topic), ['hello.viaLayer', 'drop.me.viaLayer'])
  assert.deepEqual(got, [['self.hello.viaLayer', 'local', { wrapped: 1 }]])
  // Messages from others (below the layer) pass through it too.
  assert.deepEqual(layer.sent.map((m) => m.payload), ['1', '2'], 'the API encodes what it sends through a Layer')
  platform.send({ destination: 'local', topic: 'below', protocol: 'ly', payload: '3' })
  assert.deepEqual(got.at(-1), ['self.below', 'local', { wrapped: 3 }])
  // The layer answers isLocal from the platform, so our own signId is local through it.
  assert.equal(layer.isLocal(platform.identity.getSignId()), true)
  // A throwing handler above the layer is reported through the platform.
  const reported = nextEvent<[HandlerError]>(platform, 'handlerError')
  api.on('self.oops.viaLayer', () => {
    throw new Error('above the layer')
  })
  api.send('oops', 'local', null)
  const [err] = await reported
  assert.equal(err.topic, 'self.oops.viaLayer')
})

test('torrenting delivers Buffers locally, unchanged', async (t) => {
  const platform = await platformFor(t)
  const payload = Buffer.from([0, 1, 2, 255])
  const got = new Promise<[string, string, unknown]>((resolve) => platform.torrenting.once('self.*', (...args) => resolve(args as unknown as [string, string, unknown])))
  let msGot = false
  platform.messaging.on('self.*', () => (msGot = true))
  const infoHash = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a'
  platform.torrenting.send(infoHash, 'local', payload)
  const [topic, sender, received] = await got
  assert.equal(topic, 'self.' + infoHash)
  assert.equal(sender, 'local')
  assert.ok(Buffer.isBuffer(received))
  assert.deepEqual(received, payload)
  assert.equal(msGot, false, "the 'ms' API does not see 'bt' messages")
})

test('sending to our own signId is delivered locally as self.<topic> from local', async (t) => {
  const platform = await platformFor(t)
  const me = platform.identity.getSignId()
  const got: unknown[] = []
  platform.messaging.on('self.note.toSelf', (topic, sender, payload) => got.push({ topic, sender, payload }))
  const raw = nextEvent<[Message]>(platform, 'message')
  let cbErr: Error | null | undefined
  platform.messaging.send('note.toSelf', me, { a: 1 }, { callback: (err) => (cbErr = err) })
  assert.deepEqual(got, [{ topic: 'self.note.toSelf', sender: 'local', payload: { a: 1 } }])
  const [m] = await raw
  assert.equal(m.scope, 'self')
  await waitUntil(() => cbErr !== undefined, 2000, 'callback')
  assert.equal(cbErr, null)
})

test('bad topic, destination or protocol throws InvalidArgumentError', async (t) => {
  const platform = await platformFor(t)
  const bad: Array<() => void> = [
    () => platform.messaging.send('', 'local', 1),
    () => platform.messaging.send('x'.repeat(1025), 'local', 1),
    () => platform.messaging.send(42 as unknown as string, 'local', 1),
    () => platform.messaging.send('t', '', 1),
    () => platform.messaging.send('t', undefined as unknown as string, 1),
    () => platform.messaging.send('t', 'not-a-signId', 1),
    () => platform.send({ destination: 'local', topic: 't', protocol: '', payload: 1 }),
    () => platform.send({ destination: 'local', topic: 't', protocol: 'p'.repeat(65), payload: 1 }),
    () => platform.send(null as unknown as OutgoingMessage),
    () => platform.send({ destination: 'local', topic: 't', protocol: 'ms', payload: 1 }, { callback: 'no' as unknown as () => void }),
    () => platform.messaging.send('t', randomSignId(), { n: 10n }) // not JSON: cannot go remote
  ]
  for (const [i, f] of bad.entries()) assert.throws(f, InvalidArgumentError, `case ${i}`)
  // A payload that cannot be serialised is fine locally: no serialisation there.
  let got: unknown
  platform.messaging.on('self.big', (_t, _s, p) => (got = p))
  platform.messaging.send('big', 'local', { n: 10n })
  assert.deepEqual(got, { n: 10n })
})

test('send after close throws StateError ERR_CLOSED', async () => {
  const platform = new Platform({ storage: new MemoryStore() })
  await platform.ready()
  await platform.close()
  const isClosed = (err: unknown): boolean => err instanceof StateError && err.code === 'ERR_CLOSED'
  assert.throws(() => platform.messaging.send('t', 'local', 1), isClosed)
  assert.throws(() => platform.torrenting.send('t', 'local', Buffer.alloc(1)), isClosed)
  assert.throws(() => platform.send({ destination: 'local', topic: 't', protocol: 'ms', payload: '1' }), isClosed)
})

test('options.callback is called once with null for a local send, asynchronously', async (t) => {
  const platform = await platformFor(t)
  const calls: Array<Error | null> = []
  platform.messaging.send('cb', 'local', 1, { callback: (err) => calls.push(err) })
  assert.equal(calls.length, 0, 'not called synchronously')
  await waitUntil(() => calls.length > 0, 2_000, 'the callback')
  assert.deepEqual(calls, [null])
})

test('a remote destination nobody can find: the callback is called exactly once, with an error', async (t) => {
  const platform = await platformFor(t, { lookupTimeoutMs: 500 })
  const calls: Array<Error | null> = []
  platform.messaging.send('remote.test', randomSignId(), { x: 1 }, { realtime: true, callback: (err) => calls.push(err) })
  assert.equal(calls.length, 0, 'not called synchronously')
  await waitUntil(() => calls.length > 0, 5_000, 'the delivery callback')
  // A second call would come from the same failure path on the next tick (tickMs) or expiry.
  await delay(200)
  assert.equal(calls.length, 1, 'exactly once')
  // A random signId that no directory knows cannot be reached: the lookup times out, and the
  // realtime message fails as unreachable, naming the lookup that failed.
  const [err] = calls
  assert.ok(err instanceof DeliveryError, `got ${String(err)}`)
  assert.equal(err.code, 'ERR_UNREACHABLE')
  assert.match(err.message, /no nodeInfo for .* within 500 ms/)
  // Without a callback the failure does not throw.
  platform.messaging.send('remote.test', randomSignId(), { x: 2 }, { realtime: true })
})
