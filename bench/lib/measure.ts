// The measurements, the same for every case (see pair.ts for the interface and the protocol):
//   bulk       64 KiB messages for ~2 s per round, respecting back-pressure; MB/s (10^6 B/s) of
//              bytes acknowledged by the receiver, so bytes still queued at the sender don't count
//   pipelined  1 KiB echoes, 64 in flight, ~1 s per round; round trips/s
//   pingpong   1 KiB echoes, 1 in flight, ~1 s per round; round trips/s
//   connect    open a fresh session + hello + one 1 KiB message echoed back; ms, median of 50
//              (after 10 warm-up connections; one case at a time, back to back)
// Each throughput figure is the median of `rounds` rounds after a warm-up round, on one session.
// Throughput rounds are interleaved across cases (A B C A B C ...), so a noisy neighbour skews
// every case alike rather than one of them. Every wait is bounded by a timeout; a case that fails
// is reported with its error and dropped from the later measurements, the others go on.
import type { BenchCase, BenchPair, BenchServer } from './pair.js'
import { ACK_EVERY, decodeAck, openSession } from './pair.js'
import { median, now, sleep, withTimeout, yieldToIo } from './util.js'

export type Metric = 'bulk' | 'pipelined' | 'pingpong' | 'connect'

export const METRICS: Record<Metric, { label: string; unit: string; higherIsBetter: boolean; digits: number }> = {
  bulk: { label: 'bulk 64 KiB', unit: 'MB/s', higherIsBetter: true, digits: 1 },
  pipelined: { label: '1 KiB x64 in flight', unit: 'rt/s', higherIsBetter: true, digits: 0 },
  pingpong: { label: '1 KiB x1 in flight', unit: 'rt/s', higherIsBetter: true, digits: 0 },
  connect: { label: 'connect+1st echo', unit: 'ms', higherIsBetter: false, digits: 2 },
}

export interface MeasureOptions {
  metrics: Metric[]
  rounds: number
  bulkSeconds: number
  bulkMessage: number
  bulkMaxBytesPerRound: number
  echoSeconds: number
  echoMessage: number
  pipelinedInFlight: number
  warmupSeconds: number
  connects: number
  connectWarmup: number
  /** Pause before each case's connect series, so the previous case's teardown is over. */
  connectSettleMs: number
  /** Stop a case's connect series early (with fewer samples) past this much time. */
  connectBudgetMs: number
  /** Bound on any single wait (a drain, the last acks, an echo, an open, a close). */
  opTimeoutMs: number
  log: (line: string) => void
}

export const DEFAULT_OPTIONS: MeasureOptions = {
  metrics: ['bulk', 'pipelined', 'pingpong', 'connect'],
  rounds: 3,
  bulkSeconds: 2,
  bulkMessage: 64 * 1024,
  bulkMaxBytesPerRound: 16 * 1024 ** 3,
  echoSeconds: 1,
  echoMessage: 1024,
  pipelinedInFlight: 64,
  warmupSeconds: 0.5,
  connects: 50,
  connectWarmup: 10,
  connectSettleMs: 200,
  connectBudgetMs: 20_000,
  opTimeoutMs: 20_000,
  log: (line) => process.stderr.write(line + '\n'),
}

export interface Stat {
  median: number
  min: number
  max: number
  samples: number[]
}

export interface CaseResult {
  name: string
  stats: Partial<Record<Metric, Stat>>
  error?: string
}

function stat(samples: number[]): Stat {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples }
}

// ---- the per-session measurers ----

/** Bulk sender on a session opened in 'sink' mode; tracks the receiver's acks. */
export class BulkSender {
  private sent = 0
  private acked = 0
  private error: Error | undefined
  private waiter: { target: number; resolve: () => void; reject: (e: Error) => void } | undefined
  private readonly msg: Buffer

  constructor(
    private readonly pair: BenchPair,
    size: number,
    private readonly opTimeoutMs = DEFAULT_OPTIONS.opTimeoutMs,
  ) {
    if (ACK_EVERY % size !== 0) throw new Error(`bulk message size must divide ${ACK_EVERY}`)
    this.msg = Buffer.alloc(size, 0x5a)
    pair.onMessage((m) => {
      try {
        const total = decodeAck(m)
        if (total < this.acked || total > this.sent) throw new Error(`bad ack ${total} (acked ${this.acked}, sent ${this.sent})`)
        this.acked = total
      } catch (err) {
        this.error = err as Error
      }
      const w = this.waiter
      if (w && (this.error || this.acked >= w.target)) {
        this.waiter = undefined
        if (this.error) w.reject(this.error)
        else w.resolve()
      }
    })
  }

