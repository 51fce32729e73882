/**
 * The message stream on virtual time: two streams joined by in-memory links with delay, jitter
 * and seeded loss. Every byte is checked; nothing real waits.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MessageStream, type MessageStreamOptions } from '../src/curvecp/message-stream.js'
import { EOF_FAILURE, EOF_SUCCESS, decodeMessage, encodeMessage } from '../src/curvecp/message-layer.js'
import { VirtualClock, VirtualLink, seededRandom, type LinkOptions } from './helpers/udp-virtual.js'

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  const rnd = seededRandom(seed)
  for (let i = 0; i < n; i++) b[i] = (rnd() * 256) | 0
  return b
}

interface Side {
  stream: MessageStream
  chunks: Buffer[]
  ended: number
  finished: boolean
  error: Error | undefined
  /** Largest position sent beyond what the other side had delivered (flow control). */
  maxAhead: number
  link: VirtualLink
  clock: VirtualClock & { live: Set<unknown> }
}

function pair(link: LinkOptions = {}, options: Partial<MessageStreamOptions> = {}, back: LinkOptions = link): { clock: VirtualClock; a: Side; b: Side } {
  const clock = new VirtualClock()
  const make = (): Side => ({ stream: undefined as unknown as MessageStream, chunks: [], ended: 0, finished: false, error: undefined, maxAhead: 0, link: undefined as unknown as VirtualLink, clock: undefined as unknown as VirtualClock & { live: Set<unknown> } })
  const a = make()
  const b = make()
  // Each stream gets a view of the clock that counts its own live timers.
  const counted = (): VirtualClock & { live: Set<unknown> } => {
    const live = new Set<unknown>()
    return Object.assign(Object.create(clock) as VirtualClock, {
      live,
      setTimeout(fn: () => void, ms: number): unknown {
        const h: unknown = clock.setTimeout(() => {
          live.delete(h)
          fn()
        }, ms)
        live.add(h)
        return h
      },
      clearTimeout(h: unknown): void {
        live.delete(h)
        clock.clearTimeout(h)
      }
    })
  }
  for (const [self, other, opts] of [
    [a, b, link],
    [b, a, { ...back, seed: (back.seed ?? 1) + 1000 }]
  ] as const) {
    self.link = new VirtualLink(clock, (m) => other.stream.receive(m), opts)
    self.clock = counted()
    self.stream = new MessageStream({
      clock: self.clock,
      transmit: (m) => {
        const d = decodeMessage(m)
        self.maxAhead = Math.max(self.maxAhead, d.offset + d.data.length - other.stream.receivedBytes)
        self.link.send(m)
      },
      onData: (data) => self.chunks.push(Buffer.from(data)),
      onEnd: (eof) => (self.ended = eof),
      onFinish: () => (self.finished = true),
      onError: (err) => (self.error = err),
      ...options
    })
  }
  return { clock, a, b }
}

async function transfer(link: LinkOptions, bytes: number, options: Partial<MessageStreamOptions> = {}, maxMs = 600_000): Promise<{ ms: number; a: Side; b: Side }> {
  const { clock, a, b } = pair(link, options)
  const ab = pattern(bytes, 1)
  const ba = pattern(bytes, 2)
  // Write in uneven pieces, as an application would.
  const writeAll = (s: Side, data: Buffer): void => {
    for (let at = 0, k = 1; at < data.length; k++) {
      const n = Math.min(data.length - at, (k * 7919) % 20_000 + 1)
      s.stream.write(data.subarray(at, at + n))
      at += n
    }
    s.stream.end()
  }
  writeAll(a, ab)
  writeAll(b, ba)
  const ms = await clock.run(() => (a.finished && b.finished && a.ended !== 0 && b.ended !== 0) || !!a.error || !!b.error, maxMs)
  assert.equal(a.error, undefined)
  assert.equal(b.error, undefined)
  assert.ok(Buffer.concat(b.chunks).equals(ab), 'a -> b: every byte, in order')
  assert.ok(Buffer.concat(a.chunks).equals(ba), 'b -> a: every byte, in order')
  assert.equal(a.ended, EOF_SUCCESS)
  assert.equal(b.ended, EOF_SUCCESS)
  assert.ok(a.finished && b.finished, 'both EOFs acknowledged')
  a.stream.destroy()
  b.stream.destroy()
  assert.equal(a.clock.live.size + b.clock.live.size, 0, 'no timer left')
  return { ms, a, b }
}

test('moves 1 MiB each way over a clean link, and both EOFs', async () => {
  const { ms, a } = await transfer({ delayMs: 5 }, 1 << 20)
  assert.equal(a.stream.stats.retransmissions, 0)
  assert.ok(ms < 60_000, `took ${ms} virtual ms`)
  assert.ok(a.stream.rttMs >= 10 && a.stream.rttMs < 100, `rtt ${a.stream.rttMs}`)
})

