// Memory per idle session. Needs `node --expose-gc` (bench/run.ts passes it).
//
//   const server = await someCase.start()
//   const m = await memoryPerSession(1000, (n) => openIdleSessions(server, n))
//   console.log(formatMemory('ours', m)); await server.close()
//
// or with any function that opens N sessions in this process and returns a closer. Both ends of a
// loopback session live in this process, so the figures are per session *pair* (client + server).
import type { BenchPair, BenchServer } from './pair.js'
import { openSession } from './pair.js'
import { mapLimit, sleep, withTimeout } from './util.js'

export interface MemoryPerSession {
  n: number
  /** bytes per session: V8 heap used */
  heap: number
  /** bytes per session: memory outside the V8 heap (C++ objects, ArrayBuffers, Buffers) */
  external: number
  /** bytes per session: of which ArrayBuffers/Buffers (already included in `external`) */
  arrayBuffers: number
  /** heap + external: what the sessions hold in JS-visible memory */
  total: number
  /** bytes per session: resident set size of the process (page granular; kernel socket buffers are not in it) */
  rss: number
}

async function settledUsage(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('memoryPerSession needs node --expose-gc')
  for (let i = 0; i < 3; i++) {
    await sleep(50)
    gc()
  }
  return process.memoryUsage()
}

/**
 * Open `n` sessions with `openN` and report the memory they hold, per session, after gc: the
 * delta of heapUsed + external (external already includes arrayBuffers, so it is not added twice)
 * and of RSS, divided by n. The sessions are then closed with the returned closer.
 */
export async function memoryPerSession(
  n: number,
  openN: (n: number) => Promise<{ close(): Promise<void> }>,
): Promise<MemoryPerSession> {
  const before = await settledUsage()
  const sessions = await openN(n)
  await sleep(200) // let handshakes, acks and lazy allocations finish
  const after = await settledUsage()
  await sessions.close()
  const per = (k: keyof NodeJS.MemoryUsage): number => (after[k] - before[k]) / n
  return {
    n,
    heap: per('heapUsed'),
    external: per('external'),
    arrayBuffers: per('arrayBuffers'),
    total: per('heapUsed') + per('external'),
    rss: per('rss'),
  }
}

/**
 * Open `n` idle sessions on `server` (each: open, hello, one 1 KiB message echoed, so both ends are
 * fully set up) with `concurrency` opens in flight; returns a closer for all of them.
 */
export async function openIdleSessions(server: BenchServer, n: number, concurrency = 32, opTimeoutMs = 20_000): Promise<{ pairs: BenchPair[]; close(): Promise<void> }> {
  const ping = Buffer.alloc(1024, 1)
  const pairs: BenchPair[] = []
  try {
    await mapLimit(Array.from({ length: n }), concurrency, async () => {
      const pair = await withTimeout(openSession(server, 'echo'), opTimeoutMs, 'open')
      pairs.push(pair)
      const echoed = new Promise<void>((resolve) => pair.onMessage(() => resolve()))
      pair.send(ping)
      await withTimeout(echoed, opTimeoutMs, 'echo')
      pair.onMessage(() => {})
    })
  } catch (err) {
    await closeAll(pairs, concurrency)
    throw err
  }
  return { pairs, close: () => closeAll(pairs, concurrency) }
}

async function closeAll(pairs: BenchPair[], concurrency: number): Promise<void> {
  await mapLimit(pairs, concurrency, (p) => p.close().catch(() => {}))
}

const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`

export function formatMemory(name: string, m: MemoryPerSession): string {
  return (
    `${name}: ${kib(m.total)} per idle session (heap ${kib(m.heap)} + external ${kib(m.external)}, ` +
    `of which ArrayBuffers ${kib(m.arrayBuffers)}); RSS ${kib(m.rss)} per session; N = ${m.n}, both ends in this process`
  )
}
