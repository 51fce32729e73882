// The connection layer through the public API, in one process over real TCP on loopback:
// parallel dials, crossing dials, back-pressure, oversized frames, idle close and keepalive.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Platform, MemoryStore, type Directory, type PlatformOptions } from '../src/index.js'

function node(extra: PlatformOptions = {}): Platform {
  return new Platform({
    storage: new MemoryStore(),
    tcp: { host: '127.0.0.1' },
    lookupTimeoutMs: 2_000,
    ...extra,
    connections: { ...extra.connections, timings: { reconnectMinMs: 20, reconnectMaxMs: 200, tickMs: 50, ...extra.connections?.timings } }
  })
}

async function started(t: import('node:test').TestContext, ...nodes: Platform[]): Promise<void> {
  t.after(() => Promise.all(nodes.map((n) => n.close())))
  await Promise.all(nodes.map((n) => n.ready()))
}

function info(p: Platform) {
  return (p.directory as Directory).getMyNodeInfo()
}

function introduce(a: Platform, b: Platform, addressCopies = 1): void {
  // Plays a local discovery service: an unsigned nodeInfo (a changed signed one would be refused).
  const { timestamp: _timestamp, signature: _signature, ...i } = info(b)
  a.messaging.send('transports.nodeInfo', 'local', { ...i, connectionInfo: Array.from({ length: addressCopies }, () => i.connectionInfo[0]) })
}

function deliver(from: Platform, to: Platform, topic: string, payload: unknown, options: { expireAfter?: number } = {}): Promise<void> {
  return new Promise((resolve, reject) =>
    from.messaging.send(topic, to.identity.getSignId(), payload, { ...options, callback: (err) => (err ? reject(err) : resolve()) })
  )
}

const count = (p: Platform, event: string): (() => number) => {
  let n = 0
  p.on(event, () => n++)
  return () => n
}

test('dialling several addresses at once ends in one session, and every message is acknowledged', async (t) => {
  const a = node()
  const b = node()
  await started(t, a, b)
  introduce(a, b, 4) // four attempts at once, all to the same listener: all of them complete
  const conA = count(a, 'connection')
  const conB = count(b, 'connection')
  const got: number[] = []
  b.messaging.on('public.multi', (_t, _s, p) => got.push(p as number))
  for (let i = 0; i < 20; i++) await deliver(a, b, 'multi', i)
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i))
  assert.equal(conA(), 1)
  assert.equal(conB(), 1)
  assert.deepEqual(a.connectedPeers(), [b.identity.getSignId()])
})

test('crossing dials end with the same single session on both sides', async (t) => {
  for (let round = 0; round < 5; round++) {
    const a = node()
    const b = node()
    await started(t, a, b)
    introduce(a, b)
    introduce(b, a)
    const atA: unknown[] = []
    const atB: unknown[] = []
    a.messaging.on('public.x', (_t, _s, p) => atA.push(p))
    b.messaging.on('public.x', (_t, _s, p) => atB.push(p))
    // Both dial at the same moment.
    await Promise.all([deliver(a, b, 'x', 'from a'), deliver(b, a, 'x', 'from b')])
    await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(atA, ['from b'])
    assert.deepEqual(atB, ['from a'])
    assert.equal(a.connectedPeers().length, 1)
    assert.equal(b.connectedPeers().length, 1)
    // After settling, each side has one open TCP connection to the other.
    await deliver(a, b, 'x', 'again')
    assert.deepEqual(atB, ['from a', 'again'])
    await Promise.all([a.close(), b.close()])
  }
})

test('a fast sender gets back-pressure (send() false, then drain) and memory stays bounded', async (t) => {
  const a = node({ connections: { maxQueuedBytes: 2 * 1024 * 1024 } })
  const b = node()
  await started(t, a, b)
  introduce(a, b)
  await deliver(a, b, 'warm', 0)
  let received = 0
  b.torrenting.on('public.bulk', () => received++)
  const chunk = Buffer.alloc(256 * 1024, 1)
  let refused = 0
  let falseSeen = false
  for (let i = 0; i < 64; i++) {
    const ok = a.torrenting.send('bulk', b.identity.getSignId(), chunk, { callback: (err) => err && (err as { code?: string }).code === 'ERR_QUEUE_FULL' && refused++ })
    if (!ok) {
      falseSeen = true
      await new Promise<void>((resolve) => a.once('drain', () => resolve()))
    }
  }
  assert.ok(falseSeen, 'send() said false at least once')
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => received + refused >= 64 && (clearInterval(timer), resolve()), 20)
  })
  assert.equal(refused, 0, 'a sender that waits for drain never overflows the queue')
  assert.equal(received, 64)
})

