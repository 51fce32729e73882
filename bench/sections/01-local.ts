// Section 01: the local broker and start-up, no network.
//  (1) dispatch rate of platform.messaging.send(topic, 'local', payload) to one exact-topic
//      subscriber, beside a bare node EventEmitter emit(topic, 'local', payload) to one listener,
//      interleaved rounds in one process, medians; then the same with a wildcard subscriber present.
//  (2) time from `new Platform({dataDir})` to ready on an existing LevelDB store, median of 10.
// Run alone: node --import tsx --expose-gc bench/sections/01-local.ts
import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { LevelStore, MemoryStore, Platform, type PlatformOptions } from '../../dist/esm/index.js'

const N = Number(process.env.BENCH_LOCAL_N ?? 1_000_000)
const ROUNDS = Number(process.env.BENCH_LOCAL_ROUNDS ?? 5)
const READY_RUNS = 10
const DISPATCH_GOAL = 0.5
const READY_GOAL_MS = 150

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {})
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}
const fmtRate = (r: number): string => `${(r / 1e6).toFixed(2)} M msg/s`
const pad = (s: string, n: number): string => s.padEnd(n)

/** Runs `fn(n)` and returns messages per second. */
function rate(n: number, fn: (n: number) => void): number {
  gc()
  const t0 = performance.now()
  fn(n)
  const ms = performance.now() - t0
  return n / (ms / 1000)
}

async function dispatch(): Promise<void> {
  const payload = { test: 'Test String', n: 1 }
  const topic = 'bench.testMessage'

  // The bare baseline: one listener, the same three arguments.
  let eeCount = 0
  const ee = new EventEmitter()
  ee.on(topic, (_s: string, p: unknown) => {
    if (p !== undefined) eeCount++
  })
  const runEE = (n: number): void => {
    for (let i = 0; i < n; i++) ee.emit(topic, 'local', payload)
  }

  // mm-platform with one exact subscriber.
  const platform = new Platform({ storage: new MemoryStore(), tcp: false })
  await platform.ready()
  let mmCount = 0
  platform.messaging.on('self.' + topic, (_t, _s, p) => {
    if (p !== undefined) mmCount++
  })
  const runMM = (n: number): void => {
    for (let i = 0; i < n; i++) platform.messaging.send(topic, 'local', payload)
  }

  // Warm up both (JIT), then interleave the measured rounds.
  runEE(200_000)
  runMM(200_000)
  const ee1: number[] = []
  const mm1: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    ee1.push(rate(N, runEE))
    mm1.push(rate(N, runMM))
  }

  // Wildcard subscribers present: one that does not match (scanned), then one that also matches.
  let wildCount = 0
  platform.messaging.on('self.other.*', () => wildCount++)
  runMM(100_000)
  const mmWildMiss: number[] = []
  const eeWildMiss: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    eeWildMiss.push(rate(N, runEE))
    mmWildMiss.push(rate(N, runMM))
  }
  platform.messaging.on('self.bench.*', (_t, _s, p) => {
    if (p !== undefined) wildCount++
  })
  runMM(100_000)
  const mmWildHit: number[] = []
  for (let r = 0; r < ROUNDS; r++) mmWildHit.push(rate(N, runMM))

  await platform.close()
  const expectedMM = 200_000 + ROUNDS * N + 100_000 + ROUNDS * N + 100_000 + ROUNDS * N
  if (mmCount !== expectedMM || eeCount !== 200_000 + 2 * ROUNDS * N || wildCount !== 100_000 + ROUNDS * N) {
    throw new Error(`handler counts are off: mm ${mmCount}/${expectedMM}, ee ${eeCount}, wildcard ${wildCount}`)
  }

  const eeMed = median(ee1)
  const mmMed = median(mm1)
  const ratio = mmMed / eeMed
  const ratioMiss = median(mmWildMiss) / median(eeWildMiss)
  console.log(`(1) local bus dispatch, ${ROUNDS} interleaved rounds of ${N.toLocaleString('en')} messages, medians (payload is an object; no serialisation locally)`)
  console.log(`    ${pad('EventEmitter.emit(topic, "local", payload), 1 listener', 74)} ${fmtRate(eeMed)}   rounds: ${ee1.map((r) => (r / 1e6).toFixed(2)).join(' ')}`)
  console.log(`    ${pad('platform.messaging.send(topic, "local", payload), 1 exact subscriber', 74)} ${fmtRate(mmMed)}   rounds: ${mm1.map((r) => (r / 1e6).toFixed(2)).join(' ')}`)
  console.log(`    ${pad('  + a non-matching wildcard subscriber (self.other.*)', 74)} ${fmtRate(median(mmWildMiss))}   (EventEmitter same rounds ${fmtRate(median(eeWildMiss))})`)
  console.log(`    ${pad('  + also a matching wildcard subscriber (self.bench.*): 2 handler calls', 74)} ${fmtRate(median(mmWildHit))}`)
  console.log(`    ratio mm / EventEmitter: ${ratio.toFixed(2)} (goal >= ${DISPATCH_GOAL}: ${ratio >= DISPATCH_GOAL ? 'MET' : 'NOT MET'}); with a non-matching wildcard present: ${ratioMiss.toFixed(2)}`)
}

async function readyTime(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-bench-ready-'))
  try {
    // An existing store: identity, circles, and 10,000 other entries (~1 MB).
    const first = new Platform({ dataDir, tcp: false })
    await first.ready()
    first.messaging.send('friends.update', 'local', [first.identity.getSignId()])
    await first.close()
    const store = new LevelStore({ dir: dataDir })
    const value = 'x'.repeat(100)
    for (let b = 0; b < 100; b++) {
      await store.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `outbox.${b}.${i}`, value })))
    }
    await store.close()

    const measure = async (options: PlatformOptions): Promise<number[]> => {
      const times: number[] = []
      for (let i = 0; i < READY_RUNS + 1; i++) {
        gc()
        const t0 = performance.now()
        const platform = new Platform(options)
        await platform.ready()
        const ms = performance.now() - t0
        await platform.close()
        if (i > 0) times.push(ms) // the first run loads code: not counted
      }
      return times
    }
    const withTcp = await measure({ dataDir })
    const noTcp = await measure({ dataDir, tcp: false })
    const med = median(withTcp)
    console.log(`(2) new Platform({dataDir}) -> ready on an existing LevelDB store (10,000 entries), median of ${READY_RUNS} (after 1 unmeasured run)`)
    console.log(`    ${pad('default options (opens LevelDB, loads identity and circles, listens on TCP)', 74)} ${med.toFixed(1)} ms   runs: ${withTcp.map((x) => x.toFixed(1)).join(' ')}`)
    console.log(`    ${pad('with tcp: false', 74)} ${median(noTcp).toFixed(1)} ms`)
    console.log(`    goal <= ${READY_GOAL_MS} ms: ${med <= READY_GOAL_MS ? 'MET' : 'NOT MET'}`)
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

await dispatch()
await readyTime()
