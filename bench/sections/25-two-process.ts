// The mode the goals of issue 12 are judged on: each end in its own process, as users run two
// nodes. For every peer a server child and a client child are forked; setup (ports, keys,
// nodeInfo) and commands go over Node's IPC channel, never over the measured one. Peers are set
// up the same way: plain TCP, @hyperswarm/secret-stream over TCP, mm-platform over TCP through its
// public API (the built package), and over UDP mm-platform (UDP only) beside hyperdht on a private
// testnet. Rounds are interleaved across peers (A B C A B C), so drift hits all alike; the first
// round of each case is a warm-up and is dropped. See bench/lib/two-process/ for the cases.
//
// `BENCH_SESSIONS=N` sets the idle sessions of the memory case (default 10,000);
// `BENCH_QUICK=1` runs short rounds (a smoke test, not figures); `BENCH_PARTS=tcp,udp,memory`
// (default all) runs only those parts.
import { cpus, loadavg } from 'node:os'
import { buildChild } from '../lib/two-process/build.js'
import { Child, startClient, startServer, type Spawner } from '../lib/two-process/processes.js'
import type { Case, MemoryReport, PeerName, RunResult, ServerSetup } from '../lib/two-process/protocol.js'
import { fmt, printTable, verdict, type Row } from '../lib/two-process/report.js'
import { exitWatchdog, now } from '../lib/util.js'

const QUICK = process.env['BENCH_QUICK'] === '1'
const PARTS = new Set((process.env['BENCH_PARTS'] ?? 'tcp,udp,memory').split(','))
const ROUNDS = QUICK ? 1 : 5
const SECONDS: Record<Exclude<Case, 'warm-connect'>, number> = QUICK
  ? { 'bulk-cb': 0.3, bulk: 0.3, echo64: 0.3, echo1: 0.3 }
  : { 'bulk-cb': 1.5, bulk: 1.5, echo64: 1, echo1: 1 }
const WARM_CONNECTS = QUICK ? 3 : 10
const COLD_PROCESSES = QUICK ? 2 : 7
const SESSIONS = Number(process.env['BENCH_SESSIONS'] ?? (QUICK ? 200 : 10_000))
/** A memory case that has not opened its sessions by then is reported as failed at that N. */
const OPEN_TIMEOUT_MS = 300_000

const script = await buildChild()
const spawner: Spawner = { script, execArgv: () => ['--expose-gc'] }
const errors: string[] = []
const fail = (what: string, err: unknown): void => {
  const msg = `${what}: ${err instanceof Error ? err.message : String(err)}`
  errors.push(msg)
  console.log(`  (failed) ${msg}`)
}

const CASES: Array<{ c: Exclude<Case, 'warm-connect'>; label: string; unit: string; digits: number }> = [
  { c: 'bulk-cb', label: 'bulk 64 KiB, 32 awaiting callback', unit: 'MB/s', digits: 1 },
  { c: 'bulk', label: 'bulk 64 KiB, no callbacks', unit: 'MB/s', digits: 1 },
  { c: 'echo64', label: '1 KiB JSON echo, 64 in flight', unit: 'rt/s', digits: 0 },
  { c: 'echo1', label: '1 KiB JSON echo, 1 in flight', unit: 'rt/s', digits: 0 }
]

interface Pair {
  peer: PeerName
  server: Child
  client: Child
  setup: ServerSetup
}

async function startPairs(peers: PeerName[]): Promise<Pair[]> {
  const pairs: Pair[] = []
  for (const peer of peers) {
    try {
      const { child: server, setup } = await startServer(spawner, peer)
      const client = await startClient(spawner, peer, setup)
      pairs.push({ peer, server, client, setup })
    } catch (err) {
      fail(`${peer} start`, err)
    }
  }
  return pairs
}

const emptyRow = (label: string, unit: string, digits: number, higherIsBetter: boolean): Row => ({ label, unit, digits, higherIsBetter, samples: new Map() })
const push = (row: Row, peer: string, x: number): void => {
  row.samples.set(peer, [...(row.samples.get(peer) ?? []), x])
}