for (const loss of [0.01, 0.05, 0.2]) {
  test(`delivers every byte with ${loss * 100}% loss both ways`, async () => {
    const { a, b } = await transfer({ delayMs: 5, loss, seed: 42 }, 512 * 1024)
    assert.ok(a.link.dropped > 0 && b.link.dropped > 0, 'the link did drop messages')
    assert.ok(a.stream.stats.retransmissions > 0)
  })
}

test('congestion control: fills a 2 MB/s bottleneck with a short queue without collapsing', async () => {
  // 2000 bytes/ms, 20 ms one way, a queue of 10 ms: the window must settle near the BDP.
  const bytes = 2 << 20
  const { ms, a } = await transfer({ delayMs: 20, bytesPerMs: 2000, maxQueueMs: 10, seed: 5 }, bytes)
  const goodput = bytes / ms // bytes per ms, one direction (both directions share nothing)
  assert.ok(goodput > 2000 * 0.3, `goodput ${goodput.toFixed(0)} B/ms of 2000`)
  assert.ok(a.link.queueDrops > 0, 'the queue did overflow at some point')
  assert.ok(a.stream.stats.retransmissions < a.stream.stats.blocksSent * 0.1, `${a.stream.stats.retransmissions} retransmissions of ${a.stream.stats.blocksSent}`)
})

test('keeps and acknowledges out-of-order blocks (reordering link)', async () => {
  const { a, b } = await transfer({ delayMs: 2, jitterMs: 8, seed: 7 }, 256 * 1024)
  // Reordering is repaired by held blocks, not by sending everything again.
  assert.ok(a.stream.stats.retransmissions < a.stream.stats.blocksSent / 4, `${a.stream.stats.retransmissions} of ${a.stream.stats.blocksSent}`)
  void b
})

test('one-byte blocks work both ways', async () => {
  const { a } = await transfer({ delayMs: 1, loss: 0.02, seed: 3 }, 3000, { maxBlockBytes: 1 })
  assert.ok(a.stream.stats.blocksSent >= 3000)
})

test('the sender never runs more than the send window ahead of the receiver', async () => {
  const { a, b } = await transfer({ delayMs: 20, loss: 0.03, seed: 9 }, 1 << 20, { sendWindowBytes: 32 * 1024, receiveWindowBytes: 32 * 1024 })
  assert.ok(a.maxAhead <= 32 * 1024, `ahead by ${a.maxAhead}`)
  assert.ok(b.maxAhead <= 32 * 1024, `ahead by ${b.maxAhead}`)
  assert.equal(a.stream.stats.dropped.beyondWindow + b.stream.stats.dropped.beyondWindow, 0)
})

test('write() reports back-pressure and drains once acknowledged', async () => {
  let drains = 0
  // Both streams get the handler; only a writes, so only a can drain.
  const { clock, a, b } = pair({ delayMs: 5 }, { highWaterBytes: 64 * 1024, onDrain: () => drains++ })
  assert.equal(a.stream.write(Buffer.alloc(32 * 1024)), true)
  assert.equal(a.stream.write(Buffer.alloc(64 * 1024)), false)
  await clock.run(() => drains > 0, 60_000)
  assert.equal(drains, 1)
  assert.ok(a.stream.bufferedBytes < 64 * 1024)
  a.stream.destroy()
  b.stream.destroy()
})

test('write() throws when the caller ignores back-pressure past the hard bound', () => {
  const { a, b } = pair({}, { maxBufferedBytes: 1000 })
  a.stream.write(Buffer.alloc(900))
  assert.throws(() => a.stream.write(Buffer.alloc(200)), { code: 'ERR_QUEUE_FULL' })
  a.stream.destroy()
  b.stream.destroy()
})

test('a failure EOF reaches the peer as a failure', async () => {
  const { clock, a, b } = pair({ delayMs: 3 })
  a.stream.write(Buffer.from('partial'))
  a.stream.end(EOF_FAILURE)
  await clock.run(() => b.ended !== 0, 10_000)
  assert.equal(b.ended, EOF_FAILURE)
  a.stream.destroy()
  b.stream.destroy()
})

test('gives up when the peer never acknowledges', async () => {
  const { clock, a, b } = pair({ delayMs: 3, loss: 1 }, { giveUpMs: 5_000 })
  a.stream.write(Buffer.from('into the void'))
  await clock.run(() => !!a.error, 60_000)
  assert.equal((a.error as { code?: string }).code, 'ERR_TIMEOUT')
  assert.ok(a.stream.stats.timeouts >= 2, 'retransmitted with backoff before giving up')
  assert.ok(clock.now() >= 5_000 && clock.now() < 7_000, `gave up at ${clock.now()}`)
  assert.equal(a.clock.live.size, 0)
  b.stream.destroy()
})

