// CPU per MB and per round trip of the UDP channel alone (CurveCP + the message layer, no
// connection layer above it), both ends in this one process over loopback, for builds side by
// side: rounds interleaved (A B A B), each round's process CPU (user + system, so the kernel's
// loopback work counts) over the bytes or round trips it moved. Steadier than two-process rates
// on a shared machine, and it isolates the transport from the outbox and the frames above it.
//   UDPCPU_DIRS=/tmp/base-a98,. UDPCPU_ROUNDS=6 node --import tsx bench/udp-channel-cpu.ts
// Each dir holds a build (dist/esm). Cases: bulk (8 MB one way), echo (UDPCPU_MSG bytes, default
// 1024; UDPCPU_DEPTH = 64 in flight); UDPCPU_BULK_ONLY=1, UDPCPU_ECHO_ONLY=1 (a short bulk first), UDPCPU_STATS=1: counters.
import { performance } from 'node:perf_hooks'
import { resolve } from 'node:path'
import { readFileSync } from 'node:fs'

const DIRS = (process.env['UDPCPU_DIRS'] ?? '.').split(',')
const ROUNDS = Number(process.env['UDPCPU_ROUNDS'] ?? 5)
const BULK_FULL = 8 * 1024 * 1024
const ECHOES = 8_000
/** Echoes in flight (UDPCPU_DEPTH, default 64). */
const DEPTH = Number(process.env['UDPCPU_DEPTH'] ?? 64)
/** Bytes per echoed message (UDPCPU_MSG, default 1024; 1100 is a 1 KiB payload with framing: two blocks). */
const MSG = Number(process.env['UDPCPU_MSG'] ?? 1024)

interface Channel {
  write(b: Buffer): boolean
  on(e: string, f: (...a: never[]) => void): void
  once(e: string, f: (...a: never[]) => void): void
  off(e: string, f: (...a: never[]) => void): void
  resume(): void
  close(): Promise<void>
}
interface Transport {
  listen(o: { host: string }): Promise<void>
  port: number
  onChannel(f: (c: Channel) => void): void
  dial(address: string, port: number, o: { remoteBoxId: string }): Channel
  close(): Promise<void>
}

