// One end of the datagram bench (bench/sections/27-datagrams.ts), in its own process: a sink or
// an echo server, or a blaster or a pinger, over Node's `dgram` or udx-native's UDXSocket (the
// socket HyperDHT uses). Same datagrams (1,152 bytes: a full CurveCP Server Message), same
// buffers, same pacing for both; only the socket differs. Commands and results go over IPC.
//   child.ts <role: sink|echo|blast|ping> <socket: dgram|udx> [port] [seconds]
import dgram from 'node:dgram'
import { createRequire } from 'node:module'

export type SocketKind = 'dgram' | 'udx'
export const DATAGRAM_BYTES = 1152
/** Datagrams handed to the socket per turn of the event loop when blasting (as a stream's burst). */
export const BURST = 64
/** Round trips in flight when ping-ponging. */
export const IN_FLIGHT = 64
const BUFFER_BYTES = 4 * 1024 * 1024

interface Sock {
  send(b: Buffer, port: number, host: string): void
  onMessage(f: (b: Buffer, port: number, host: string) => void): void
  port(): number
  close(): Promise<void>
}

async function open(kind: SocketKind): Promise<Sock> {
  if (kind === 'dgram') {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: BUFFER_BYTES, sendBufferSize: BUFFER_BYTES })
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()))
    s.on('error', () => {})
    return {
      send: (b, port, host) => s.send(b, port, host),
      onMessage: (f) => s.on('message', (m, rinfo) => f(m, rinfo.port, rinfo.address)),
      port: () => s.address().port,
      close: () => new Promise((r) => s.close(() => r()))
    }
  }
  const UDX = createRequire(import.meta.url)('udx-native')
  const u = new UDX()
  const s = u.createSocket()
  s.bind(0, '127.0.0.1')
  s.setRecvBufferSize(BUFFER_BYTES)
  s.setSendBufferSize(BUFFER_BYTES)
  return {
    send: (b, port, host) => s.trySend(b, port, host),
    onMessage: (f) => s.on('message', (m: Buffer, r: { port: number; host: string }) => f(m, r.port, r.host)),
    port: () => s.address().port,
    close: () => s.close()
  }
}

const send = (m: Record<string, unknown>): void => void process.send?.(m)

async function main(): Promise<void> {
  const [role, kind, portArg, secondsArg] = process.argv.slice(2) as [string, SocketKind, string?, string?]
  const sock = await open(kind)
  const cpu0 = process.cpuUsage()
  if (role === 'sink' || role === 'echo') {
    let received = 0
    sock.onMessage((b, port, host) => {
      received++
      // The echo answers each datagram at once, a datagram of the same size.
      if (role === 'echo') sock.send(b, port, host)
    })
    process.on('message', async (m: { type: string }) => {
      if (m.type === 'count') {
        const cpu = process.cpuUsage(cpu0)
        send({ type: 'count', received, cpuMs: (cpu.user + cpu.system) / 1000 })
      } else if (m.type === 'exit') {
        await sock.close()
        process.exit(0)
      }
    })
    send({ type: 'ready', port: sock.port() })
    return
  }
  const port = Number(portArg)
  const ms = Number(secondsArg) * 1000
  const payload = Buffer.alloc(DATAGRAM_BYTES, 7)
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  let sent = 0
  let received = 0
  if (role === 'blast') {
    // Bursts of BURST datagrams, yielding to I/O between them, for `seconds`.
    await new Promise<void>((resolve) => {
      const burst = (): void => {
        for (let i = 0; i < BURST; i++) sock.send(payload, port, '127.0.0.1')
        sent += BURST
        if (performance.now() - t0 < ms) setImmediate(burst)
        else resolve()
      }
      burst()
    })
  } else {
    // IN_FLIGHT datagrams in flight; each reply sends the next. A datagram lost on loopback
    // (socket buffer full) would shrink the window: every 20 ms without a reply refills it.
    let lastHeard = performance.now()
    let inFlight = 0
    await new Promise<void>((resolve) => {
      let done = false
      sock.onMessage(() => {
        received++
        inFlight--
        lastHeard = performance.now()
        if (done) return
        if (lastHeard - t0 >= ms) {
          done = true
          clearInterval(refill)
          return resolve()
        }
        inFlight++
        sent++
        sock.send(payload, port, '127.0.0.1')
      })
      const fill = (): void => {
        while (inFlight < IN_FLIGHT) {
          inFlight++
          sent++
          sock.send(payload, port, '127.0.0.1')
        }
      }
      const refill = setInterval(() => {
        if (performance.now() - lastHeard > 20) fill()
      }, 20)
      fill()
    })
  }
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(c0)
  // Let the last datagrams land before the parent asks the other end for its count.
  await new Promise((r) => setTimeout(r, 100))
  send({ type: 'done', sent, received, seconds, cpuMs: (cpu.user + cpu.system) / 1000 })
  await sock.close()
  process.exit(0)
}

await main()
