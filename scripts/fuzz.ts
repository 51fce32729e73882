/**
 * Fuzzes the CurveCP codec, handshake and session, the platform frame codec and the TCP packet
 * framing with mutated packets.
 *
 *   node --import tsx scripts/fuzz.ts [count=1000000] [seed]
 *
 * Seeds are real packets: Hello, Cookie, Initiate and Client/Server Messages from real handshakes
 * (UDP and stream limits, `auth: 'signid'`), platform frames, and length-prefixed packet streams.
 * Each iteration takes one seed (or random garbage) and applies 1-4 mutations: bit flips, byte
 * sets, truncation, extension, splicing with another seed. The result goes to every target:
 *
 * - `packetKind` (must never throw) and every `decode*` function (may throw only DecodeError);
 * - `ServerHandshake.handleHello` / `handleInitiate`, `ClientHandshake.handleCookie`,
 *   `Session.open` on both ends (must never throw: they return null);
 * - `decodeFrame`, `FrameDecoder.push`, `LengthPrefixDecoder.push` (may throw only DecodeError).
 *
 * A crash is any other exception. A packet counts as accepted when a handshake or session method
 * took it (non-null) or a frame decoded from it; as rejected otherwise. Stateful seeds are renewed
 * when consumed (an accepted Initiate burns its cookie, an accepted Message its counter) so that
 * later mutations still reach the deep checks. Exit code 1 on any crash.
 *
 * `runFuzz` and `mutate` are exported for test/curvecp-fuzz.test.ts and the property tests.
 */
import { pathToFileURL } from 'node:url'
import { DecodeError } from '../src/errors.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import { Identity } from '../src/identity/identity.js'
import {
  STREAM_LIMITS,
  UDP_LIMITS,
  decodeClientMessage,
  decodeCookie,
  decodeCookieInner,
  decodeHello,
  decodeInitiate,
  decodeInitiateInner,
  decodeServerMessage,
  packetKind,
  type PacketLimits
} from '../src/curvecp/packets.js'
import { ClientHandshake, ServerHandshake } from '../src/curvecp/handshake.js'
import type { Session } from '../src/curvecp/session.js'
import { FrameDecoder, decodeFrame, encodeAck, encodeData, encodePing } from '../src/connections/frames.js'
import { LengthPrefixDecoder, encodeLengthPrefix } from '../src/transports/length-prefix.js'

// ------------------------------------------------------------------------------------------------
// Mutations (pure; shared with the fast-check properties)
// ------------------------------------------------------------------------------------------------

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; bytes: Uint8Array }
  /** packet[0, at) || other[from, ...) */
  | { kind: 'splice'; other: Uint8Array; at: number; from: number }

/** Applies mutations in order; positions are taken modulo the current length. Never mutates its input. */
export function mutate(packet: Uint8Array, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(packet)
  for (const m of mutations) {
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) b[m.at % b.length]! ^= 1 << (m.bit & 7)
        break
      case 'set':
        if (b.length > 0) b[m.at % b.length] = m.value & 0xff
        break
      case 'truncate':
        b = b.subarray(0, m.at % (b.length + 1))
        break
      case 'extend':
        b = Buffer.concat([b, m.bytes])
        break
      case 'splice': {
        const at = m.at % (b.length + 1)
        const from = m.other.length === 0 ? 0 : m.from % m.other.length
        b = Buffer.concat([b.subarray(0, at), m.other.subarray(from)])
        break
      }
    }
  }
  return b
}

/** mulberry32: a small seeded generator, so that a run can be repeated from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function randomMutation(rand: () => number, seeds: readonly Buffer[]): Mutation {
  const int = (n: number): number => Math.floor(rand() * n)
  const r = rand()
  if (r < 0.35) return { kind: 'flip', at: int(1 << 16), bit: int(8) }
  if (r < 0.6) return { kind: 'set', at: int(1 << 16), value: [0, 0xff, 0x80, 0x7f, int(256)][int(5)] as number }
  if (r < 0.75) return { kind: 'truncate', at: int(1 << 16) }
  if (r < 0.88) return { kind: 'extend', bytes: randomBytes(rand, [1, 2, 15, 16, 17, 64, int(600)][int(7)] as number) }
  return { kind: 'splice', other: seeds[int(seeds.length)] as Buffer, at: int(1 << 16), from: int(1 << 16) }
}

function randomBytes(rand: () => number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = (rand() * 256) | 0
  return out
}

// ------------------------------------------------------------------------------------------------
// Seeds from real handshakes
// ------------------------------------------------------------------------------------------------

function throwawayIdentity(): Identity {
  return new Identity(new PlatformStorage(new MemoryStore()))
}

interface Party {
  limits: PacketLimits
  server: ServerHandshake
  serverIdentity: Identity
  clientIdentity: Identity
  /** An established pair: client session opens Server Messages, server session Client Messages. */
  clientSession: Session
  serverSession: Session
  /** A client in `hello-sent`, and the Cookie the server answered its Hello with. */
  pendingClient: ClientHandshake
  pendingCookie: Buffer
  /** An Initiate not yet shown to the server. */
  freshInitiate: Buffer
  helloSeed: Buffer
  /** Messages sealed but not yet accepted (counters above the receiver's last). */
  clientMessages: Buffer[]
  serverMessages: Buffer[]
}