/** Throughput cases and warm connects, rounds interleaved across the pairs. */
async function throughput(pairs: Pair[]): Promise<Row[]> {
  const rows: Row[] = []
  for (const { c, label, unit, digits } of CASES) {
    const row = emptyRow(label, unit, digits, true)
    for (let round = 0; round <= ROUNDS; round++) {
      for (const p of pairs) {
        try {
          const r = (await p.client.ask({ type: 'run', case: c, seconds: SECONDS[c] }, 120_000)) as unknown as RunResult
          if (round > 0) push(row, p.peer, r.value)
        } catch (err) {
          fail(`${p.peer} ${c}`, err)
        }
      }
    }
    rows.push(row)
  }
  const warm = emptyRow('warm connect + first echo (2nd+ in a process)', 'ms', 2, false)
  for (let round = 0; round <= ROUNDS; round++) {
    for (const p of pairs) {
      try {
        const r = (await p.client.ask({ type: 'run', case: 'warm-connect', seconds: 0, count: WARM_CONNECTS }, 120_000)) as unknown as RunResult
        if (round > 0) push(warm, p.peer, r.value)
      } catch (err) {
        fail(`${p.peer} warm-connect`, err)
      }
    }
  }
  rows.push(warm)
  return rows
}

/** Fresh client processes, one per sample, interleaved across the peers. */
async function cold(pairs: Pair[]): Promise<Row[]> {
  const start = emptyRow('cold: process start -> first echo answered', 'ms', 1, false)
  const first = emptyRow('cold: 1st connect + first echo, modules loaded', 'ms', 2, false)
  const spawn = emptyRow('cold: spawn -> result, seen by the parent', 'ms', 1, false)
  for (let i = 0; i < COLD_PROCESSES; i++) {
    for (const p of pairs) {
      const t = now()
      const child = new Child(script, ['cold', p.peer, JSON.stringify(p.setup)], [], `${p.peer} cold`)
      try {
        const r = await child.next(60_000)
        push(spawn, p.peer, now() - t)
        push(start, p.peer, r['sinceStart'] as number)
        push(first, p.peer, r['connect'] as number)
      } catch (err) {
        fail(`${p.peer} cold`, err)
      }
      await child.stop()
    }
  }
  return [start, first, spawn]
}

/** RSS of a fresh server process before and after `n` idle sessions, and of the client side. */
async function memory(peer: PeerName, n: number): Promise<{ server: number; client: number; n: number } | undefined> {
  const { child: server, setup } = await startServer(spawner, peer)
  const client = new Child(script, ['memclient', peer, JSON.stringify(setup), String(n)], ['--expose-gc', '--max-old-space-size=8192'], `${peer} memclient`)
  try {
    await client.next(OPEN_TIMEOUT_MS)
    const s0 = (await server.ask({ type: 'memory' })) as unknown as MemoryReport
    const c0 = (await client.ask({ type: 'memory' })) as unknown as MemoryReport
    const opened = await client.ask({ type: 'open' }, OPEN_TIMEOUT_MS)
    await new Promise((r) => setTimeout(r, 1000))
    const s1 = (await server.ask({ type: 'memory' })) as unknown as MemoryReport
    const c1 = (await client.ask({ type: 'memory' })) as unknown as MemoryReport
    const k = opened['sessions'] as number
    if (s1.sessions !== k) throw new Error(`the client opened ${k} sessions but the server holds ${s1.sessions}`)
    return { server: (s1.rss - s0.rss) / k, client: (c1.rss - c0.rss) / k, n: k }
  } catch (err) {
    fail(`${peer} memory at ${n} sessions`, err)
    return undefined
  } finally {
    await client.stop(30_000)
    await server.stop(30_000)
  }
}

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ')
console.log(`two processes per peer (server child + client child), loopback; ${cpus().length} cores; ${new Date().toISOString()}`)
console.log(`load average at start: ${load()} (a shared machine: figures are noisy, compare ratios within one run)`)
console.log(`medians of ${ROUNDS} interleaved rounds after a warm-up round; MB = 10^6 bytes; cold: ${COLD_PROCESSES} fresh processes per peer`)
console.log('byte pipes (plain TCP, secret-stream, hyperdht) acknowledge each message in the application for "awaiting callback", and stringify/parse JSON themselves\n')

// ---- TCP ----
const TCP: PeerName[] = ['plain-tcp', 'secret-stream', 'mm-platform']
let tcpRows: Row[] = []
if (PARTS.has('tcp')) {
  const tcpPairs = await startPairs(TCP)
  tcpRows = [...(await throughput(tcpPairs)), ...(await cold(tcpPairs))]
  await Promise.all(tcpPairs.flatMap((p) => [p.client.stop(), p.server.stop()]))
  console.log(`### TCP (load ${load()})`)
  printTable(tcpRows, TCP, 'mm-platform', ['secret-stream', 'plain-tcp'])
}

