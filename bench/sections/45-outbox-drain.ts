// Section 45: draining the persistent outbox (issue 10's second speed figure), in one process.
// A sender on the default store (LevelDB) queues BENCH_DRAIN_N non-realtime 1 KiB messages for a
// peer that is offline; then the peer starts and the clock runs from its start until the
// sender has heard every delivery callback: throughput and time to drain. Beside it, in the same
// run, the same count sent with `realtime: true` over a live session (the in-memory path), the
// receiver's handler counting arrivals and the sender waiting for every callback.
// Run alone: node --import tsx --expose-gc bench/sections/45-outbox-drain.ts
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { Platform, MemoryStore, type PlatformOptions } from '../../dist/esm/index.js'

const N = Number(process.env.BENCH_DRAIN_N ?? 100_000)
const PAYLOAD = 'x'.repeat(1000)
const here = { host: '127.0.0.1' }

function node(options: PlatformOptions): Platform {
  return new Platform({ tcp: here, udp: false, stablePorts: false, ...options })
}

/**
 * Sends `n` messages to `dest`, honouring back-pressure and keeping at most WINDOW awaiting their
 * callback (a realtime message still unacknowledged counts against the peer's 10,000-message
 * bound); resolves when every callback came.
 */
async function sendAll(p: Platform, dest: string, n: number, realtime: boolean): Promise<void> {
  const WINDOW = 4_096
  let done = 0
  let failed = 0
  let i = 0
  await new Promise<void>((resolve, reject) => {
    let waitingDrain = false
    const pump = (): void => {
      waitingDrain = false
      while (i < n && i - done < WINDOW) {
        i++
        if (!p.messaging.send('bench.drain', dest, { i, text: PAYLOAD }, { realtime, callback })) {
          waitingDrain = true
          p.once('drain', pump)
          return
        }
      }
    }
    const callback = (err: Error | null): void => {
      if (err) failed++
      if (++done === n) return void (failed ? reject(new Error(`${failed} of ${n} failed, e.g. ${String(err)}`)) : resolve())
      if (!waitingDrain && i < n && i - done < WINDOW / 2) pump()
    }
    pump()
  })
}

async function drainFromStorage(): Promise<{ queueMs: number; drainMs: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-bench-drain-'))
  // Short reconnect backoff: the figure is the drain, not how long a backoff waits.
  const timings = { reconnectMinMs: 50, reconnectMaxMs: 200 }
  try {
    // The receiver keeps its identity and (stable) port in its data directory across the restart.
    const receiver = node({ dataDir: path.join(dir, 'receiver'), stablePorts: true, tcp: here })
    await receiver.ready()
    const info = receiver.directory.getMyNodeInfo()
    const dest = receiver.directory.identity.getSignId()
    await receiver.close() // offline while the sender queues
    const sender = node({ dataDir: path.join(dir, 'sender'), connections: { timings } })
    await sender.ready()
    sender.messaging.send('transports.nodeInfo', 'local', info)
    let accepted = 0
    const t0 = performance.now()
    let allAccepted: () => void = () => {}
    const acceptedAll = new Promise<void>((resolve) => (allAccepted = resolve))
    const all = sendAllAccepted(sender, dest, N, () => {
      if (++accepted === N) allAccepted()
    })
    await acceptedAll
    const queueMs = performance.now() - t0
    const back = node({ dataDir: path.join(dir, 'receiver'), stablePorts: true, tcp: here })
    let got = 0
    back.messaging.on('public.bench.drain', () => void got++)
    const t1 = performance.now()
    await back.ready()
    await all
    const drainMs = performance.now() - t1
    if (got < N) throw new Error(`only ${got} of ${N} arrived`)
    await sender.close()
    await back.close()
    return { queueMs, drainMs }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** As sendAll, non-realtime, with `accepted` told each time a message is in the outbox. */
async function sendAllAccepted(p: Platform, dest: string, n: number, accepted: () => void): Promise<void> {
  let done = 0
  let failed = 0
  await new Promise<void>((resolve, reject) => {
    const callback = (err: Error | null): void => {
      if (err) failed++
      if (++done === n) (failed ? reject(new Error(`${failed} of ${n} failed, e.g. ${String(err)}`)) : resolve())
    }
    let i = 0
    const pump = (): void => {
      while (i < n) {
        i++
        if (!p.messaging.send('bench.drain', dest, { i, text: PAYLOAD }, { callback, accepted })) {
          p.once('drain', pump)
          return
        }
      }
    }
    pump()
  })
}

async function realtimeLive(): Promise<number> {
  const receiver = node({ storage: new MemoryStore() })
  const sender = node({ storage: new MemoryStore() })
  await Promise.all([receiver.ready(), sender.ready()])
  sender.messaging.send('transports.nodeInfo', 'local', receiver.directory.getMyNodeInfo())
  let got = 0
  receiver.messaging.on('public.bench.drain', () => void got++)
  const dest = receiver.directory.identity.getSignId()
  await sendAll(sender, dest, 100, true) // the session is up before the clock starts
  got = 0
  const t0 = performance.now()
  await sendAll(sender, dest, N, true)
  const ms = performance.now() - t0
  if (got < N) throw new Error(`only ${got} of ${N} arrived`)
  await sender.close()
  await receiver.close()
  return ms
}

const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')} msg/s`
console.log(`${N.toLocaleString('en-US')} messages of 1 KiB JSON, one destination, in one process; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
const stored = await drainFromStorage()
console.log(`outbox (LevelDB): queued while the peer was offline in ${stored.queueMs.toFixed(0)} ms; drained after it came online in ${stored.drainMs.toFixed(0)} ms: ${rate(N, stored.drainMs)}`)
const live = await realtimeLive()
console.log(`realtime over a live session: ${live.toFixed(0)} ms: ${rate(N, live)}`)
console.log(`drain from the outbox / realtime: ${(live / stored.drainMs).toFixed(2)}x the throughput`)