  /** Send for `seconds` (in whole ACK_EVERY units) and return MB/s as acknowledged by the receiver. */
  async round(seconds: number, maxBytes = DEFAULT_OPTIONS.bulkMaxBytesPerRound): Promise<number> {
    const start = this.sent
    const t0 = now()
    const deadline = t0 + seconds * 1000
    let streak = 0
    for (;;) {
      const bytes = this.sent - start
      if (bytes > 0 && bytes % ACK_EVERY === 0 && (bytes >= maxBytes || now() >= deadline)) break
      if (this.error) throw this.error
      this.sent += this.msg.byteLength
      if (!this.pair.send(this.msg)) {
        streak = 0
        await withTimeout(this.pair.drained(), this.opTimeoutMs, 'drain')
      } else if (++streak >= 16) {
        // The case accepted 1 MiB without asking us to wait: let I/O (and its acks) run.
        streak = 0
        await yieldToIo()
      }
    }
    await withTimeout(this.ackedAll(), this.opTimeoutMs, 'receiver acks')
    return (this.sent - start) / ((now() - t0) / 1000) / 1e6
  }

  private ackedAll(): Promise<void> {
    if (this.error) return Promise.reject(this.error)
    if (this.acked >= this.sent) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.waiter = { target: this.sent, resolve, reject }
    })
  }
}

/** Echo client on a session opened in 'echo' mode; checks sizes and order of the echoes. */
export class EchoClient {
  private seqOut = 0
  private seqIn = 0
  private readonly template: Buffer

  constructor(
    private readonly pair: BenchPair,
    private readonly size: number,
    private readonly opTimeoutMs = DEFAULT_OPTIONS.opTimeoutMs,
  ) {
    if (size < 4) throw new Error('echo message size must be >= 4')
    this.template = Buffer.alloc(size, 0xa5)
  }

  /** Keep `inFlight` messages outstanding for `seconds`; return completed round trips per second. */
  round(inFlight: number, seconds: number): Promise<number> {
    const run = new Promise<number>((resolve, reject) => {
      let sent = 0
      let received = 0
      let stopping = false
      const t0 = now()
      const deadline = t0 + seconds * 1000
      const sendOne = (): void => {
        const m = Buffer.allocUnsafe(this.size)
        this.template.copy(m)
        m.writeUInt32BE(this.seqOut++ % 2 ** 32, 0)
        sent++
        this.pair.send(m)
      }
      this.pair.onMessage((m) => {
        if (m.byteLength !== this.size || m.readUInt32BE(0) !== this.seqIn % 2 ** 32) {
          stopping = true
          this.pair.onMessage(() => {})
          reject(new Error(`echo #${this.seqIn}: got ${m.byteLength} bytes, seq ${m.byteLength >= 4 ? m.readUInt32BE(0) : '?'}`))
          return
        }
        this.seqIn++
        received++
        if (!stopping && now() >= deadline) stopping = true
        if (!stopping) sendOne()
        else if (received === sent) {
          this.pair.onMessage(() => {})
          resolve(received / ((now() - t0) / 1000))
        }
      })
      for (let i = 0; i < inFlight; i++) sendOne()
    })
    return withTimeout(run, seconds * 1000 + this.opTimeoutMs, `echo round (${inFlight} in flight)`)
  }
}

/** One connect sample: open a fresh session, hello, one message echoed back, close. In ms. */
export async function connectOnce(server: BenchServer, size = 1024, opTimeoutMs = DEFAULT_OPTIONS.opTimeoutMs): Promise<number> {
  const msg = Buffer.alloc(size, 0x3c)
  const t0 = now()
  const pair = await withTimeout(openSession(server, 'echo'), opTimeoutMs, 'open')
  try {
    const echoed = new Promise<Buffer>((resolve) => pair.onMessage(resolve))
    pair.send(msg)
    const back = await withTimeout(echoed, opTimeoutMs, 'first echo')
    const ms = now() - t0
    if (!back.equals(msg)) throw new Error(`first echo differs (${back.byteLength} bytes)`)
    return ms
  } finally {
    await withTimeout(pair.close(), opTimeoutMs, 'close').catch(() => {})
  }
}

// ---- running a set of cases, interleaved ----

interface Live {
  c: BenchCase
  server?: BenchServer
  result: CaseResult
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err))

function fail(l: Live, what: string, err: unknown, o: MeasureOptions): void {
  if (l.result.error) return
  l.result.error = `${what}: ${message(err)}`
  o.log(`  ${l.c.name} failed in ${l.result.error}`)
}