async function load(dir: string): Promise<() => Promise<{ bulk: number; echo: number }>> {
  const root = resolve(dir, 'dist/esm')
  const { UdpChannels } = (await import(`${root}/connections/udp-channels.js`)) as { UdpChannels: new (o: object) => Transport }
  const s = (await import(`${root}/crypto/sodium.js`)) as Record<string, (...a: unknown[]) => Buffer & { publicKey: Buffer; secretKey: Buffer }>
  const identity = (): object => {
    const { publicKey, secretKey } = s['signKeyPair']!()
    const boxSecret = s['signSecretToBoxSecret']!(secretKey)
    const boxPublic = s['boxPublicFromSecret']!(boxSecret)
    return {
      getSignId: () => publicKey.toString('base64'),
      getBoxId: () => boxPublic.toString('base64'),
      sign: (m: Uint8Array) => s['sign']!(m, secretKey),
      boxBeforeNm: (their: Uint8Array) => s['boxBeforeNm']!(their, boxSecret),
      load: async () => {}
    }
  }
  return async () => {
    const serverId = identity() as { getBoxId(): string }
    const server = new UdpChannels({ identity: serverId })
    const client = new UdpChannels({ identity: identity() })
    await server.listen({ host: '127.0.0.1' })
    let serverChannel!: Channel
    const accepted = new Promise<void>((r) => server.onChannel((c) => ((serverChannel = c), r())))
    const c = client.dial('127.0.0.1', server.port, { remoteBoxId: serverId.getBoxId() })
    await new Promise((r) => c.once('secure', r))
    await accepted
    // bulk: client -> server, 64 KiB writes, back-pressure honoured.
    const BULK_BYTES = process.env['UDPCPU_ECHO_ONLY'] ? 1024 * 1024 : BULK_FULL
    let got = 0
    const chunk = Buffer.alloc(64 * 1024, 7)
    const errs0 = udpErrors()
    const t0 = process.cpuUsage()
    const w0 = performance.now()
    const done = new Promise<void>((r) => {
      serverChannel.on('data', (d: Buffer) => {
        got += d.length
        if (got === BULK_BYTES) r()
      })
    })
    serverChannel.resume()
    c.resume()
    let sent = 0
    const pump = (): void => {
      while (sent < BULK_BYTES) {
        sent += chunk.length
        if (!c.write(chunk)) return
      }
    }
    c.on('drain', pump)
    pump()
    await done
    const bulkCpu = cpuMs(t0)
    if (process.env['UDPCPU_STATS']) {
      const st = (c as unknown as { stream: { stats: Record<string, unknown> } }).stream.stats
      const rs = (serverChannel as unknown as { stream: { stats: Record<string, unknown> } }).stream.stats
      console.log(dir, `bulk ${(performance.now() - w0).toFixed(0)} ms`, 'sender', JSON.stringify(st), 'receiver dropped', JSON.stringify(rs['dropped']), 'rcvbuf errors', udpErrors() - errs0)
    }
    if (process.env['UDPCPU_BULK_ONLY']) {
      await c.close()
      await client.close()
      await server.close()
      return { bulk: bulkCpu / (BULK_BYTES / 1e6), echo: NaN }
    }
    // echo: the server writes back what it gets; 1 KiB messages, 64 in flight.
    serverChannel.on('data', (d: Buffer) => void serverChannel.write(d))
    let back = 0
    const msg = Buffer.alloc(MSG, 1)
    const out0 = (c as unknown as { stream: { stats: { messagesOut: number } } }).stream.stats.messagesOut
    const sout0 = (serverChannel as unknown as { stream: { stats: { messagesOut: number } } }).stream.stats.messagesOut
    const t1 = process.cpuUsage()
    const echoed = new Promise<void>((r) => {
      c.on('data', (d: Buffer) => {
        const before = Math.floor(back / MSG)
        back += d.length
        const now = Math.floor(back / MSG)
        for (let i = before; i < now && i + DEPTH < ECHOES; i++) c.write(msg)
        if (now >= ECHOES) r()
      })
    })
    for (let i = 0; i < DEPTH; i++) c.write(msg)
    await echoed
    const echoCpu = cpuMs(t1)
    if (process.env['UDPCPU_STATS']) {
      const d = process.cpuUsage(t1)
      const out = (c as unknown as { stream: { stats: { messagesOut: number } } }).stream.stats.messagesOut - out0
      const sout = (serverChannel as unknown as { stream: { stats: { messagesOut: number } } }).stream.stats.messagesOut - sout0
      console.log(dir, `echo: user ${(d.user / ECHOES).toFixed(1)} µs/rt, system ${(d.system / ECHOES).toFixed(1)} µs/rt, datagrams per rt ${(out / ECHOES).toFixed(2)} out, ${(sout / ECHOES).toFixed(2)} back`)
    }
    await c.close()
    await client.close()
    await server.close()
    return { bulk: bulkCpu / (BULK_BYTES / 1e6), echo: (echoCpu * 1000) / ECHOES }
  }
}

/** The kernel's count of datagrams dropped for a full receive buffer (all sockets). */
function udpErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'))
  const names = (lines[0] ?? '').split(' ')
  return Number((lines[1] ?? '').split(' ')[names.indexOf('RcvbufErrors')])
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since)
  return (d.user + d.system) / 1000
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const runs = await Promise.all(DIRS.map(load))
const results = DIRS.map(() => ({ bulk: [] as number[], echo: [] as number[] }))
const t = performance.now()
for (let round = 0; round <= ROUNDS; round++) {
  for (let i = 0; i < DIRS.length; i++) {
    const r = await runs[i]!()
    if (round === 0) continue // warm-up
    results[i]!.bulk.push(r.bulk)
    results[i]!.echo.push(r.echo)
  }
}
for (let i = 0; i < DIRS.length; i++) {
  const r = results[i]!
  console.log(
    DIRS[i]!.padEnd(24),
    `bulk ${median(r.bulk).toFixed(2)} ms/MB (${r.bulk.map((x) => x.toFixed(1)).join('/')})`,
    ` echo${DEPTH} ${median(r.echo).toFixed(1)} µs/rt (${r.echo.map((x) => x.toFixed(0)).join('/')})`
  )
}
console.log(`${((performance.now() - t) / 1000).toFixed(0)} s`)
process.exit(0)