test('retransmission follows the measured round trip', async () => {
  const { a } = await transfer({ delayMs: 50, loss: 0.05, seed: 11 }, 64 * 1024)
  assert.ok(a.stream.rttMs > 95 && a.stream.rttMs < 200, `rtt ${a.stream.rttMs}`)
  assert.ok(a.stream.rtoMs >= a.stream.rttMs, `rto ${a.stream.rtoMs}`)
})

test('ignores malformed messages and messages far beyond the window', () => {
  const { a, b } = pair()
  a.stream.receive(Buffer.alloc(10))
  a.stream.receive(Buffer.alloc(2000))
  const bad = Buffer.alloc(192)
  bad.writeUInt16LE(1025, 38)
  a.stream.receive(bad)
  assert.equal(a.stream.stats.dropped.malformed, 3)
  const far = Buffer.alloc(192)
  far.writeUInt32LE(5, 0)
  far.writeUInt16LE(1, 38)
  far.writeUInt32LE(10_000_000, 40)
  a.stream.receive(far)
  assert.equal(a.stream.stats.dropped.beyondWindow, 1)
  a.stream.destroy()
  b.stream.destroy()
})

/** A stream whose messages are captured (decoded), on a clock whose immediates run on demand. */
function captured(): { clock: VirtualClock; stream: MessageStream; out: ReturnType<typeof decodeMessage>[] } {
  const clock = new VirtualClock()
  const out: ReturnType<typeof decodeMessage>[] = []
  const stream = new MessageStream({ clock, transmit: (m) => void out.push(decodeMessage(Buffer.from(m))) })
  return { clock, stream, out }
}

const peerBlock = (id: number, offset: number, bytes: number): Buffer => encodeMessage({ id, acknowledging: 0, ranges: [], eof: 0, offset, data: Buffer.alloc(bytes, 1) })

test('writes of one turn share a block, and the acknowledgement rides on it: one datagram', async () => {
  const { clock, stream, out } = captured()
  stream.receive(peerBlock(1, 0, 100))
  // Two frames written by separate callbacks of the same turn (a microtask apart).
  stream.write(Buffer.alloc(10, 2))
  await new Promise<void>((r) => queueMicrotask(r))
  stream.write(Buffer.alloc(10, 3))
  await clock.run(() => true, 0)
  assert.equal(out.length, 1, `messages sent: ${out.map((m) => `id ${m.id} ${m.data.length} bytes`).join(', ')}`)
  const m = out[0]!
  assert.notEqual(m.id, 0)
  assert.equal(m.acknowledging, 1)
  assert.deepEqual(m.ranges, [{ start: 0, end: 100 }])
  assert.equal(m.data.length, 20)
  assert.equal(stream.stats.acksSent, 0)
  stream.destroy()
})

test('blocks received in one turn get one pure acknowledgement when no data goes back', async () => {
  const { clock, stream, out } = captured()
  stream.receive(peerBlock(1, 0, 1024))
  stream.receive(peerBlock(2, 1024, 1024))
  stream.receive(peerBlock(3, 2048, 1024))
  await clock.run(() => true, 0)
  assert.equal(out.length, 1)
  assert.equal(out[0]!.id, 0)
  assert.equal(out[0]!.acknowledging, 3)
  assert.deepEqual(out[0]!.ranges, [{ start: 0, end: 3072 }])
  stream.destroy()
})

test('a ping-pong does not start a timer per round trip (the retransmission timer expires lazily)', async () => {
  const clock = new VirtualClock()
  let timers = 0
  const counting = Object.assign(Object.create(clock) as VirtualClock, {
    setTimeout(fn: () => void, ms: number): unknown {
      timers++
      return clock.setTimeout(fn, ms)
    }
  })
  let a: MessageStream | undefined
  let b: MessageStream | undefined
  let got = 0
  const ab = new VirtualLink(clock, (m) => b!.receive(m), { delayMs: 1 })
  const ba = new VirtualLink(clock, (m) => a!.receive(m), { delayMs: 1 })
  a = new MessageStream({ clock: counting, transmit: (m) => ab.send(m), onData: () => void got++ })
  b = new MessageStream({ clock, transmit: (m) => ba.send(m), onData: (d) => void b!.write(d) })
  const rounds = 200
  for (let i = 0; i < rounds; i++) {
    a.write(Buffer.alloc(100, i))
    await clock.run(() => got > i, 1000)
  }
  assert.equal(got, rounds)
  assert.equal(a.stats.timeouts, 0)
  // 200 round trips of 2 ms against an RTO of at least 20 ms: a timer per RTO, not per round trip.
  assert.ok(timers < rounds / 4, `${timers} timers for ${rounds} round trips`)
  a.destroy()
  b.destroy()
})