test('a frame over the maximum closes that session with a logged error; the node and its other sessions carry on', async (t) => {
  const errors: string[] = []
  const logger = { trace() {}, debug() {}, info() {}, warn() {}, error: (_o: unknown, msg?: string) => errors.push(String(msg)) }
  const b = node({ logger, connections: { maxFrameBytes: 64 * 1024 } })
  const a = node()
  const c = node()
  await started(t, a, b, c)
  introduce(a, b)
  introduce(c, b)
  await deliver(c, b, 'hello', 'from c')
  const disconnectedAtB = count(b, 'disconnected')
  const big = a.torrenting.send('huge', b.identity.getSignId(), Buffer.alloc(200 * 1024), { expireAfter: 1_500 })
  assert.equal(typeof big, 'boolean')
  await new Promise((r) => setTimeout(r, 400))
  assert.ok(errors.some((e) => /bad frame/.test(e)), `logged: ${errors.join(' | ')}`)
  assert.ok(disconnectedAtB() >= 1)
  // C's session is untouched and B still works.
  const got: unknown[] = []
  b.messaging.on('public.still', (_t, _s, p) => got.push(p))
  await deliver(c, b, 'still', 'alive')
  assert.deepEqual(got, ['alive'])
  assert.ok(b.connectedPeers().includes(c.identity.getSignId()))
})

test('an idle session is closed, and the next message opens a new one', async (t) => {
  const timings = { idleCloseMs: 300, keepaliveMs: 100, deadAfterMs: 2_000 }
  const a = node({ connections: { timings } })
  const b = node({ connections: { timings } })
  await started(t, a, b)
  introduce(a, b)
  await deliver(a, b, 'one', 1)
  const gone = await new Promise<number>((resolve) => {
    const t0 = Date.now()
    a.once('disconnected', () => resolve(Date.now() - t0))
  })
  assert.ok(gone >= 200, `closed after ${gone} ms idle`)
  await deliver(a, b, 'two', 2)
  assert.equal(a.connectedPeers().length, 1)
})

test('keepalives hold a quiet session open longer than the dead-peer timeout', async (t) => {
  const timings = { idleCloseMs: 60_000, keepaliveMs: 50, deadAfterMs: 400 }
  const a = node({ connections: { timings } })
  const b = node({ connections: { timings } })
  await started(t, a, b)
  introduce(a, b)
  await deliver(a, b, 'one', 1)
  const drops = count(a, 'disconnected')
  await new Promise((r) => setTimeout(r, 1_000)) // 2.5 dead-after periods with no messages
  assert.equal(drops(), 0, 'keepalives kept it up')
  assert.equal(a.connectedPeers().length, 1)
})

test('a remote payload that does not decode is dropped and counted; the node and the session carry on', async (t) => {
  const a = node()
  const b = node()
  await started(t, a, b)
  introduce(a, b)
  const warnings: unknown[] = []
  const onWarning = (w: unknown): void => void warnings.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  const seenRaw: unknown[] = []
  b.on('message', (m) => m.sender !== 'local' && seenRaw.push(m.payload))
  const handled: unknown[] = []
  b.messaging.on('public.junk', (_t, _s, p) => handled.push(p))
  // Low level, an 'ms' payload that is not JSON: the messaging API cannot decode it.
  await new Promise<void>((resolve, reject) =>
    a.send({ destination: b.identity.getSignId(), topic: 'junk', protocol: 'ms', payload: '{not json' }, { callback: (err) => (err ? reject(err) : resolve()) })
  )
  await deliver(a, b, 'junk', { fine: true })
  assert.deepEqual(handled, [{ fine: true }])
  assert.equal(b.undecodable, 1)
  assert.deepEqual(seenRaw, ['{not json', '{"fine":true}'])
  await new Promise((r) => setImmediate(r))
  assert.equal(warnings.length, 0, 'no process warning for hostile input')
})
