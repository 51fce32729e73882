// Section 40: the persistent outbox's storage (src/storage/outbox-store.ts), peer offline.
//  (1) durable appends into the default store (LevelDB, group commit), 1 KiB payloads, one
//      destination, BENCH_OUTBOX_N messages with up to BENCH_OUTBOX_WINDOW appends in flight (as
//      a sender that does not wait for each send), each counted when its append resolved;
//      beside, in the same run, the baseline: one awaited LevelDB put of the same record per
//      message. Goals: >= 50,000 msg/s and >= 5x the baseline. Interleaved rounds, medians.
//  (2) the same appends into a kad-fs store (no batch: one file per key), one round.
//  (3) memory and start-up of a 1,000,000-message outbox (BENCH_OUTBOX_BIG): filled in one
//      process, then opened in a fresh one: RSS after open and after listing 100 pending.
//      Goal: RSS < 200 MiB. Also how long the open takes: the first reads every live file (the
//      file check), the next only files new since (db-checked).
// Run alone: node --import tsx --expose-gc bench/sections/40-outbox.ts
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import kadfs from 'kad-fs'
import { LevelStore } from '../../dist/esm/index.js'
import { PlatformStorage } from '../../dist/esm/storage/platform-storage.js'
import { OutboxStore } from '../../dist/esm/storage/outbox-store.js'
import { RecordArena, encodeRecordBinary } from '../../dist/esm/storage/outbox-keys.js'
import { median } from '../lib/util.js'

const N = Number(process.env.BENCH_OUTBOX_N ?? 100_000)
const BASE_N = Number(process.env.BENCH_OUTBOX_BASE_N ?? 20_000)
const KADFS_N = Number(process.env.BENCH_OUTBOX_KADFS_N ?? 2_000)
const WINDOW = Number(process.env.BENCH_OUTBOX_WINDOW ?? 2_048)
const ROUNDS = Number(process.env.BENCH_OUTBOX_ROUNDS ?? 3)
const BIG = Number(process.env.BENCH_OUTBOX_BIG ?? 1_000_000)
const RATE_GOAL = 50_000
const RATIO_GOAL = 5
const RSS_GOAL_MIB = 200
const DEST = 'A'.repeat(43) + '='
const PAYLOAD = Buffer.alloc(1024, 0x5a)

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {})
const tmp = (name: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `mm-bench-${name}-`))
const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`
const fmtRate = (r: number): string => `${Math.round(r).toLocaleString('en-US')} msg/s`

async function openLevel(dir: string): Promise<{ storage: PlatformStorage; outbox: OutboxStore }> {
  const storage = new PlatformStorage(new LevelStore({ dir }))
  await storage.open()
  return { storage, outbox: await OutboxStore.open({ storage, maxMessages: 10_000_000, maxMessagesPerDestination: 10_000_000, maxBytes: 64 * 2 ** 30, maxBytesPerDestination: 64 * 2 ** 30 }) }
}

/** n appends with up to `window` in flight; resolves with messages per second. */
async function appendRate(outbox: OutboxStore, n: number, window: number): Promise<number> {
  const expiresAt = Date.now() + 7 * 24 * 3_600_000
  let started = 0
  let done = 0
  const t0 = performance.now()
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (started < n && started - done < window) {
        started++
        outbox.append({ destination: DEST, topic: 'bench.outbox', protocol: 'ms', payload: PAYLOAD, expiresAt }).then(() => {
          if (++done === n) resolve()
          else pump()
        }, reject)
      }
    }
    pump()
  })
  return n / ((performance.now() - t0) / 1000)
}

/** The record the outbox stores for one bench message in the default store (its byte form; an id of a 6-digit seq, as the bench's). */
const RECORD = Buffer.from(encodeRecordBinary(new RecordArena(), '0123456789abcdef-123456', 'bench.outbox', 'ms', Date.now(), PAYLOAD))

/** The baseline: one awaited put per message of the same stored record. */
async function putRate(store: LevelStore, n: number, round: number): Promise<number> {
  const value = RECORD
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await store.put(`base.${round}.${String(i).padStart(10, '0')}`, value)
  return n / ((performance.now() - t0) / 1000)
}

async function appends(): Promise<void> {
  const dir = tmp('outbox')
  const baseDir = tmp('outbox-base')
  try {
    const { storage, outbox } = await openLevel(dir)
    const base = new LevelStore({ dir: baseDir })
    await base.open()
    await appendRate(outbox, 10_000, WINDOW) // warm-up
    await putRate(base, 2_000, -1)
    const ours: number[] = []
    const baseline: number[] = []
    for (let r = 0; r < ROUNDS; r++) {
      gc()
      ours.push(await appendRate(outbox, N, WINDOW))
      gc()
      baseline.push(await putRate(base, BASE_N, r))
    }
    const stored = outbox.stats(DEST).messages
    await outbox.close()
    await storage.close()
    await base.close()
    if (stored !== 10_000 + ROUNDS * N) throw new Error(`the outbox holds ${stored} messages, expected ${10_000 + ROUNDS * N}`)
    const o = median(ours)
    const b = median(baseline)
    console.log(`(1) durable appends, 1 KiB payload, one destination, ${ROUNDS} interleaved rounds, medians`)
    console.log(`    outbox.append, default store (LevelDB, group commit), ${N.toLocaleString('en-US')} msgs, <= ${WINDOW} in flight`.padEnd(96) + fmtRate(o) + `   rounds: ${ours.map((x) => Math.round(x)).join(' ')}`)
    console.log(`    baseline: one awaited LevelStore.put per message of the same ${RECORD.length}-byte record, ${BASE_N.toLocaleString('en-US')} msgs`.padEnd(96) + fmtRate(b) + `   rounds: ${baseline.map((x) => Math.round(x)).join(' ')}`)
    console.log(`    goal >= ${RATE_GOAL.toLocaleString('en-US')} msg/s: ${o >= RATE_GOAL ? 'MET' : 'NOT MET'}; ratio to the baseline ${(o / b).toFixed(1)}x (goal >= ${RATIO_GOAL}x: ${o / b >= RATIO_GOAL ? 'MET' : 'NOT MET'})`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(baseDir, { recursive: true, force: true })
  }
}

async function kadFs(): Promise<void> {
  const dir = tmp('outbox-kadfs')
  try {
    const storage = new PlatformStorage(kadfs(dir + '/'))
    await storage.open()
    const outbox = await OutboxStore.open({ storage })
    const r = await appendRate(outbox, KADFS_N, 256)
    await outbox.close()
    console.log(`(2) the same appends into a kad-fs store (no batch: a file per message, written one by one), ${KADFS_N.toLocaleString('en-US')} msgs, <= 256 in flight`)
    console.log(`    ${fmtRate(r)}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Child mode: `fill <dir> <n>` or `open <dir>`; prints one JSON line. */