test('a pure acknowledgement waits one turn for an answer to ride on, then goes alone', () => {
  const immediates: Array<() => void> = []
  const clock = Object.assign(Object.create(new VirtualClock()) as VirtualClock, { setImmediate: (fn: () => void) => void immediates.push(fn) })
  const turn = (): void => {
    for (const fn of immediates.splice(0)) fn()
  }
  const out: ReturnType<typeof decodeMessage>[] = []
  const stream = new MessageStream({ clock, transmit: (m) => void out.push(decodeMessage(Buffer.from(m))) })
  stream.receive(peerBlock(1, 0, 100))
  turn()
  assert.equal(out.length, 0, 'nothing to send yet: the acknowledgement waits')
  // The application answers in the next turn (behind a storage commit, say).
  stream.write(Buffer.alloc(10, 2))
  turn()
  assert.equal(out.length, 1)
  assert.notEqual(out[0]!.id, 0)
  assert.equal(out[0]!.acknowledging, 1)
  // No answer: the pure acknowledgement goes on the turn after.
  stream.receive(peerBlock(2, 100, 100))
  turn()
  assert.equal(out.length, 1)
  turn()
  assert.equal(out.length, 2)
  assert.equal(out[1]!.id, 0)
  assert.equal(out[1]!.acknowledging, 2)
  assert.deepEqual(out[1]!.ranges, [{ start: 0, end: 200 }])
  stream.destroy()
})

test('a timeout is undone when a block it counted lost is acknowledged by its first transmission (a stalled peer, not loss)', async () => {
  const { clock, stream, out } = captured()
  stream.write(Buffer.alloc(8 * 1024, 5))
  await clock.run(() => out.length >= 8, 0)
  assert.equal(out.length, 8, 'the initial window')
  const window = stream.windowBlocks
  // The peer stalls past the RTO: the timeout counts the window lost and shrinks it.
  await clock.run(() => stream.stats.timeouts > 0, 5_000)
  await clock.run(() => false, 0)
  assert.equal(stream.stats.timeouts, 1)
  assert.ok(stream.windowBlocks < window)
  const resent = stream.stats.retransmissions
  assert.ok(resent < 8, 'the shrunken window sends only the oldest again')
  // The peer wakes and acknowledges its backlog, naming the newest message: sent once, never again.
  const newest = out[7]!.id
  stream.receive(encodeMessage({ id: 0, acknowledging: newest, ranges: [{ start: 0, end: 8 * 1024 }], eof: 0, offset: 0, data: Buffer.alloc(0) }))
  assert.equal(stream.stats.spuriousTimeouts, 1)
  assert.ok(stream.windowBlocks >= window, `the window is restored: ${stream.windowBlocks} blocks`)
  assert.equal(stream.bufferedBytes, 0)
  await clock.run(() => false, 0)
  assert.equal(stream.stats.retransmissions, resent, 'nothing more sent again')
  stream.destroy()
})

test('an expired timer is judged after the I/O of its turn: an acknowledgement already waiting prevents the timeout', async () => {
  const immediates: Array<() => void> = []
  const clock = Object.assign(Object.create(new VirtualClock()) as VirtualClock, { setImmediate: (fn: () => void) => void immediates.push(fn) })
  const turn = (): void => {
    for (const fn of immediates.splice(0)) fn()
  }
  const out: ReturnType<typeof decodeMessage>[] = []
  const stream = new MessageStream({ clock, transmit: (m) => void out.push(decodeMessage(Buffer.from(m))) })
  stream.write(Buffer.alloc(1000, 1))
  turn()
  assert.equal(out.length, 1)
  // Our process stalled past the RTO: its timer runs first when it wakes (timers come before I/O)…
  await clock.run(() => immediates.length > 0, 5_000)
  assert.ok(clock.now() >= stream.rtoMs)
  // …then the poll reads the acknowledgement that arrived meanwhile…
  stream.receive(encodeMessage({ id: 0, acknowledging: out[0]!.id, ranges: [{ start: 0, end: 1000 }], eof: 0, offset: 0, data: Buffer.alloc(0) }))
  // …and only then is the timer's expiry judged.
  turn()
  assert.equal(stream.stats.timeouts, 0)
  assert.equal(stream.stats.retransmissions, 0)
  assert.equal(stream.bufferedBytes, 0)
  stream.destroy()
})
