// Pieces of the adversarial suite (test/adversarial.test.ts) shared by its later files: a victim
// in its own process with a friend that echoes through it, throwaway TCP identities, and a flood
// that honours back-pressure (test/adversarial.test.ts imports the last four from here).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type net from 'node:net'
import { TcpChannel } from '../../src/connections/tcp-channel.js'
import { FRAME_DATA, FrameDecoder, decodeFrame, encodeAck, encodeData } from '../../src/connections/frames.js'
import { STREAM_LIMITS } from '../../src/curvecp/packets.js'
import { dialTcp } from '../../src/transports/tcp.js'
import { delay, memoryIdentity } from './index.js'
import { Friend, MiB, Victim, type VictimMemory } from './victim.js'

export interface FloodSetup {
  victim: Victim
  friend: Friend
  before: VictimMemory
}

/**
 * The victim (in a child process) and its friend, connected, with the victim's memory before the
 * attack. `nodeOptions`: flags for the victim's node (NODE_OPTIONS), e.g. a smaller young generation;
 * `friendTransport`: how the friend reaches it.
 */
export async function floodSetup(connections: Record<string, unknown> = {}, nodeOptions = '', friendTransport: 'tcp' | 'udp' = 'tcp'): Promise<FloodSetup> {
  const friend = new Friend(friendTransport)
  const friendId = await friend.ready()
  // Victim.start forks at once (before its first await), with this process's environment.
  const saved = process.env.NODE_OPTIONS
  if (nodeOptions) process.env.NODE_OPTIONS = `${saved ?? ''} ${nodeOptions}`.trim()
  const starting = Victim.start([friendId], connections, friendTransport === 'udp')
  if (saved === undefined) delete process.env.NODE_OPTIONS
  else process.env.NODE_OPTIONS = saved
  const victim = await starting
  friend.learn(victim)
  await friend.roundTrip(victim) // connected before the attack
  await delay(200)
  const before = await victim.memory()
  await victim.resetPeak()
  return { victim, friend, before }
}

export async function floodTeardown(s: FloodSetup): Promise<void> {
  await s.friend.close()
  await s.victim.close()
}

/** During `attack`: the friend's echo every 500 ms must come back; returns how many did. */
export async function friendDuring(s: FloodSetup, attack: Promise<unknown>): Promise<number> {
  let done = false
  let trips = 0
  const attackDone = attack.finally(() => (done = true))
  while (!done) {
    await s.friend.roundTrip(s.victim, 10_000)
    trips++
    await delay(500)
  }
  await attackDone
  await s.friend.roundTrip(s.victim, 10_000)
  return trips + 1
}

/** One line of figures for the test's output. */
export function floodReport(name: string, s: FloodSetup, after: VictimMemory, sentBytes: number, trips: number): string {
  const mb = (n: number): string => (n / MiB).toFixed(1)
  return `${name}: attackers sent ${(sentBytes / MiB).toFixed(1)} MiB; victim RSS ${mb(s.before.rss)} -> peak ${mb(after.peakRss)} MiB (+${mb(after.peakRss - s.before.rss)}), heap+external ${mb(s.before.heap)} -> peak ${mb(after.peakHeap)} MiB (+${mb(after.peakHeap - s.before.heap)}); friend round trips ${trips}; refused ${JSON.stringify(
    Object.fromEntries(Object.entries(after.stats.refused).filter(([, v]) => v > 0))
  )}`
}

/** The victim is up and its RSS and heap+external grew less than the budgets over the attack. */
export function assertFloodBudget(s: FloodSetup, after: VictimMemory, rssBudget: number, heapBudget: number): void {
  assert.ok(s.victim.alive, 'the victim is up')
  const rss = after.peakRss - s.before.rss
  const heap = after.peakHeap - s.before.heap
  assert.ok(rss < rssBudget, `victim RSS grew ${(rss / MiB).toFixed(1)} MiB (budget ${(rssBudget / MiB).toFixed(0)})`)
  assert.ok(heap < heapBudget, `victim heap+external grew ${(heap / MiB).toFixed(1)} MiB (budget ${(heapBudget / MiB).toFixed(0)})`)
}

/** Tiny DATA frames (~30 bytes each, realtime-style: not durable), `count` of them in one buffer. */
export function tinyFrames(count: number): Buffer {
  const frames: Buffer[] = []
  for (let i = 0; i < count; i++) frames.push(encodeData({ id: randomBytes(16), protocol: 'x', topic: '', payload: Buffer.alloc(0) }))
  return Buffer.concat(frames)
}

/** A TCP session to the victim as a fresh throwaway identity. */
export async function tcpSession(victim: Victim): Promise<TcpChannel> {
  const socket = await dialTcp('127.0.0.1', victim.port('tcp'), 5_000)
  const channel = TcpChannel.client(socket, { identity: memoryIdentity(), remoteSignId: victim.signId, remoteBoxId: victim.boxId, limits: STREAM_LIMITS })
  await new Promise<void>((resolve, reject) => {
    channel.once('secure', () => resolve())
    channel.once('close', (err?: Error) => reject(err ?? new Error('closed in handshake')))
  })
  channel.on('close', () => undefined)
  channel.resume()
  return channel
}