const INITIATE_MESSAGE = Buffer.from('initiate data: hello from the fuzzer')

function clientFor(p: Pick<Party, 'limits' | 'serverIdentity' | 'clientIdentity'>): ClientHandshake {
  return new ClientHandshake({
    identity: p.clientIdentity,
    serverLongTermKey: Buffer.from(p.serverIdentity.getBoxId(), 'base64'),
    limits: p.limits,
    auth: 'signid'
  })
}

function mustHave<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`fuzz setup: ${what} failed`)
  return value
}

function renewPendingClient(p: Party): void {
  p.pendingClient = clientFor(p)
  p.pendingCookie = mustHave(p.server.handleHello(p.pendingClient.hello()), 'Hello -> Cookie')
}

/** Initiates refused after their cookie was marked used (the server burns a cookie before its X25519). */
function cookiesSpent(server: ServerHandshake): number {
  return server.drops['bad-initiate'] + server.drops['bad-vouch'] + server.drops['bad-auth']
}

function renewInitiate(p: Party): void {
  const client = clientFor(p)
  const cookie = mustHave(p.server.handleHello(client.hello()), 'Hello -> Cookie')
  p.freshInitiate = mustHave(client.handleCookie(cookie, INITIATE_MESSAGE), 'Cookie -> Initiate')
}

const MESSAGE_QUEUE = 8

function messageSizes(limits: PacketLimits): number[] {
  return limits.padded ? [16, 32, 160, 1024, limits.maxMessage] : [0, 1, 100, 1500, 9000]
}

function topUp(queue: Buffer[], session: Session, sizes: number[], rand: () => number): void {
  while (queue.length < MESSAGE_QUEUE) {
    const n = sizes[Math.floor(rand() * sizes.length)] as number
    queue.push(session.seal(randomBytes(rand, n)))
  }
}

function makeParty(limits: PacketLimits, rand: () => number): Party {
  const serverIdentity = throwawayIdentity()
  const clientIdentity = throwawayIdentity()
  // A fixed clock: the minute key never rotates during a run, so seed cookies stay valid.
  const server = new ServerHandshake({ identity: serverIdentity, limits, auth: 'signid', now: () => 0 })
  const base = { limits, serverIdentity, clientIdentity }
  const client = clientFor(base)
  const helloSeed = client.hello()
  const cookie = mustHave(server.handleHello(helloSeed), 'Hello -> Cookie')
  const initiate = mustHave(client.handleCookie(cookie, INITIATE_MESSAGE), 'Cookie -> Initiate')
  const accepted = mustHave(server.handleInitiate(initiate), 'Initiate')
  const first = accepted.session.seal(limits.padded ? Buffer.alloc(16) : Buffer.alloc(0))
  const established = mustHave(client.handleFirstServerMessage(first), 'first Server Message')
  const party: Party = {
    ...base,
    server,
    clientSession: established.session,
    serverSession: accepted.session,
    pendingClient: client, // replaced just below
    pendingCookie: cookie,
    freshInitiate: initiate,
    helloSeed,
    clientMessages: [],
    serverMessages: []
  }
  renewPendingClient(party)
  renewInitiate(party)
  topUp(party.clientMessages, party.clientSession, messageSizes(limits), rand)
  topUp(party.serverMessages, party.serverSession, messageSizes(limits), rand)
  return party
}

function frameSeeds(): Buffer[] {
  const id = Buffer.alloc(16, 7)
  const frames = [
    encodeData({ id, protocol: 'mm/1', topic: 'chat.room', payload: Buffer.alloc(1024, 1) }),
    encodeData({ id, protocol: 'p', topic: 'ünïcødé/トピック', expiresAt: 1_700_000_000_000, payload: 'text payload ✓' }),
    encodeData({ id, protocol: 'mm/1', topic: '', payload: Buffer.alloc(0) }),
    encodeAck([id, Buffer.alloc(16, 1), Buffer.alloc(16, 2)]),
    encodePing()
  ]
  return [...frames, Buffer.concat(frames)]
}

