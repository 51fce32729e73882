// Steps of a warm connect + first echo between two processes (TCP, durable sends, a MemoryStore,
// the bench's lifted admission bounds), over the last `traced` connects: for each mark (packets
// in and out, handshake steps, dial, accept, sessions, sends, socket events) the median µs since the client's send, and the median time spent in each socket
// event's handlers. Both processes on one clock (CLOCK_MONOTONIC).
//   node --import tsx bench/connect-steps.ts [connects=200] [traced=1]
//   FULL=n: also print the last n marks of both processes in order (what overlaps what: the
//   previous connection's close lands in the next connect).
// Tracing adds ~1 µs per mark; the marks of different connects are matched by name, so a mark
// that a connect lacks (n below `traced`) belongs to the previous connection's tail. A tool to
// compare two trees' critical paths (copy it into the other tree, run both in turn), not a figure.
// With traced=1 it is the timeline of one connect, step by step.
import { fork } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { Platform, MemoryStore, type Directory, type NodeInfo, type PlatformOptions } from '../src/index.js'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { Dialer } from '../src/connections/dial.js'
import { ServerHandshake } from '../src/curvecp/server-handshake.js'
import { ClientHandshake } from '../src/curvecp/client-handshake.js'
import { Sessions } from '../src/connections/sessions.js'
import { Receiver } from '../src/connections/receive.js'
import { Sender } from '../src/connections/send.js'
import { Delivery } from '../src/connections/delivery.js'
import { ConnectionManager } from '../src/connections/manager.js'

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
trace(Dialer.prototype, ['ensureChannel', 'dial', 'accept', 'acceptChannel'], 'dialer.')
trace(ServerHandshake.prototype, ['handleHello', 'handleInitiate'], 'hs.')
trace(ClientHandshake.prototype, ['hello', 'handleCookie', 'handleFirstServerMessage'], 'hs.')
trace(Sessions.prototype, ['attach'], 'sessions.')
trace(Receiver.prototype, ['listen'], 'receiver.')
trace(Sender.prototype, ['send', 'flush', 'writeNow'], 'sender.')
trace(Delivery.prototype, ['send'], 'delivery.')
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
const dur = new Map<string, number[]>()
{
  const emit = net.Socket.prototype.emit as Emit
  net.Socket.prototype.emit = function (this: unknown, e: string | symbol, ...args: unknown[]): boolean {
    if (!tracing || (e !== 'end' && e !== 'close' && e !== 'data' && e !== 'finish' && e !== 'connect')) return emit.call(this, e, ...args)
    const t = now()
    mark(`socket ${String(e)}`)
    try { return emit.call(this, e, ...args) } finally { const d = now() - t; dur.set(String(e), [...(dur.get(String(e)) ?? []), d]); mark(`socket ${String(e)} done`) }
  }
}
trace(Sessions.prototype, ['detach'], 'sessions.')
trace(ConnectionManager.prototype, ['disconnect'], 'mgr.')

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
    else if (m === 'dump') { process.send?.(log); console.log('server emit durations (median µs, n):', [...dur].map(([k, v]) => `${k} ${[...v].sort((a, b) => a - b)[v.length >> 1]!.toFixed(0)} n=${v.length}`).join('; ')) }
    else if (m === 'exit') void server.close().then(() => process.exit(0))
  })
  process.send?.((server.directory as Directory).getMyNodeInfo())
} else {
  const connects = Number(process.argv[2] ?? 200)
  const TRACED = Number(process.argv[3] ?? 1)
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
    if (i === connects - TRACED) {
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
  if (process.env['FULL']) {
    const tail = all.slice(-Number(process.env['FULL']))
    const z = tail[0]![0]
    for (const [t, s] of tail) console.log(`${(t - z).toFixed(0).padStart(6)}  ${s}`)
  }
  // split by 'client app: send'
  const per = new Map<string, number[]>()
  let t0 = 0
  let seen = new Set<string>()
  for (const [t, s] of all) {
    if (s === 'C client app: send') { t0 = t; seen = new Set() }
    if (seen.has(s)) continue
    seen.add(s)
    per.set(s, [...(per.get(s) ?? []), t - t0])
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
  console.log('median µs since the send over', TRACED, 'traced connects; C client, S server')
  for (const [s, xs] of [...per].sort((a, b) => med(a[1]) - med(b[1]))) console.log(`${med(xs).toFixed(0).padStart(6)}  ${s}  (n=${xs.length})`)
  console.log('client emit durations (median µs, n):', [...dur].map(([k, v]) => `${k} ${[...v].sort((a, b) => a - b)[v.length >> 1]!.toFixed(0)} n=${v.length}`).join('; '))
  times.sort((a, b) => a - b)
  const q = (x: number): string => ((times[Math.floor((times.length - 1) * x)] ?? 0) / 1000).toFixed(3)
  console.log(`warm connect + first echo, ${connects} connects: median ${q(0.5)} ms, p10 ${q(0.1)}, p90 ${q(0.9)}`)
  child.send('exit')
  await client.close()
  process.exit(0)
}
