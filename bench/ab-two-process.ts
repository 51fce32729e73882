// A/B of mm-platform builds in the two-process cases, on a shared machine: the same bench
// children (bench/lib/two-process/), rounds interleaved across the variants (A B C A B C), and
// beside each round's rate the CPU time of both processes (user + system, from /proc) per unit:
// ms per MB for bulk, µs per round trip for echo. Under load the rates swing with scheduling; the
// CPU per unit is steadier (it still includes the kernel's loopback work and IPC).
//   AB_VARIANTS=ss,new:1,/tmp/base:1,new:0 AB_CASES=bulk-cb,bulk,echo64,echo1 AB_ROUNDS=8 \
//     node --import tsx bench/ab-two-process.ts
// A variant is `ss` (secret-stream), or `dir:rt`: mm-platform from `dir` (`new`: this tree's
// dist/; else a directory holding a copy of package.json and dist/ of the build to compare, with
// node_modules linked to this tree's), rt = 1 for realtime sends (BENCH_MM_REALTIME), 0 for the
// default (the outbox); `dir:rt:udp` runs that build over UDP (peer mm-platform-udp), and `dht`
// is hyperdht (UDX), UDP's reference: `AB_VARIANTS=dht,/tmp/base:0:udp,new:0:udp`. Ratios are
// printed against `ss`, else `dht`. Linux only (/proc). The first round is a warm-up and is dropped; give
// rounds of a second or more (a fresh pair of processes takes a few seconds to warm up).
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { buildChild } from './lib/two-process/build.js'
import type { Case, RunResult } from './lib/two-process/protocol.js'
import { startVariant, type Pair } from './lib/two-process/variants.js'

const ROUNDS = Number(process.env['AB_ROUNDS'] ?? 5)
const SECONDS = Number(process.env['AB_SECONDS'] ?? 1)
const CASES = (process.env['AB_CASES'] ?? 'bulk-cb,echo64,echo1').split(',') as Case[]
const VARIANTS = (process.env['AB_VARIANTS'] ?? 'ss,new:0,new:1').split(',')

/** utime + stime of a process, in clock ticks (10 ms). */
function cpuTicks(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] as string).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

const script = await buildChild()
const pairs: Pair[] = []
for (const v of VARIANTS) pairs.push(await startVariant(v, script))
console.log('load', loadavg().map((x) => x.toFixed(2)).join(' '))
for (const c of CASES) {
  const rates = new Map<string, number[]>()
  const cpu = new Map<string, number[]>()
  for (let round = 0; round <= ROUNDS; round++) {
    for (const p of pairs) {
      const pids = [p.client.proc.pid as number, p.server.proc.pid as number]
      const t0 = pids.reduce((n, pid) => n + cpuTicks(pid), 0)
      const r = (await p.client.ask({ type: 'run', case: c, seconds: SECONDS }, 120_000)) as unknown as RunResult
      const ms = (pids.reduce((n, pid) => n + cpuTicks(pid), 0) - t0) * 10
      if (round === 0) continue
      rates.set(p.name, [...(rates.get(p.name) ?? []), r.value])
      cpu.set(p.name, [...(cpu.get(p.name) ?? []), c.startsWith('bulk') ? ms / (r.units / 1e6) : (ms * 1000) / r.units])
    }
  }
  const refName = rates.has('ss') ? 'ss' : 'dht'
  const ss = rates.has(refName) ? median(rates.get(refName) as number[]) : NaN
  for (const [name, xs] of rates) {
    const per = cpu.get(name) as number[]
    console.log(
      c.padEnd(8),
      name.padEnd(22),
      median(xs).toFixed(1).padStart(10),
      `${(median(xs) / ss).toFixed(2)}x ${refName}`,
      xs.map((x) => x.toFixed(0)).join('/'),
      ` cpu per ${c.startsWith('bulk') ? 'MB (ms)' : 'rt (µs)'}`,
      median(per).toFixed(2),
      per.map((x) => x.toFixed(1)).join('/')
    )
  }
}
console.log('load', loadavg().map((x) => x.toFixed(2)).join(' '))
await Promise.all(pairs.flatMap((p) => [p.client.stop(), p.server.stop()]))
process.exit(0)
