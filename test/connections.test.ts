// The connection layer through the public API, in one process over real TCP on loopback:
// parallel dials, crossing dials, back-pressure, oversized frames, idle close and keepalive,
// expiry, the queue and peer-table bounds, disconnect(), and UDP address roaming.
// Every wait has a deadline of a few seconds that says what it waited for: a message that is
// never acknowledged (say, resending switched off) fails its test instead of hanging the suite.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import v8 from 'node:v8'
import vm from 'node:vm'
import { Platform, MemoryStore, DeliveryError, type Directory, type PlatformOptions } from '../src/index.js'
import { TcpProxy } from './helpers/tcp-proxy.js'
import { UdpRebindingProxy } from './helpers/udp-proxy.js'
import { nextEvent, randomSignId, waitUntil } from './helpers/index.js'

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

/** Tells `a` that `b` listens at 127.0.0.1:port (a proxy in front of b, or nobody). */
function introduceAt(a: Platform, b: Platform, port: number): void {
  const { timestamp: _timestamp, signature: _signature, ...i } = info(b)
  a.messaging.send('transports.nodeInfo', 'local', { ...i, connectionInfo: [{ transportType: 'tcp', transportInfo: { address: '127.0.0.1', port } }] })
}

function tcpPort(p: Platform): number {
  const entry = info(p).connectionInfo.find((c) => c.transportType === 'tcp')
  return (entry?.transportInfo as { port: number }).port
}

/** A TCP proxy in front of `p`, closed when the test ends: it shows every TCP connection made to p. */
async function proxyTo(t: import('node:test').TestContext, p: Platform): Promise<{ proxy: TcpProxy; port: number }> {
  const proxy = new TcpProxy({ address: '127.0.0.1', port: tcpPort(p) })
  const port = await proxy.listen()
  t.after(() => proxy.close())
  return { proxy, port }
}

/** Connections through the proxy that are still open at both ends. */
const openThrough = (proxy: TcpProxy): number => proxy.connections.filter((c) => !c.client.destroyed && !c.server.destroyed).length

/** Resolves when the delivery callback says success; rejects on its error or after `withinMs`. */
function deliver(from: Platform, to: Platform, topic: string, payload: unknown, options: { expireAfter?: number } = {}, withinMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`'${topic}' was neither acknowledged nor failed within ${withinMs} ms`)), withinMs)
    from.messaging.send(topic, to.identity.getSignId(), payload, {
      ...options,
      callback: (err) => {
        clearTimeout(timer)
        if (err) reject(err)
        else resolve()
      }
    })
  })
}