function lengthPrefixed(packets: Buffer[]): Buffer {
  return Buffer.concat(packets.flatMap((p) => [encodeLengthPrefix(p.length), p]))
}

// ------------------------------------------------------------------------------------------------
// The run
// ------------------------------------------------------------------------------------------------

export interface CrashSample {
  target: string
  error: string
  input: string
}

export interface TargetCounts {
  accepted: number
  rejected: number
  crashes: number
}

export interface FuzzResult {
  iterations: number
  accepted: number
  rejected: number
  crashes: number
  ms: number
  /** Mutated packets per second. */
  rate: number
  seed: number
  perTarget: Record<string, TargetCounts>
  samples: CrashSample[]
}

export interface FuzzOptions {
  iterations: number
  seed?: number
  /** Called every `progressEvery` iterations. */
  onProgress?: (done: number) => void
  progressEvery?: number
}

const DECODERS: Array<[string, (b: Buffer) => unknown]> = [
  ['decodeHello', (b) => decodeHello(b)],
  ['decodeCookie', (b) => decodeCookie(b)],
  ['decodeInitiate/udp', (b) => decodeInitiate(b, UDP_LIMITS)],
  ['decodeInitiate/stream', (b) => decodeInitiate(b, STREAM_LIMITS)],
  ['decodeClientMessage/udp', (b) => decodeClientMessage(b, UDP_LIMITS)],
  ['decodeClientMessage/stream', (b) => decodeClientMessage(b, STREAM_LIMITS)],
  ['decodeServerMessage/udp', (b) => decodeServerMessage(b, UDP_LIMITS)],
  ['decodeServerMessage/stream', (b) => decodeServerMessage(b, STREAM_LIMITS)],
  ['decodeCookieInner', (b) => decodeCookieInner(b)],
  ['decodeInitiateInner', (b) => decodeInitiateInner(b)],
  ['decodeFrame', (b) => decodeFrame(b)],
  ['decodeFrame/body', (b) => decodeFrame(b.subarray(4))]
]

const MAX_SAMPLES = 10
const FRAME_DECODER_MAX = 64 * 1024
const LENGTH_PREFIX_MAX = 70_000