/**
 * One throughput metric over all live cases: set up a session per case, one warm-up round each,
 * then `rounds` rounds interleaved across cases.
 */
async function throughputPhase<S>(
  live: Live[],
  metric: Metric,
  o: MeasureOptions,
  setup: (server: BenchServer) => Promise<{ state: S; pair: BenchPair }>,
  round: (state: S, seconds: number) => Promise<number>,
  seconds: number,
): Promise<void> {
  o.log(`measuring ${metric} (${live.length} cases x ${o.rounds} rounds of ${seconds} s)`)
  const sessions = new Map<Live, { state: S; pair: BenchPair; samples: number[] }>()
  for (const l of live) {
    if (l.result.error) continue
    try {
      const s = await withTimeout(setup(l.server!), o.opTimeoutMs, 'open session')
      sessions.set(l, { ...s, samples: [] })
      await round(s.state, o.warmupSeconds)
    } catch (err) {
      fail(l, metric, err, o)
    }
  }
  for (let r = 0; r < o.rounds; r++) {
    for (const [l, s] of sessions) {
      if (l.result.error) continue
      await sleep(20) // let the previous case's in-flight work settle
      try {
        s.samples.push(await round(s.state, seconds))
      } catch (err) {
        fail(l, metric, err, o)
      }
    }
  }
  for (const [l, s] of sessions) {
    if (!l.result.error && s.samples.length) l.result.stats[metric] = stat(s.samples)
    await withTimeout(s.pair.close(), o.opTimeoutMs, 'close').catch((err) => fail(l, `${metric} close`, err, o))
  }
}

async function connectPhase(live: Live[], o: MeasureOptions): Promise<void> {
  o.log(`measuring connect (${live.length} cases x ${o.connects} connections)`)
  // Unlike the throughput rounds, connects run case by case, back to back: interleaved, one case's
  // background teardown (libp2p's) lands in the next case's sample (plain TCP's 0.2-0.3 ms doubled
  // or worse), and a pause between samples adds ~0.3 ms of wake-up to every case on this machine.
  for (const l of live) {
    if (l.result.error) continue
    await sleep(o.connectSettleMs)
    const samples: number[] = []
    const t0 = now()
    for (let i = 0; i < o.connectWarmup + o.connects && now() - t0 < o.connectBudgetMs; i++) {
      try {
        const ms = await connectOnce(l.server!, o.echoMessage, o.opTimeoutMs)
        if (i >= o.connectWarmup) samples.push(ms)
      } catch (err) {
        fail(l, 'connect', err, o)
        break
      }
    }
    if (!l.result.error && samples.length) l.result.stats.connect = stat(samples)
  }
}

/** Measure `cases` (each on its own server) and return one result per case, in order. */
export async function measureCases(cases: readonly BenchCase[], options: Partial<MeasureOptions> = {}): Promise<CaseResult[]> {
  const o: MeasureOptions = { ...DEFAULT_OPTIONS, ...options }
  const live: Live[] = cases.map((c) => ({ c, result: { name: c.name, stats: {} } }))
  for (const l of live) {
    try {
      l.server = await withTimeout(l.c.start(), 60_000, 'start')
    } catch (err) {
      fail(l, 'start', err, o)
    }
  }
  const ok = live.filter((l) => l.server)
  try {
    for (const metric of o.metrics) {
      if (metric === 'bulk') {
        await throughputPhase(
          ok,
          metric,
          o,
          async (server) => {
            const pair = await openSession(server, 'sink')
            return { pair, state: new BulkSender(pair, o.bulkMessage, o.opTimeoutMs) }
          },
          (b, seconds) => b.round(seconds, o.bulkMaxBytesPerRound),
          o.bulkSeconds,
        )
      } else if (metric === 'pipelined' || metric === 'pingpong') {
        const inFlight = metric === 'pipelined' ? o.pipelinedInFlight : 1
        await throughputPhase(
          ok,
          metric,
          o,
          async (server) => {
            const pair = await openSession(server, 'echo')
            return { pair, state: new EchoClient(pair, o.echoMessage, o.opTimeoutMs) }
          },
          (e, seconds) => e.round(inFlight, seconds),
          o.echoSeconds,
        )
      } else {
        await connectPhase(ok, o)
      }
    }
  } finally {
    for (const l of ok) {
      await withTimeout(l.server!.close(), o.opTimeoutMs, 'server close').catch((err) => fail(l, 'server close', err, o))
    }
  }
  return live.map((l) => l.result)
}
