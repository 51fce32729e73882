// Datagrams alone, two processes: Node's `dgram` against udx-native's UDXSocket (the native
// socket under HyperDHT), to decide which socket carries our CurveCP packets (issue 12: "if
// Node's dgram is the wall, measure a native UDP socket with batched sends before deciding").
// No crypto, no stream: 1,152-byte datagrams (a full CurveCP Server Message) on loopback.
// - blast: one process sends bursts of 64 datagrams per event-loop turn for the round's time; the
//   other counts what arrives. Reported: datagrams delivered per second, and CPU per datagram on
//   each side (process.cpuUsage, so noise from other processes counts less than in wall time).
// - ping-pong: 64 datagrams in flight; the echo answers each at once; each answer sends the next.
// Rounds alternate the sockets (A B A B); the first round of each case is a warm-up, dropped.
// `BENCH_QUICK=1` runs short rounds.
import { fork, type ChildProcess } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadavg } from 'node:os'
import { fmt, table } from '../lib/two-process/report.js'
import { median, withTimeout, exitWatchdog } from '../lib/util.js'
import type { SocketKind } from '../lib/datagrams/child.js'

const QUICK = process.env['BENCH_QUICK'] === '1'
const ROUNDS = QUICK ? 2 : 5
const SECONDS = QUICK ? 0.5 : 1.5
const CHILD = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'datagrams', 'child.ts')
const KINDS: SocketKind[] = ['dgram', 'udx']

type Msg = { type: string } & Record<string, number>

function start(args: string[]): { proc: ChildProcess; next: () => Promise<Msg> } {
  const proc = fork(CHILD, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const inbox: Msg[] = []
  let waiting: ((m: Msg) => void) | undefined
  proc.on('message', (m: Msg) => (waiting ? (waiting(m), (waiting = undefined)) : inbox.push(m)))
  const next = (): Promise<Msg> => withTimeout(inbox.length ? Promise.resolve(inbox.shift()!) : new Promise<Msg>((r) => (waiting = r)), 60_000, `datagram child ${args.join(' ')}`)
  return { proc, next }
}

interface Round {
  rate: number
  senderUs: number
  receiverUs: number
  loss: number
}

async function round(kind: SocketKind, c: 'blast' | 'ping'): Promise<Round> {
  const server = start([c === 'blast' ? 'sink' : 'echo', kind])
  try {
    const { port } = await server.next()
    const client = start([c, kind, String(port), String(SECONDS)])
    const done = await client.next()
    server.proc.send({ type: 'count' })
    const count = await server.next()
    await new Promise((r) => client.proc.once('exit', r))
    const units = c === 'blast' ? count['received']! : done['received']!
    return {
      rate: units / done['seconds']!,
      senderUs: (done['cpuMs']! * 1000) / units,
      receiverUs: (count['cpuMs']! * 1000) / units,
      loss: c === 'blast' ? 1 - count['received']! / done['sent']! : 1 - done['received']! / done['sent']!
    }
  } finally {
    server.proc.send({ type: 'exit' })
    await new Promise((r) => server.proc.once('exit', r))
  }
}

console.log(`Datagrams alone, two processes, loopback: Node dgram vs udx-native UDXSocket; 1,152-byte datagrams; ${ROUNDS} rounds of ${SECONDS} s after a warm-up, medians; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`)
const rows: string[][] = [['case', 'dgram', 'udx-native', 'udx / dgram']]
const samples: string[] = []
for (const c of ['blast', 'ping'] as const) {
  const got = new Map<SocketKind, Round[]>(KINDS.map((k) => [k, []]))
  for (let r = 0; r <= ROUNDS; r++) {
    for (const k of KINDS) {
      const x = await round(k, c)
      if (r > 0) got.get(k)!.push(x)
    }
  }
  const m = (k: SocketKind, f: (x: Round) => number): number => median(got.get(k)!.map(f))
  const unit = c === 'blast' ? 'datagrams/s delivered' : 'round trips/s, 64 in flight'
  const line = (label: string, f: (x: Round) => number, digits: number): string[] => [label, fmt(m('dgram', f), digits), fmt(m('udx', f), digits), `${fmt(m('udx', f) / m('dgram', f), 2)}x`]
  rows.push(line(`${c}: ${unit}`, (x) => x.rate, 0))
  rows.push(line(`${c}: sender CPU µs per ${c === 'blast' ? 'datagram' : 'round trip'}`, (x) => x.senderUs, 2))
  rows.push(line(`${c}: receiver CPU µs per ${c === 'blast' ? 'datagram' : 'round trip'}`, (x) => x.receiverUs, 2))
  rows.push(line(`${c}: lost`, (x) => x.loss * 100, 1))
  for (const k of KINDS) samples.push(`  ${c} ${k}: ${got.get(k)!.map((x) => fmt(x.rate, 0)).join('/')}`)
}
console.log(table(rows))
console.log('samples (rounds, in run order):')
for (const s of samples) console.log(s)
console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
exitWatchdog()
