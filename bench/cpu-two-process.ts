// CPU time per unit of the two-process cases, both processes, read from /proc (utime + stime of
// each child around the measured run): on a shared, loaded machine a process's CPU per round
// trip or per MB moves far less than its rate, so A/B comparisons of one peer's code (an env
// switch, or two builds of dist/) are done with this. Linux only.
//   node --import tsx bench/cpu-two-process.ts [case,...] [--peer mm-platform-udp] [--seconds 3] [--rounds 3]
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { buildChild } from './lib/two-process/build.js'
import { startClient, startServer, type Spawner } from './lib/two-process/processes.js'
import type { Case, PeerName, RunResult } from './lib/two-process/protocol.js'
import { fmt } from './lib/two-process/report.js'
import { median } from './lib/util.js'

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const peer = (flag('--peer') ?? 'mm-platform-udp') as PeerName
const cases = (args[0] && !args[0].startsWith('--') ? args[0] : 'echo64,bulk-cb').split(',') as Case[]
const SECONDS = Number(flag('--seconds') ?? 3)
const ROUNDS = Number(flag('--rounds') ?? 3)
const TICK_MS = 10 // USER_HZ = 100 on Linux

/** utime + stime of a process in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * TICK_MS
}

const script = await buildChild()
const spawner: Spawner = { script, execArgv: () => [] }
console.log(`CPU per unit, ${peer}, two processes, ${ROUNDS} rounds of ${SECONDS} s (median), load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
for (const c of cases) {
  const { child: server, setup } = await startServer(spawner, peer)
  const client = await startClient(spawner, peer, setup)
  const rows: Array<{ rate: number; server: number; client: number }> = []
  for (let r = 0; r <= ROUNDS; r++) {
    const s0 = cpuMs(server.proc.pid!)
    const c0 = cpuMs(client.proc.pid!)
    const res = (await client.ask({ type: 'run', case: c, seconds: SECONDS, count: 200 }, 180_000)) as unknown as RunResult
    const units = c.startsWith('bulk') ? res.units / 1e6 : res.units
    const per = c.startsWith('bulk') ? 1 : 1000 // ms per MB; µs per round trip
    if (r > 0) rows.push({ rate: res.value, server: ((cpuMs(server.proc.pid!) - s0) * per) / units, client: ((cpuMs(client.proc.pid!) - c0) * per) / units })
  }
  await client.stop()
  await server.stop()
  const unit = c.startsWith('bulk') ? 'ms/MB' : 'µs/rt'
  const m = (f: (x: (typeof rows)[number]) => number): number => median(rows.map(f))
  console.log(`${c}: rate ${fmt(m((x) => x.rate), 1)}; CPU ${unit}: server ${fmt(m((x) => x.server), 2)}, client ${fmt(m((x) => x.client), 2)}, both ${fmt(m((x) => x.server + x.client), 2)}  (rounds both: ${rows.map((x) => fmt(x.server + x.client, 1)).join('/')})`)
}
