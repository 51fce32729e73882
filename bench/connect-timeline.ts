// Timeline of one warm connect + first echo between two processes (TCP, durable sends, a
// MemoryStore, the bench's lifted admission bounds): where the ~1 ms goes, step by step, in both
// processes on one clock (CLOCK_MONOTONIC, shared by processes on one machine).
//   node --import tsx bench/connect-timeline.ts [connects=200]
// The client runs `connects` warm connects (send a 1 KiB JSON message to the server, which
// echoes it; then disconnect) and prints the median time; the last connect is traced: the
// channel's packets in and out, the handshake steps, the dial, the server's accept and the
// application's send and receive, each as µs since the client's send. Tracing wraps prototype
// methods of the source modules (run through tsx), so it adds ~1 µs per mark; the median is of
// untraced connects. Not a figure of the bench: a tool to see the critical path.
import { fork } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { Platform, MemoryStore, type Directory, type NodeInfo, type PlatformOptions } from '../src/index.js'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { Dialer } from '../src/connections/dial.js'

type Mark = [number, string]
const log: Mark[] = []
let tracing = false
const now = (): number => Number(process.hrtime.bigint()) / 1000
const mark = (what: string): void => {
  if (tracing) log.push([now(), what])
}

/** Wraps `names` of `proto` so that each call is marked (with the first argument's length, if any). */
function trace(proto: object, names: string[], prefix = ''): void {
  const p = proto as Record<string, (...args: unknown[]) => unknown>
  for (const name of names) {
    const f = p[name]
    if (typeof f !== 'function') continue
    p[name] = function (this: unknown, ...args: unknown[]) {
      const len = (args[0] as { length?: unknown } | undefined)?.length
      mark(`${prefix}${name}${typeof len === 'number' ? ` ${len}` : ''}`)
      return f.apply(this, args)
    }
  }
}
trace(TcpChannel.prototype, ['onPacket', 'sendPacket', 'sendSealed', 'open', 'deliverData', 'write', 'writev'], 'channel.')
trace(Dialer.prototype, ['ensureChannel', 'dial', 'accept'], 'dialer.')
type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean
/** Marks `event` when `proto` emits it. */
function traceEvent(proto: { emit: unknown }, event: string, what: string): void {
  const emit = proto.emit as Emit
  proto.emit = function (this: unknown, e: string | symbol, ...args: unknown[]): boolean {
    if (e === event) mark(what)
    return emit.call(this, e, ...args)
  }
}
traceEvent(net.Socket.prototype, 'connect', 'socket connected')
traceEvent(net.Server.prototype, 'connection', 'server: connection accepted')

function options(listen: boolean): PlatformOptions {
  return {
    storage: new MemoryStore(),
    tcp: listen ? { host: '127.0.0.1' } : false,
    udp: false,
    publishIntervalMs: 3_600_000,
    connections: { admission: { perAddress: 1_024, global: 4_096, ratePerAddress: 100_000, rateGlobal: 100_000 } }
  }
}

const TOPIC = 'timeline'
if (process.argv[2] === 'server') {
  const server = new Platform(options(true))
  await server.ready()
  server.messaging.on(`public.${TOPIC}`, (_t, sender, payload) => {
    mark('server app: message')
    server.messaging.send(TOPIC, sender, payload)
    mark('server app: echo sent')
  })
  process.on('message', (m: string) => {
    if (m === 'trace') tracing = true
    else if (m === 'dump') process.send?.(log)
    else if (m === 'exit') void server.close().then(() => process.exit(0))
  })
  process.send?.((server.directory as Directory).getMyNodeInfo())
} else {
  const connects = Number(process.argv[2] ?? 200)
  const child = fork(fileURLToPath(import.meta.url), ['server'], { execArgv: process.execArgv })
  const info = await new Promise<NodeInfo>((resolve) => child.once('message', (m) => resolve(m as NodeInfo)))
  const client = new Platform(options(false))
  await client.ready()
  client.messaging.send('transports.nodeInfo', 'local', info)
  let echoed: () => void = () => {}
  client.messaging.on(`public.${TOPIC}`, () => {
    mark('client app: echo')
    echoed()
  })
  const times: number[] = []
  for (let i = 0; i < connects; i++) {
    if (i === connects - 1) {
      child.send('trace')
      await new Promise((r) => setTimeout(r, 20))
      tracing = true
    }
    const t = now()
    const got = new Promise<void>((resolve) => (echoed = resolve))
    mark('client app: send')
    client.messaging.send(TOPIC, info.signId, { i, pad: 'x'.repeat(1000) })
    await got
    times.push(now() - t)
    await client.disconnect(info.signId)
  }
  child.send('dump')
  const serverLog = await new Promise<Mark[]>((resolve) => child.once('message', (m) => resolve(m as Mark[])))
  const all = [...log.map(([t, s]): Mark => [t, `C ${s}`]), ...serverLog.map(([t, s]): Mark => [t, `      S ${s}`])].sort((a, b) => a[0] - b[0])
  const t0 = all[0]?.[0] ?? 0
  console.log('µs since the send; C client, S server (the traced connect)')
  for (const [t, s] of all) console.log(`${(t - t0).toFixed(0).padStart(6)}  ${s}`)
  times.sort((a, b) => a - b)
  const q = (x: number): string => ((times[Math.floor((times.length - 1) * x)] ?? 0) / 1000).toFixed(3)
  console.log(`warm connect + first echo, ${connects} connects: median ${q(0.5)} ms, p10 ${q(0.1)}, p90 ${q(0.9)}`)
  child.send('exit')
  await client.close()
  process.exit(0)
}