/** Runs the fuzzer synchronously; never throws for a crash (it is counted and sampled). */
export function runFuzz(options: FuzzOptions): FuzzResult {
  const seed = (options.seed ?? 1) >>> 0
  const rand = prng(seed)
  const int = (n: number): number => Math.floor(rand() * n)
  const parties = [makeParty(UDP_LIMITS, rand), makeParty(STREAM_LIMITS, rand)]
  const frames = frameSeeds()
  const perTarget: Record<string, TargetCounts> = {}
  const samples: CrashSample[] = []
  let crashes = 0
  let accepted = 0
  let rejected = 0

  const count = (target: string, outcome: keyof TargetCounts): void => {
    const c = (perTarget[target] ??= { accepted: 0, rejected: 0, crashes: 0 })
    c[outcome]++
  }
  const crash = (target: string, err: unknown, input: Buffer): void => {
    crashes++
    count(target, 'crashes')
    if (samples.length < MAX_SAMPLES) {
      const error = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err)
      samples.push({ target, error, input: input.toString('hex') })
    }
  }
  /** A target that may throw DecodeError and nothing else. */
  const decoding = (target: string, input: Buffer, fn: () => unknown): boolean => {
    try {
      fn()
      count(target, 'accepted')
      return true
    } catch (err) {
      if (err instanceof DecodeError) count(target, 'rejected')
      else crash(target, err, input)
      return false
    }
  }
  /** A target that must not throw at all; null is a refusal. */
  const total = <T>(target: string, input: Buffer, fn: () => T | null): T | null => {
    try {
      const out = fn()
      count(target, out === null ? 'rejected' : 'accepted')
      return out
    } catch (err) {
      crash(target, err, input)
      return null
    }
  }

  const started = performance.now()
  const every = options.progressEvery ?? 100_000
  for (let i = 0; i < options.iterations; i++) {
    const party = parties[int(parties.length)] as Party
    const seeds: Buffer[] = [
      party.helloSeed,
      party.pendingCookie,
      party.freshInitiate,
      ...party.clientMessages.slice(0, 2),
      ...party.serverMessages.slice(0, 2),
      ...frames,
      lengthPrefixed([party.helloSeed, party.clientMessages[0] as Buffer])
    ]
    let input: Buffer
    const r = rand()
    if (r < 0.05) {
      input = randomBytes(rand, int(1400)) // garbage
    } else {
      const base = r < 0.15 ? (frames[int(frames.length)] as Buffer) : r < 0.2 ? (seeds[seeds.length - 1] as Buffer) : (seeds[int(7)] as Buffer)
      const mutations: Mutation[] = []
      for (let n = 1 + int(4); n > 0; n--) mutations.push(randomMutation(rand, seeds))
      input = mutate(base, mutations)
    }

    let took = false
    try {
      packetKind(input)
      count('packetKind', 'accepted')
    } catch (err) {
      crash('packetKind', err, input)
    }
    for (const [name, fn] of DECODERS) decoding(name, input, () => fn(input))

    if (total('ServerHandshake.handleHello', input, () => party.server.handleHello(input))) took = true
    const spentBefore = cookiesSpent(party.server)
    const init = total('ServerHandshake.handleInitiate', input, () => party.server.handleInitiate(input))
    if (init) {
      took = true
      init.session.close()
      renewInitiate(party) // the seed's cookie is now spent
    } else if (cookiesSpent(party.server) !== spentBefore) {
      renewInitiate(party) // refused past the cookie check: the cookie is spent all the same
    }
    if (total('ClientHandshake.handleCookie', input, () => party.pendingClient.handleCookie(input))) {
      took = true
      renewPendingClient(party)
    }
    if (total('Session.open/server', input, () => party.serverSession.open(input))) {
      took = true
      const counter = input.readUIntLE(72, 6)
      party.clientMessages = party.clientMessages.filter((m) => m.readUIntLE(72, 6) > counter)
      topUp(party.clientMessages, party.clientSession, messageSizes(party.limits), rand)
    }
    if (total('Session.open/client', input, () => party.clientSession.open(input))) {
      took = true
      const counter = input.readUIntLE(40, 6)
      party.serverMessages = party.serverMessages.filter((m) => m.readUIntLE(40, 6) > counter)
      topUp(party.serverMessages, party.serverSession, messageSizes(party.limits), rand)
    }

    const cut = int(input.length + 1)
    const chunks = [input.subarray(0, cut), input.subarray(cut)]
    const frameDecoder = new FrameDecoder(FRAME_DECODER_MAX)
    let frameOk = false
    decoding('FrameDecoder.push', input, () => {
      for (const c of chunks) {
        frameDecoder.push(c, (body) => {
          decodeFrame(body)
          frameOk = true
        })
      }
    })
    if (frameOk) took = true
    const lengthDecoder = new LengthPrefixDecoder(LENGTH_PREFIX_MAX)
    decoding('LengthPrefixDecoder.push', input, () => {
      for (const c of chunks) {
        lengthDecoder.push(c, (packet) => packetKind(packet))
      }
    })

    if (took) accepted++
    else rejected++
    if (options.onProgress && (i + 1) % every === 0) options.onProgress(i + 1)
  }
  const ms = performance.now() - started
  for (const p of parties) {
    p.clientSession.close()
    p.serverSession.close()
    p.server.close()
  }
  return {
    iterations: options.iterations,
    accepted,
    rejected,
    crashes,
    ms,
    rate: options.iterations / (ms / 1000),
    seed,
    perTarget,
    samples
  }
}

/** The one-line summary the script prints. */
export function formatResult(r: FuzzResult): string {
  return (
    `fuzz: ${r.iterations} mutated packets, ${r.accepted} accepted, ${r.rejected} rejected, ${r.crashes} crashes, ` +
    `${Math.round(r.rate)} packets/s (${(r.ms / 1000).toFixed(1)} s, seed ${r.seed})`
  )
}

function main(): void {
  const count = Number(process.argv[2] ?? 1_000_000)
  const seed = Number(process.argv[3] ?? Date.now() % 0x1_0000_0000)
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(seed)) {
    console.error('usage: node --import tsx scripts/fuzz.ts [count] [seed]')
    process.exitCode = 2
    return
  }
  const result = runFuzz({
    iterations: count,
    seed,
    progressEvery: 100_000,
    onProgress: (done) => process.stderr.write(`  ${done}/${count}\n`)
  })
  console.log(formatResult(result))
  const width = Math.max(...Object.keys(result.perTarget).map((k) => k.length))
  for (const [name, c] of Object.entries(result.perTarget)) {
    console.log(`  ${name.padEnd(width)}  accepted ${c.accepted}, rejected ${c.rejected}, crashes ${c.crashes}`)
  }
  for (const s of result.samples) {
    console.log(`\nCRASH in ${s.target}: ${s.error}\n  input (${s.input.length / 2} bytes): ${s.input}`)
  }
  process.exitCode = result.crashes > 0 ? 1 : 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main()