async function child(mode: string, dir: string, n: number): Promise<void> {
  if (mode === 'fill') {
    const { storage, outbox } = await openLevel(dir)
    const r = await appendRate(outbox, n, WINDOW)
    await outbox.close()
    await storage.close()
    console.log(JSON.stringify({ rate: r, rss: process.memoryUsage().rss }))
    return
  }
  const t0 = performance.now()
  const { storage, outbox } = await openLevel(dir)
  const openMs = performance.now() - t0
  gc()
  const rssOpen = process.memoryUsage().rss
  const first = await outbox.pending(DEST, { limit: 100 })
  const rssList = process.memoryUsage().rss
  const count = outbox.stats(DEST).messages
  await outbox.close()
  await storage.close()
  console.log(JSON.stringify({ openMs, rssOpen, rssList, count, listed: first.length, heap: process.memoryUsage().heapUsed }))
}

function runChild(args: string[]): Record<string, number> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: 1 << 20 })
  if (r.status !== 0) throw new Error(`child ${args[0]} failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, number>
}

async function memory(): Promise<void> {
  if (BIG <= 0) return
  const dir = tmp('outbox-big')
  try {
    const fill = runChild(['--child', 'fill', dir, String(BIG)])
    const open = runChild(['--child', 'open', dir])
    const reopen = runChild(['--child', 'open', dir]) // tables checked by the first open are not read again
    let bytes = 0
    for (const f of fs.readdirSync(path.join(dir, 'db'))) bytes += fs.statSync(path.join(dir, 'db', f)).size
    if (open.count !== BIG || open.listed !== 100) throw new Error(`the big outbox holds ${open.count}, listed ${open.listed}`)
    console.log(`(3) a ${BIG.toLocaleString('en-US')}-message outbox (1 KiB payloads, ${mib(bytes)} on disk), reopened in a fresh process`)
    console.log(`    filled at ${fmtRate(fill.rate ?? 0)}, RSS of the filling process at the end ${mib(fill.rss ?? 0)}`)
    console.log(`    open (file check + counters): ${((open.openMs ?? 0) / 1000).toFixed(2)} s; RSS after open ${mib(open.rssOpen ?? 0)}, after listing 100 pending ${mib(open.rssList ?? 0)}, heap ${mib(open.heap ?? 0)}`)
    console.log(`    open again (only files new since the last check are read): ${((reopen.openMs ?? 0) / 1000).toFixed(2)} s; RSS after open ${mib(reopen.rssOpen ?? 0)}`)
    const peak = Math.max(open.rssList ?? 0, open.rssOpen ?? 0, fill.rss ?? 0, reopen.rssList ?? 0)
    console.log(`    goal RSS < ${RSS_GOAL_MIB} MiB: ${peak < RSS_GOAL_MIB * 1048576 ? 'MET' : 'NOT MET'} (largest of the four: ${mib(peak)})`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const at = process.argv.indexOf('--child')
if (at >= 0) {
  await child(process.argv[at + 1] as string, process.argv[at + 2] as string, Number(process.argv[at + 3]))
} else {
  await appends()
  await kadFs()
  await memory()
}
