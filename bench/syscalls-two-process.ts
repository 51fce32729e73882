// Counts the system calls per round trip (echo cases) or per MB (bulk) in both processes of a
// two-process case, with `strace -c -f` attached to each child for the measured command only.
// strace slows the processes down a lot: the counts are what this is for, not the rates.
//   node --import tsx bench/syscalls-two-process.ts [case,...] [--peer mm-platform]
import { spawn } from 'node:child_process'
import { buildChild } from './lib/two-process/build.js'
import { startClient, startServer, type Spawner } from './lib/two-process/processes.js'
import type { Case, PeerName, RunResult } from './lib/two-process/protocol.js'
import { fmt, table } from './lib/two-process/report.js'

const args = process.argv.slice(2)
const i = args.indexOf('--peer')
const peer = (i >= 0 ? args[i + 1] : 'mm-platform') as PeerName
const cases = (args[0] && !args[0].startsWith('--') ? args[0] : 'echo1,echo64,bulk-cb').split(',') as Case[]
const SECONDS = 2

/** Attaches strace to `pid` (all threads); resolves to its summary once stopped. */
function attach(pid: number): { ready: Promise<void>; stop: () => Promise<Map<string, number>> } {
  const st = spawn('strace', ['-c', '-f', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  st.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const ready = new Promise<void>((r) => setTimeout(r, 500))
  return {
    ready,
    stop: () =>
      new Promise((resolve) => {
        st.once('exit', () => {
          const counts = new Map<string, number>()
          for (const line of err.split('\n')) {
            const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line)
            if (m) counts.set(m[2]!, Number(m[1]))
          }
          resolve(counts)
        })
        st.kill('SIGINT')
      })
  }
}

const script = await buildChild()
const spawner: Spawner = { script, execArgv: () => [] }
const INTERESTING = ['writev', 'write', 'read', 'readv', 'sendmsg', 'sendmmsg', 'sendto', 'recvmsg', 'recvmmsg', 'recvfrom', 'epoll_wait', 'epoll_pwait', 'futex']
for (const c of cases) {
  const { child: server, setup } = await startServer(spawner, peer)
  const client = await startClient(spawner, peer, setup)
  await client.ask({ type: 'run', case: c, seconds: 0.5 }, 60_000) // session up, code warm
  const s = attach(server.proc.pid!)
  const k = attach(client.proc.pid!)
  await Promise.all([s.ready, k.ready])
  const r = (await client.ask({ type: 'run', case: c, seconds: SECONDS }, 120_000)) as unknown as RunResult
  const [sc, kc] = await Promise.all([s.stop(), k.stop()])
  await client.stop()
  await server.stop()
  const units = c.startsWith('bulk') ? r.units / 1e6 : r.units
  const unit = c.startsWith('bulk') ? 'MB' : 'round trip'
  const rows = [['syscall', `server per ${unit}`, `client per ${unit}`]]
  for (const name of INTERESTING) {
    const a = sc.get(name) ?? 0
    const b = kc.get(name) ?? 0
    if (a + b > 0) rows.push([name, fmt(a / units, 2), fmt(b / units, 2)])
  }
  console.log(`\n${peer} ${c} under strace: ${fmt(units, 1)} ${unit}s in ${fmt(r.elapsed, 1)} s`)
  console.log(table(rows))
}
