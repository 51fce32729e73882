// The UDP channel alone (CurveCP + the message layer, no connection layer) between two processes
// over loopback: bulk one way, then the sender's stream counters (retransmissions, timeouts and
// how many proved spurious) and both processes' CPU per MB. Under load, a stall of either process
// shows up here as timeouts; the in-process bench (udp-channel-cpu.ts) cannot show that.
//   UDP2_DIRS=/tmp/base,. UDP2_ROUNDS=4 UDP2_MB=32 node --import tsx bench/udp-channel-two-process.ts
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

interface Channel {
  write(b: Buffer): boolean
  on(e: string, f: (...a: never[]) => void): void
  once(e: string, f: (...a: never[]) => void): void
  resume(): void
  close(): Promise<void>
  stream: { stats: Record<string, number> }
}
interface Transport {
  listen(o: { host: string }): Promise<void>
  port: number
  onChannel(f: (c: Channel) => void): void
  dial(address: string, port: number, o: { remoteBoxId: string }): Channel
  close(): Promise<void>
}

async function transport(dir: string): Promise<{ make: () => Transport; boxId: (t: Transport) => string }> {
  const root = resolve(dir, 'dist/esm')
  const { UdpChannels } = (await import(`${root}/connections/udp-channels.js`)) as { UdpChannels: new (o: object) => Transport }
  const s = (await import(`${root}/crypto/sodium.js`)) as Record<string, (...a: unknown[]) => Buffer & { publicKey: Buffer; secretKey: Buffer }>
  const ids = new Map<Transport, string>()
  return {
    make: () => {
      const { publicKey, secretKey } = s['signKeyPair']!()
      const boxSecret = s['signSecretToBoxSecret']!(secretKey)
      const boxPublic = s['boxPublicFromSecret']!(boxSecret)
      const t = new UdpChannels({
        identity: {
          getSignId: () => publicKey.toString('base64'),
          getBoxId: () => boxPublic.toString('base64'),
          sign: (m: Uint8Array) => s['sign']!(m, secretKey),
          boxBeforeNm: (their: Uint8Array) => s['boxBeforeNm']!(their, boxSecret),
          load: async () => {}
        }
      })
      ids.set(t, boxPublic.toString('base64'))
      return t
    },
    boxId: (t) => ids.get(t) as string
  }
}

function cpuTicks(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] as string).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

if (process.env['UDP2_ROLE'] === 'server') {
  const { make, boxId } = await transport(process.env['UDP2_DIR'] as string)
  const t = make()
  await t.listen({ host: '127.0.0.1' })
  t.onChannel((c) => {
    let got = 0
    c.on('data', (d: Buffer) => {
      got += d.length
      if (got >= Number(process.env['UDP2_BYTES'])) {
        got = 0
        c.write(Buffer.from('k'))
      }
    })
    c.resume()
  })
  process.send!({ port: t.port, boxId: boxId(t) })
} else {
  const DIRS = (process.env['UDP2_DIRS'] ?? '.').split(',')
  const ROUNDS = Number(process.env['UDP2_ROUNDS'] ?? 4)
  const BYTES = Number(process.env['UDP2_MB'] ?? 32) * 1024 * 1024
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
  const out = DIRS.map(() => ({ cpu: [] as number[], rate: [] as number[], retx: [] as number[], timeouts: [] as number[], spurious: [] as number[] }))
  const runs = await Promise.all(
    DIRS.map(async (dir) => {
      const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, UDP2_ROLE: 'server', UDP2_DIR: dir, UDP2_BYTES: String(BYTES) }, execArgv: ['--import', 'tsx'] })
      const setup = await new Promise<{ port: number; boxId: string }>((r) => child.once('message', r as never))
      const { make } = await transport(dir)
      return { child, setup, make }
    })
  )
  for (let round = 0; round <= ROUNDS; round++) {
    for (let i = 0; i < DIRS.length; i++) {
      const { child, setup, make } = runs[i]!
      const t = make()
      const c = t.dial('127.0.0.1', setup.port, { remoteBoxId: setup.boxId })
      await new Promise((r) => c.once('secure', r))
      const done = new Promise((r) => c.once('data', r))
      c.resume()
      const chunk = Buffer.alloc(64 * 1024, 7)
      const t0 = cpuTicks(process.pid) + cpuTicks(child.pid as number)
      const w0 = performance.now()
      let sent = 0
      const pump = (): void => {
        while (sent < BYTES) {
          sent += chunk.length
          if (!c.write(chunk)) return
        }
      }
      c.on('drain', pump)
      pump()
      await done
      const ms = (cpuTicks(process.pid) + cpuTicks(child.pid as number) - t0) * 10
      const wall = performance.now() - w0
      const st = c.stream.stats
      await c.close()
      await t.close()
      if (round === 0) continue
      const o = out[i]!
      o.cpu.push(ms / (BYTES / 1e6))
      o.rate.push(BYTES / 1e3 / wall)
      o.retx.push(st['retransmissions'] as number)
      o.timeouts.push(st['timeouts'] as number)
      o.spurious.push(st['spuriousTimeouts'] as number)
    }
  }
  for (let i = 0; i < DIRS.length; i++) {
    const o = out[i]!
    console.log(
      DIRS[i]!.padEnd(20),
      `${median(o.rate).toFixed(1)} MB/s (${o.rate.map((x) => x.toFixed(0)).join('/')})`,
      ` cpu ${median(o.cpu).toFixed(2)} ms/MB (${o.cpu.map((x) => x.toFixed(1)).join('/')})`,
      ` retransmissions ${o.retx.join('/')}  timeouts ${o.timeouts.join('/')}  spurious ${o.spurious.join('/')}`
    )
  }
  for (const r of runs) r.child.kill()
  process.exit(0)
}
