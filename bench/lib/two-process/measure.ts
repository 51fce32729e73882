// The measurements a client child runs on one Conn, on the parent's command. Every wait is bounded.
import { ACK_BYTES, BULK_MESSAGE, command, decodeTotal, jsonMessage, type RunCommand, type RunResult } from './protocol.js'
import type { Client, Conn } from './conn.js'
import { median, now, withTimeout } from '../util.js'

const OP_TIMEOUT = 30_000
const WINDOW_CB = 32
const PAYLOAD = Buffer.alloc(BULK_MESSAGE, 0x5a)

/** 64 KiB messages, 32 awaiting their delivery callback (or, for byte pipes, a per-message ack). */
async function bulkWithCallbacks(c: Conn, seconds: number): Promise<RunResult> {
  const native = c.sendWithCallback
  c.send(command(native ? 'n' : 'a'))
  const pending: Array<() => void> = []
  if (!native) {
    c.onBytes((m) => {
      if (m.byteLength !== ACK_BYTES) throw new Error('bulk-cb: unexpected message')
      pending.shift()!()
    })
  }
  const send = (cb: () => void): void => {
    if (native) native(PAYLOAD, (err) => (err ? fail(err) : cb()))
    else {
      pending.push(cb)
      c.send(PAYLOAD)
    }
  }
  let fail: (err: Error) => void = () => {}
  const t0 = now()
  const end = t0 + seconds * 1000
  let done = 0
  let inFlight = 0
  const finished = new Promise<void>((resolve, reject) => {
    fail = reject
    const onDone = (): void => {
      done++
      inFlight--
      if (now() < end) {
        inFlight++
        send(onDone)
      } else if (inFlight === 0) resolve()
    }
    for (let i = 0; i < WINDOW_CB; i++) {
      inFlight++
      send(onDone)
    }
  })
  await withTimeout(finished, OP_TIMEOUT + seconds * 1000, 'bulk-cb')
  const elapsed = (now() - t0) / 1000
  const bytes = done * BULK_MESSAGE
  return { type: 'result', case: 'bulk-cb', value: bytes / elapsed / 1e6, units: bytes, elapsed }
}

/** 64 KiB messages as fast as back-pressure allows; ends when the receiver's total covers all. */
async function bulk(c: Conn, seconds: number): Promise<RunResult> {
  c.send(command('s'))
  let sent = 0
  let flushed: (total: number) => void = () => {}
  c.onBytes((m) => {
    const total = decodeTotal(m)
    if (m.byteLength === ACK_BYTES + 1) flushed(total)
  })
  const t0 = now()
  const end = t0 + seconds * 1000
  while (now() < end) {
    for (let i = 0; i < 16; i++) {
      sent += BULK_MESSAGE
      if (!c.send(PAYLOAD)) {
        await withTimeout(c.drained(), OP_TIMEOUT, 'bulk drain')
        break
      }
    }
    // Let the socket write and acks come in (a byte pipe accepts far more than it can write).
    await new Promise((r) => setImmediate(r))
  }
  const all = new Promise<number>((r) => {
    flushed = r
  })
  c.send(command('f'))
  const total = await withTimeout(all, OP_TIMEOUT, 'bulk final ack')
  if (total !== sent) throw new Error(`bulk: receiver got ${total} bytes of ${sent}`)
  const elapsed = (now() - t0) / 1000
  return { type: 'result', case: 'bulk', value: sent / elapsed / 1e6, units: sent, elapsed }
}

/** 1 KiB JSON messages echoed, `depth` in flight. */
async function echo(c: Conn, seconds: number, depth: number): Promise<RunResult> {
  c.send(command('j'))
  let next = 0
  let expect = 0
  let inFlight = 0
  const t0 = now()
  const end = t0 + seconds * 1000
  const finished = new Promise<void>((resolve, reject) => {
    c.onJson((v) => {
      const seq = (v as { seq: number }).seq
      if (seq !== expect) return reject(new Error(`echo: got seq ${seq}, expected ${expect}`))
      expect++
      inFlight--
      if (now() < end) {
        inFlight++
        c.sendJson(jsonMessage(next++))
      } else if (inFlight === 0) resolve()
    })
    for (let i = 0; i < depth; i++) {
      inFlight++
      c.sendJson(jsonMessage(next++))
    }
  })
  await withTimeout(finished, OP_TIMEOUT + seconds * 1000, 'echo')
  const elapsed = (now() - t0) / 1000
  return { type: 'result', case: depth === 1 ? 'echo1' : 'echo64', value: expect / elapsed, units: expect, elapsed }
}

/** Send the JSON hello and one 1 KiB JSON message; resolves when its echo came back. */
export async function firstEcho(c: Conn): Promise<void> {
  const got = new Promise<void>((resolve) => c.onJson(() => resolve()))
  c.send(command('j'))
  c.sendJson(jsonMessage(0))
  await withTimeout(got, OP_TIMEOUT, 'first echo')
}

/** `count` connections one after another: dial, first echo, close; median ms of dial + echo. */
async function warmConnects(client: Client, count: number): Promise<RunResult> {
  const times: number[] = []
  const t0 = now()
  for (let i = 0; i < count; i++) {
    const t = now()
    const c = await withTimeout(client.dial(), OP_TIMEOUT, 'dial')
    await firstEcho(c)
    times.push(now() - t)
    await c.close()
  }
  return { type: 'result', case: 'warm-connect', value: median(times), units: count, elapsed: (now() - t0) / 1000 }
}

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n)

/** Runs one command; `conn` is the session kept between commands (reopened after warm-connect). */
export async function runCommand(client: Client, conn: () => Promise<Conn>, drop: () => Promise<void>, cmd: RunCommand): Promise<RunResult> {
  const c = cmd.case === 'warm-connect' ? undefined : await conn()
  const w0 = monoUs()
  const r = await run(client, c, drop, cmd)
  return { ...r, window: [w0, monoUs()] }
}

async function run(client: Client, c: Conn | undefined, drop: () => Promise<void>, cmd: RunCommand): Promise<RunResult> {
  switch (cmd.case) {
    case 'bulk-cb':
      return bulkWithCallbacks(c!, cmd.seconds)
    case 'bulk':
      return bulk(c!, cmd.seconds)
    case 'echo64':
      return echo(c!, cmd.seconds, 64)
    case 'echo1':
      return echo(c!, cmd.seconds, 1)
    case 'warm-connect':
      await drop()
      return warmConnects(client, cmd.count ?? 20)
  }
}