/** The emitter's `drain`, or `ms` (the listener removed either way). */
export function drainOr(channel: { once(e: string, l: () => void): unknown; off(e: string, l: () => void): unknown }, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      channel.off('drain', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    channel.once('drain', done)
  })
}

/**
 * Writes `chunk` (or what `chunk()` gives each time) until the channel closes or `ms` pass,
 * honouring back-pressure; returns bytes written.
 */
export async function floodUntilClosed(channel: { state: string; writev(b: Buffer[]): boolean; once(e: string, l: () => void): unknown; off(e: string, l: () => void): unknown }, next: Buffer | (() => Buffer), ms: number): Promise<number> {
  const end = Date.now() + ms
  let sent = 0
  while (channel.state !== 'closed' && Date.now() < end) {
    const chunk = typeof next === 'function' ? next() : next
    const ok = channel.writev([chunk])
    sent += chunk.length
    if (!ok) await drainOr(channel, 200)
    else await new Promise((r) => setImmediate(r))
  }
  return sent
}

/**
 * `count` durable DATA frames (flag 4) of the `ms` protocol on topic `echo` with payload `1`:
 * the victim records each id and echoes it back (its reply waits for that record, so its receive
 * path handles large reads a few frames at a time, the rest queued). Ids on one random stream;
 * {@link freshSeqs} numbers them.
 */
export function echoFrames(count: number): Buffer {
  const stream = randomBytes(8)
  const frames: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const id = Buffer.alloc(16)
    stream.copy(id, 0)
    frames.push(encodeData({ id, protocol: 'ms', topic: 'echo', payload: '1', durable: true }))
  }
  return Buffer.concat(frames)
}

/** A copy of `frames` (from {@link echoFrames}) with seqs `from`, `from + 1`, ...: each one new to the victim. */
export function freshSeqs(frames: Buffer, from: number): Buffer {
  const out = Buffer.from(frames)
  let seq = from
  // A frame: length (4), type (1), flags (1), id (16: stream 8, seq 8), ...
  for (let at = 0; at < out.length; at += 4 + out.readUInt32BE(at)) out.writeUInt32BE(seq++ >>> 0, at + 18)
  return out
}

/** As {@link floodUntilClosed}, with fresh seqs in each write: every frame is handled and recorded. */
export function floodFreshUntilClosed(channel: Parameters<typeof floodUntilClosed>[0], frames: Buffer, perWrite: number, ms: number): Promise<number> {
  let seq = 1 - perWrite
  return floodUntilClosed(channel, () => freshSeqs(frames, (seq += perWrite)), ms)
}

/** Reads `channel` and acknowledges every DATA frame the victim sends on it (a peer that keeps up). */
export function acknowledgeAll(channel: TcpChannel): void {
  const decoder = new FrameDecoder()
  channel.on('data', (chunk: Buffer) => {
    const ids: Buffer[] = []
    decoder.push(chunk, (body) => {
      const frame = decodeFrame(body)
      if (frame.type === FRAME_DATA) ids.push(Buffer.from(frame.id))
    })
    if (ids.length && channel.state === 'open') channel.writev([encodeAck(ids)])
  })
}

/**
 * Tiny durable DATA frames (flag 4: ids recorded in storage before their ACK), `count` of them
 * in one buffer: ids over 16 streams with scattered seqs, so each is new and recorded.
 */
export function tinyDurableFrames(count: number): Buffer {
  const streams = Array.from({ length: 16 }, () => randomBytes(8))
  const frames: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const id = Buffer.alloc(16)
    ;(streams[i % streams.length] as Buffer).copy(id, 0)
    id.writeUInt32BE(randomBytes(4).readUInt32BE(0), 12) // seq: high word 0, low word random
    frames.push(encodeData({ id, protocol: 'x', topic: '', payload: Buffer.alloc(0), durable: true }))
  }
  return Buffer.concat(frames)
}

/**
 * `identities` throwaway sessions to the victim, one after another (the admission allows 8
 * handshakes per address at a time), that never read; then each floods tiny durable frames for
 * `ms`. The channels go into `channels` (for the test to close); resolves with the bytes sent.
 */
export async function durableFlood(s: FloodSetup, identities: number, channels: TcpChannel[], ms = 15_000): Promise<number> {
  for (let i = 0; i < identities; i++) {
    const ch = await tcpSession(s.victim)
    ;(ch.socket as unknown as { socket: net.Socket }).socket.pause() // never read the ACKs
    channels.push(ch)
  }
  const sizes = await Promise.all(channels.map((ch) => floodUntilClosed(ch, tinyDurableFrames(2000), ms)))
  return sizes.reduce((a, b) => a + b, 0)
}