// ---- UDP ----
const UDP: PeerName[] = ['hyperdht', 'mm-platform-udp']
let udpRows: Row[] = []
if (PARTS.has('udp')) {
  const udpPairs = await startPairs(UDP)
  udpRows = await throughput(udpPairs)
  await Promise.all(udpPairs.flatMap((p) => [p.client.stop(), p.server.stop()]))
  console.log(`\n### UDP (hyperdht: private testnet in the server process; load ${load()})`)
  printTable(udpRows, UDP, 'mm-platform-udp', ['hyperdht'])
}

// ---- memory per idle session ----
const mem = new Map<PeerName, { server: number; client: number; n: number }>()
if (PARTS.has('memory')) console.log(`\n### memory per idle session (RSS delta of the process holding the sessions / sessions; load ${load()})`)
for (const peer of PARTS.has('memory') ? TCP : []) {
  const m = await memory(peer, SESSIONS)
  if (m) {
    mem.set(peer, m)
    console.log(`  ${peer}: ${m.n} idle sessions: server ${fmt(m.server / 1024, 1)} KiB/session, client ${fmt(m.client / 1024, 1)} KiB/session${peer.startsWith('mm') ? ' (one client node per session, made before the baseline)' : ''}`)
  }
}

// ---- goals (issue 12) ----
const row = (rows: Row[], label: string): Row | undefined => rows.find((r) => r.label.startsWith(label))
const SS = 'secret-stream'
const MM = 'mm-platform'
console.log(`\n### goals (issue 12; two processes, ratios within this run; load ${load()})`)
const goals = [
  verdict({ text: 'bulk 64 KiB with callbacks >= 1.3x secret-stream', row: row(tcpRows, 'bulk 64 KiB, 32'), ours: MM, ref: SS, factor: 1.3 }),
  verdict({ text: '1 KiB JSON echo, 64 in flight >= 1.2x secret-stream', row: row(tcpRows, '1 KiB JSON echo, 64'), ours: MM, ref: SS, factor: 1.2 }),
  verdict({ text: '1 KiB JSON echo, 1 in flight >= 1.2x secret-stream', row: row(tcpRows, '1 KiB JSON echo, 1 '), ours: MM, ref: SS, factor: 1.2 }),
  verdict({ text: 'cold (process start -> first echo) <= 0.7x secret-stream', row: row(tcpRows, 'cold: process'), ours: MM, ref: SS, factor: 0.7 }),
  verdict({ text: 'cold (1st connect + echo, modules loaded) <= 0.7x secret-stream', row: row(tcpRows, 'cold: 1st'), ours: MM, ref: SS, factor: 0.7 }),
  verdict({ text: 'warm connect + first echo <= 0.5x secret-stream', row: row(tcpRows, 'warm connect'), ours: MM, ref: SS, factor: 0.5 }),
  verdict({ text: 'UDP bulk with callbacks >= 1.0x hyperdht', row: row(udpRows, 'bulk 64 KiB, 32'), ours: 'mm-platform-udp', ref: 'hyperdht', factor: 1 }),
  verdict({ text: 'UDP bulk without callbacks >= 1.0x hyperdht', row: row(udpRows, 'bulk 64 KiB, no'), ours: 'mm-platform-udp', ref: 'hyperdht', factor: 1 }),
  verdict({ text: 'UDP 1 KiB JSON echo, 64 in flight >= 1.0x hyperdht', row: row(udpRows, '1 KiB JSON echo, 64'), ours: 'mm-platform-udp', ref: 'hyperdht', factor: 1 })
]
const m = mem.get(MM)
if (!PARTS.has('memory')) goals.push(undefined)
else if (m) {
  const kib = m.server / 1024
  const ok = kib <= 32 && m.n >= 10_000
  goals.push(ok)
  console.log(`  memory per idle session <= 32 KiB with 10,000 sessions (RSS): ${fmt(kib, 1)} KiB at ${m.n} -> ${ok ? 'met' : `MISSED${kib > 32 ? ` (${fmt(kib / 32, 2)}x over)` : ''}${m.n < 10_000 ? ` (only ${m.n} sessions)` : ''}`}`)
} else {
  goals.push(false)
  console.log('  memory per idle session: no figure -> missed')
}
console.log(`  ${goals.filter((g) => g === true).length} of ${goals.filter((g) => g !== undefined).length} met`)
if (errors.length) console.log(`\nfailures:\n  ${errors.join('\n  ')}`)
process.exitCode = errors.length ? 1 : 0
exitWatchdog()