/** The error the delivery callback gets (null for success), or a rejection after `withinMs`. */
function outcome(send: (callback: (err: Error | null) => void) => unknown, withinMs: number, what: string): Promise<Error | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no delivery callback within ${withinMs} ms for ${what}`)), withinMs)
    send((err) => {
      clearTimeout(timer)
      resolve(err)
    })
  })
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
  // Each node reaches the other through a TCP proxy, so the test sees every TCP connection (one
  // per session) and which of them stay open.
  let crossed = 0
  for (let round = 0; round < 5; round++) {
    const a = node()
    const b = node()
    await started(t, a, b)
    const toA = await proxyTo(t, a)
    const toB = await proxyTo(t, b)
    introduceAt(a, b, toB.port)
    introduceAt(b, a, toA.port)
    const atA: unknown[] = []
    const atB: unknown[] = []
    a.messaging.on('public.x', (_t, _s, p) => atA.push(p))
    b.messaging.on('public.x', (_t, _s, p) => atB.push(p))
    // Both dial at the same moment.
    await Promise.all([deliver(a, b, 'x', 'from a'), deliver(b, a, 'x', 'from b')])
    const dialled = toA.proxy.connections.length + toB.proxy.connections.length
    if (dialled > 1) crossed++
    // Of the crossing sessions both sides keep the same one and close the other.
    await waitUntil(() => openThrough(toA.proxy) + openThrough(toB.proxy) === 1, 3_000, `one open session of the ${dialled} dialled (round ${round})`)
    assert.deepEqual(atA, ['from b'])
    assert.deepEqual(atB, ['from a'])
    assert.deepEqual(a.connectedPeers(), [b.identity.getSignId()])
    assert.deepEqual(b.connectedPeers(), [a.identity.getSignId()])
    // Both sides send on the one left: no new connection, and it stays the only one.
    await Promise.all([deliver(a, b, 'x', 'again'), deliver(b, a, 'x', 'again')])
    assert.deepEqual(atB, ['from a', 'again'])
    assert.deepEqual(atA, ['from b', 'again'])
    assert.equal(toA.proxy.connections.length + toB.proxy.connections.length, dialled, 'no new dial')
    assert.equal(openThrough(toA.proxy) + openThrough(toB.proxy), 1)
    await Promise.all([a.close(), b.close()])
  }
  t.diagnostic(`${crossed} of 5 rounds had crossing dials`)
  assert.ok(crossed >= 1, 'the dials crossed at least once (else this test saw no tie-break)')
})

test('a fast sender gets back-pressure (send() false, then drain) and memory stays bounded', async (t) => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const a = node({ connections: { maxQueuedBytes: 2 * 1024 * 1024 } })
  const b = node()
  await started(t, a, b)
  introduce(a, b)
  await deliver(a, b, 'warm', 0)
  let received = 0
  b.torrenting.on('public.bulk', () => received++)
  // Memory is heap plus Buffers (arrayBuffers): the chunks are Buffers. V8 frees the memory of
  // dead Buffers on a background thread after a GC; the second GC waits for that to finish.
  const used = (): number => {
    gc()
    gc()
    const m = process.memoryUsage()
    return m.heapUsed + m.arrayBuffers
  }
  const CHUNKS = 128
  const chunk = Buffer.alloc(256 * 1024, 1) // 32 MiB in all
  const base = used()
  const samples: number[] = []
  let refused = 0
  let settled = 0
  let falseSeen = 0
  for (let i = 0; i < CHUNKS; i++) {
    const callback = (err: Error | null): void => {
      settled++
      if (err && (err as { code?: string }).code === 'ERR_QUEUE_FULL') refused++
    }
    const ok = a.torrenting.send('bulk', b.identity.getSignId(), chunk, { callback })
    if (!ok) {
      // Every 4th time: two full GCs per sample cost more than the sending.
      if (falseSeen++ % 4 === 0) samples.push(used() - base)
      await nextEvent(a, 'drain', 5_000)
    }
  }
  await waitUntil(() => settled === CHUNKS, 10_000, `the delivery callbacks of ${CHUNKS} chunks`)
  const after = used() - base
  const peak = Math.max(...samples)
  const mib = (n: number): string => (n / 1048576).toFixed(1)
  t.diagnostic(`send() said false ${falseSeen} times; growth: at most ${mib(peak)} MiB, ${mib(after)} MiB after, for ${mib(CHUNKS * chunk.length)} MiB sent`)
  assert.ok(falseSeen > 0, 'send() said false at least once')
  assert.equal(refused, 0, 'a sender that waits for drain never overflows the queue')
  assert.equal(received, CHUNKS)
  // Queue (<= 2 MiB), one batch, socket and stream buffers, both ends in this process: far under
  // what was sent.
  assert.ok(peak < 16 * 1048576, `memory grew by ${mib(peak)} MiB while sending ${mib(CHUNKS * chunk.length)} MiB`)
  assert.ok(after < 4 * 1048576, `memory grew by ${mib(after)} MiB once all was acknowledged`)
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
  let big = false
  // B refuses the frame and closes the session, so it is never acknowledged: A sends it again on
  // each new session until it expires.
  const bigOutcome = outcome((callback) => (big = a.torrenting.send('huge', b.identity.getSignId(), Buffer.alloc(200 * 1024), { expireAfter: 500, callback })), 5_000, 'the oversized message')
  assert.equal(big, true, 'taken: 200 KiB is below the high-water mark of the queue')
  await waitUntil(() => errors.some((e) => /bad frame/.test(e)) && disconnectedAtB() >= 1, 3_000, `B to log a bad frame and drop the session (logged: ${errors.join(' | ')})`)
  // C's session is untouched and B still works.
  const got: unknown[] = []
  b.messaging.on('public.still', (_t, _s, p) => got.push(p))
  await deliver(c, b, 'still', 'alive')
  assert.deepEqual(got, ['alive'])
  assert.ok(b.connectedPeers().includes(c.identity.getSignId()))
  const err = await bigOutcome
  assert.ok(err instanceof DeliveryError, `the oversized message failed with ${String(err)}`)
  assert.equal(err.code, 'ERR_EXPIRED')
})

test('an idle session is closed, and the next message opens a new one', async (t) => {
  const timings = { idleCloseMs: 300, keepaliveMs: 100, deadAfterMs: 2_000 }
  const a = node({ connections: { timings } })
  const b = node({ connections: { timings } })
  await started(t, a, b)
  introduce(a, b)
  await deliver(a, b, 'one', 1)
  const t0 = Date.now()
  await nextEvent(a, 'disconnected', 3_000)
  const gone = Date.now() - t0
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

/** A loopback TCP port nobody listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const net = await import('node:net')
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as import('node:net').AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const codeOf = (err: Error | null): string | undefined => (err as { code?: string } | null)?.code

test('a message that cannot be delivered within expireAfter fails with ERR_EXPIRED', async (t) => {
  const a = node({ lookupTimeoutMs: 200 })
  const b = node()
  await started(t, a, b)
  introduceAt(a, b, await deadPort()) // every dial is refused; the message waits in the queue
  const t0 = Date.now()
  const err = await outcome((callback) => a.messaging.send('late', b.identity.getSignId(), 1, { expireAfter: 300, callback }), 3_000, 'a message to an unreachable peer')
  const ms = Date.now() - t0
  assert.ok(err instanceof DeliveryError, `failed with ${String(err)}`)
  assert.equal(err.code, 'ERR_EXPIRED')
  assert.ok(ms >= 300 && ms < 2_000, `expired after ${ms} ms (expireAfter 300, tick 50)`)
})

test('past the outbox bounds for one destination (messages or bytes), send() says false and the callback gets ERR_QUEUE_FULL', async (t) => {
  const byCount = node({ outbox: { maxMessagesPerDestination: 3 } })
  const byBytes = node({ outbox: { maxBytesPerDestination: 64 * 1024 } })
  await started(t, byCount, byBytes)
  // Nobody knows these peers: their messages wait in the outbox.
  const far = randomSignId()
  const outcomes: Array<Promise<Error | null>> = []
  const taken: boolean[] = []
  for (let i = 0; i < 3; i++) outcomes.push(outcome((callback) => taken.push(byCount.messaging.send('q', far, i, { callback })), 60_000, `queued message ${i}`))
  assert.deepEqual(taken, [true, true, true])
  let fourth = true
  const err = await outcome((callback) => (fourth = byCount.messaging.send('q', far, 3, { callback })), 2_000, 'the message past maxMessagesPerDestination')
  assert.equal(fourth, false)
  assert.ok(err instanceof DeliveryError, `failed with ${String(err)}`)
  assert.equal(err.code, 'ERR_QUEUE_FULL')
  // Another destination has its own bound.
  assert.equal(byCount.messaging.send('q', randomSignId(), 0, { callback: () => {} }), true)

  const farther = randomSignId()
  const first = outcome((callback) => byBytes.torrenting.send('q', farther, Buffer.alloc(40 * 1024), { callback }), 60_000, 'the first 40 KiB')
  for (let i = 0; i < 200 && (await byBytes.outbox.list()).length !== 1; i++) await new Promise((r) => setTimeout(r, 10))
  let second = true
  const err2 = await outcome((callback) => (second = byBytes.torrenting.send('q', farther, Buffer.alloc(40 * 1024), { callback })), 2_000, 'the 40 KiB past maxBytesPerDestination')
  assert.equal(second, false)
  assert.equal(codeOf(err2), 'ERR_QUEUE_FULL')
  await Promise.all([byCount.close(), byBytes.close()])
  // The ones taken were still waiting: their callbacks hear ERR_CLOSED (they stay in the outbox).
  for (const o of [...outcomes, first]) assert.equal(codeOf(await o), 'ERR_CLOSED')
})

test('the peer table is bounded (maxPeers): one more peer is ERR_QUEUE_FULL until an idle one can be evicted', async (t) => {
  const a = node({ lookupTimeoutMs: 200, connections: { maxPeers: 3 } })
  await started(t, a)
  const peers = [randomSignId(), randomSignId(), randomSignId()]
  // Three peers, each with a message waiting for a lookup nobody answers.
  const waiting = peers.map((p) => outcome((callback) => a.messaging.send('t', p, 1, { expireAfter: 300, callback }), 3_000, 'a message to an unknown peer'))
  const refused = await outcome((callback) => a.messaging.send('t', randomSignId(), 1, { callback }), 2_000, 'a message to a fourth peer')
  assert.ok(refused instanceof DeliveryError, `failed with ${String(refused)}`)
  assert.equal(refused.code, 'ERR_QUEUE_FULL')
  assert.match(refused.message, /too many peers \(at most 3\)/)
  // Once their messages expired and their lookups failed, the three are idle: one makes room.
  for (const w of waiting) assert.equal(codeOf(await w), 'ERR_EXPIRED')
  await waitUntil(() => a.messaging.send('t', randomSignId(), 1, { expireAfter: 200, callback: () => {} }), 3_000, 'a fourth peer to be taken')
})

test('disconnect() closes the session on both sides; the next message opens a new one', async (t) => {
  const a = node()
  const b = node()
  await started(t, a, b)
  introduce(a, b)
  const conA = count(a, 'connection')
  const conB = count(b, 'connection')
  await deliver(a, b, 'one', 1)
  assert.deepEqual(a.connectedPeers(), [b.identity.getSignId()])
  const goneA = nextEvent<[string]>(a, 'disconnected', 3_000)
  const goneB = nextEvent<[string]>(b, 'disconnected', 3_000)
  await a.disconnect(b.identity.getSignId())
  assert.deepEqual(a.connectedPeers(), [], 'closed when disconnect() resolves')
  assert.deepEqual(await goneA, [b.identity.getSignId()])
  assert.deepEqual(await goneB, [a.identity.getSignId()])
  await waitUntil(() => b.connectedPeers().length === 0, 3_000, 'B to drop the session')
  await a.disconnect(b.identity.getSignId()) // no session: resolves
  await a.disconnect(randomSignId()) // unknown peer: resolves
  await deliver(a, b, 'two', 2)
  assert.equal(conA(), 2)
  assert.equal(conB(), 2)
})

test('UDP: when the client reappears from a new source port (NAT rebinding), the session follows it', async (t) => {
  const udpNode = (): Platform => node({ tcp: false, udp: { host: '127.0.0.1' } })
  const a = udpNode()
  const b = udpNode()
  await started(t, a, b)
  const bPort = (info(b).connectionInfo.find((c) => c.transportType === 'udp')?.transportInfo as { port: number }).port
  const nat = new UdpRebindingProxy({ address: '127.0.0.1', port: bPort })
  const natPort = await nat.listen()
  t.after(() => nat.close())
  const { timestamp: _timestamp, signature: _signature, ...bInfo } = info(b)
  a.messaging.send('transports.nodeInfo', 'local', { ...bInfo, connectionInfo: [{ transportType: 'udp', transportInfo: { address: '127.0.0.1', port: natPort } }] })
  const atA: unknown[] = []
  const atB: unknown[] = []
  a.messaging.on('public.r', (_t, _s, p) => atA.push(p))
  b.messaging.on('public.r', (_t, _s, p) => atB.push(p))
  const conA = count(a, 'connection')
  await deliver(a, b, 'r', 'before')
  await deliver(b, a, 'r', 'reply before')
  await nat.rebind()
  // A's next packets come from the new port; B must answer there (the old port is gone).
  await deliver(a, b, 'r', 'after', {}, 3_000)
  await deliver(b, a, 'r', 'reply after', {}, 3_000)
  assert.deepEqual(atB, ['before', 'after'])
  assert.deepEqual(atA, ['reply before', 'reply after'])
  assert.equal(conA(), 1, 'the same session throughout')
  assert.ok(nat.stats.toClient > 0)
})
