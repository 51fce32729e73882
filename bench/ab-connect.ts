// A/B of warm connects (two processes, TCP): the `warm-connect` case of the two-process bench
// (dial, first echo, close, one after another) for several builds, rounds interleaved across the
// variants (A B C, then C B A), each round AB_COUNT connects. Prints per variant the median (and
// p10) over rounds of each round's median connect + first echo time, the median of per-round
// ratios against the first mm-platform variant (`base`), and the CPU time of both processes (all
// threads, /proc/<pid>/task/*/schedstat) per connect. Variants as in ab-two-process.ts: `ss`,
// `tcp` (plain TCP), `new:0` (this tree's dist/), `dir:0` (a copy of another build's dist/).
//   AB_VARIANTS=/tmp/base:0,new:0,ss AB_ROUNDS=60 AB_COUNT=30 node --import tsx bench/ab-connect.ts
// AB_WIDE=1 prints every round; AB_PIN=1 pins each client to CPU 0 and each server to CPU 1
// (taskset). The first round is a warm-up and is dropped. Linux only (/proc).
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { buildChild } from './lib/two-process/build.js'
import type { RunResult } from './lib/two-process/protocol.js'
import { startVariant, type Pair } from './lib/two-process/variants.js'

const ROUNDS = Number(process.env['AB_ROUNDS'] ?? 10)
const COUNT = Number(process.env['AB_COUNT'] ?? 100)
const VARIANTS = (process.env['AB_VARIANTS'] ?? 'ss,new:0').split(',')
const PIN = process.env['AB_PIN'] === '1'

/** CPU time of all threads of a process, in ms (/proc/<pid>/task/<tid>/schedstat: ns on the CPU). */
function cpuMs(pid: number): number {
  let ns = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
    } catch {}
  }
  return ns / 1e6
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

const script = await buildChild()
const pairs: Pair[] = []
for (const v of VARIANTS) {
  const pair = await startVariant(v, script)
  if (PIN) {
    // Each process on its own core (what a quiet two-core machine gives them): the other's
    // wake-up then never preempts it. Other load on the machine still shares both cores.
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(pair.client.proc.pid)], { stdio: 'ignore' })
    execFileSync('taskset', ['-a', '-p', '-c', '1', String(pair.server.proc.pid)], { stdio: 'ignore' })
  }
  pairs.push(pair)
}
const load0 = loadavg().map((x) => x.toFixed(2)).join(' ')
const times = new Map<string, number[]>()
const cpu = new Map<string, number[]>()
const clientCpu = new Map<string, number[]>()
for (let round = 0; round <= ROUNDS; round++) {
  for (const p of round % 2 ? [...pairs].reverse() : pairs) {
    const pids = [p.client.proc.pid as number, p.server.proc.pid as number]
    const c0 = cpuMs(pids[0] as number)
    const t0 = pids.reduce((n, pid) => n + cpuMs(pid), 0)
    const r = (await p.client.ask({ type: 'run', case: 'warm-connect', seconds: 1, count: COUNT }, 120_000)) as unknown as RunResult
    const ms = pids.reduce((n, pid) => n + cpuMs(pid), 0) - t0
    const cms = cpuMs(pids[0] as number) - c0
    if (round === 0) continue
    times.set(p.name, [...(times.get(p.name) ?? []), r.value])
    cpu.set(p.name, [...(cpu.get(p.name) ?? []), (ms * 1000) / r.units])
    clientCpu.set(p.name, [...(clientCpu.get(p.name) ?? []), (cms * 1000) / r.units])
  }
}
console.log(`warm connect + first echo, ${ROUNDS} rounds of ${COUNT}, load ${load0} -> ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
const ref = times.has('ss') ? median(times.get('ss') as number[]) : NaN
// Per-round ratios against the first mm-platform variant (the baseline): rounds run back to
// back, so a burst of load hits both sides of a ratio alike.
const baseName = VARIANTS.find((v) => v !== 'ss' && v !== 'tcp')
const base = baseName ? (times.get(baseName) as number[]) : undefined
const wide = process.env['AB_WIDE'] === '1'
for (const [name, xs] of times) {
  const per = cpu.get(name) as number[]
  const ratio = base ? median(xs.map((x, i) => x / (base[i] as number))) : NaN
  const baseCpu = baseName ? (cpu.get(baseName) as number[]) : undefined
  const cpuRatio = baseCpu ? median(per.map((x, i) => x / (baseCpu[i] as number))) : NaN
  console.log(
    name.padEnd(22),
    `${median(xs).toFixed(3)} ms (p10 of rounds ${[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 10)]!.toFixed(3)})`,
    `${(median(xs) / ref).toFixed(2)}x ss,`,
    `${ratio.toFixed(3)}x base per round;`,
    `cpu/connect ${median(per).toFixed(0)} µs (client ${median(clientCpu.get(name) as number[]).toFixed(0)}), ${cpuRatio.toFixed(3)}x base per round`,
    wide ? `\n   ms [${xs.map((x) => x.toFixed(2)).join(' ')}]\n   cpu [${per.map((x) => x.toFixed(0)).join(' ')}]` : ''
  )
}
await Promise.all(pairs.flatMap((p) => [p.client.stop(), p.server.stop()]))
process.exit(0)
