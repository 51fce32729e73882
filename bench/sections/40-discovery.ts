// Discovery at scale and on a LAN:
// - our Kademlia service: N real platforms on loopback (scripts/dht-sim.ts; CurveCP over UDP, one
//   socket per node, as 1,000 nodes in one process would pass a 20,000 fd limit over TCP), lookups of random
//   nodes from random nodes: success, hops, time, memory per node (goal: 100%, median <= 4 hops);
// - beside it, a private bittorrent-dht swarm of the same size (scripts/mainline-swarm.ts): BEP 44
//   get of one stored mutable item from random nodes: success, time, memory per node;
// - mDNS discovery latency in a network namespace: from the start of a second `mm-platform start`
//   to its first message delivered to the first node (goal: under 1 s).
// `BENCH_DHT_NODES` (default 1000) and `BENCH_DHT_LOOKUPS` (default 500) change the scale.
// The simulation runs on the sources (tsx), as scripts/dht-sim.ts does.
import { createHash } from 'node:crypto'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type DHT from 'bittorrent-dht'
import { simulate, IDLE_CLOSE_MS } from '../../scripts/dht-sim.js'
import { startSwarm } from '../../scripts/mainline-swarm.js'
import { signKeyPair, sign } from '../../src/crypto/sodium.js'
import { bep44SigningBytes } from '../../src/services/mainline/pkarr-record.js'
import { controlCall } from '../../src/cli/control-client.js'
import { exitWatchdog } from '../lib/util.js'

const N = Number(process.env.BENCH_DHT_NODES ?? 1000)
const LOOKUPS = Number(process.env.BENCH_DHT_LOOKUPS ?? 500)
const ms = (x: number): string => `${x.toFixed(1)} ms`
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN
let failed = false

console.log(`Kademlia (ours, over CurveCP sessions) vs bittorrent-dht (BEP 44 get), ${N} nodes each on loopback, ${LOOKUPS} lookups\n`)
const kad = await simulate({ nodes: N, lookups: LOOKUPS, joinBatch: 25, transport: 'udp', log: (l) => process.stderr.write(`  kademlia: ${l}\n`) })
global.gc?.()

async function mainlineSwarm(): Promise<{ ok: number; times: number[]; memKiB: number; joinS: number }> {
  global.gc?.()
  const before = process.memoryUsage()
  const t0 = Date.now()
  const swarm = await startSwarm(N)
  const joinS = (Date.now() - t0) / 1000
  global.gc?.()
  const after = process.memoryUsage()
  const memKiB = (after.heapUsed + after.external - before.heapUsed - before.external) / N / 1024
  const kp = signKeyPair()
  const v = Buffer.from('a stored item')
  await new Promise<void>((resolve, reject) =>
    (swarm.nodes[0] as DHT).put({ k: kp.publicKey, v, seq: 1, sig: sign(bep44SigningBytes(1, v), kp.secretKey) }, (err) => (err ? reject(err) : resolve()))
  )
  const target = createHash('sha1').update(kp.publicKey).digest()
  let ok = 0
  const times: number[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next++ < LOOKUPS) {
      const node = swarm.nodes[1 + Math.floor(Math.random() * (N - 1))] as DHT
      const t = performance.now()
      const r = await new Promise<DHT.GetResult | null>((resolve) => node.get(target, { cache: false }, (err, res) => resolve(err ? null : res)))
      times.push(performance.now() - t)
      if (r?.v && Buffer.from(r.v).equals(v)) ok++
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  await swarm.close()
  return { ok, times, memKiB, joinS }
}
const bt = await mainlineSwarm()

const rows = [
  ['', 'success', 'hops median/p95', 'lookup median', 'lookup p95', 'memory/node', 'join all'],
  ['mm-platform kademlia', `${((kad.succeeded / LOOKUPS) * 100).toFixed(1)}%`, `${kad.hopsMedian}/${kad.hopsP95}`, ms(kad.lookupMsMedian), ms(kad.lookupMsP95), `${kad.memoryPerNodeKiB.toFixed(0)} KiB`, `${kad.joinSeconds.toFixed(1)} s`],
  ['bittorrent-dht BEP 44 get', `${((bt.ok / LOOKUPS) * 100).toFixed(1)}%`, 'n/a', ms(quantile(bt.times, 0.5)), ms(quantile(bt.times, 0.95)), `${bt.memKiB.toFixed(0)} KiB`, `${bt.joinS.toFixed(1)} s`]
]
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
for (const r of rows) console.log('  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  '))
console.log(`  (memory/node: JS heap + external growth / nodes, after GC; ours is a whole platform per node: sockets, sessions, directory; its RSS growth: ${kad.rssPerNodeKiB.toFixed(0)} KiB/node. Simulated nodes close sessions idle for ${IDLE_CLOSE_MS / 1000} s)`)
const kadOk = kad.succeeded === LOOKUPS && kad.hopsMedian <= 4
console.log(`  goal: 100% success and median <= 4 hops: ${kadOk ? 'met' : 'MISSED'}`)
if (!kadOk) failed = true

// mDNS discovery latency, in a private network namespace (needs root and ip(8)).
function latency(): Promise<void> | void {
  const ns = `mmbench${process.pid}`
  try {
    execFileSync('ip', ['netns', 'add', ns])
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
  } catch {
    console.log('\nmDNS discovery latency: skipped (needs root and ip netns)')
    return
  }
  const cli = path.resolve('bin/mm-platform.js')
  const children: ChildProcess[] = []
  const dirs: string[] = []
  const startNode = (): { child: ChildProcess; dir: string; out: () => string } => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-bench-mdns-'))
    dirs.push(dir)
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, cli, 'start', '--data-dir', dir, '--log-level', 'warn', '--no-kademlia'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    let out = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d))
    return { child, dir, out: () => out }
  }
  const waitFor = async (f: () => boolean, limit = 20_000): Promise<void> => {
    const end = Date.now() + limit
    while (!f()) {
      if (Date.now() > end) throw new Error('timed out')
      await new Promise((r) => setTimeout(r, 5))
    }
  }
  return (async () => {
    const found: number[] = []
    const delivered: number[] = []
    const booted: number[] = []
    try {
      const a = startNode()
      await waitFor(() => /^signId {2}\S+$/m.test(a.out()))
      const signA = (a.out().match(/^signId {2}(\S+)$/m) as RegExpMatchArray)[1] as string
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now()
        const b = startNode()
        await waitFor(() => /^control /m.test(b.out()))
        booted.push(Date.now() - t0)
        // Ask B to send to A as soon as its control socket is up: the lookup waits on mDNS.
        const r = await controlCall(b.dir, { cmd: 'send', destination: signA, topic: 'bench.hello', payload: i, timeoutMs: 10_000 })
        if (!r.ok) throw new Error(String(r.error))
        delivered.push(Date.now() - t0)
        await waitFor(() => b.out().includes(`found   ${signA} via mdns`))
        found.push(Date.now() - t0)
        b.child.kill('SIGINT')
        await new Promise((r) => b.child.once('exit', r))
      }
      const med = (xs: number[]): number => quantile(xs, 0.5)
      console.log(`\nmDNS discovery latency (network namespace, 5 runs, medians): second node up (control socket) ${med(booted)} ms after its start; its first message delivered to the first node ${med(delivered)} ms after its start (${med(delivered) - med(booted)} ms after it was up)`)
      console.log(`  goal: first message delivered under 1 s after start: ${med(delivered) < 1000 ? 'met' : 'MISSED'} (runs: ${delivered.join(', ')} ms)`)
    } catch (err) {
      failed = true
      console.log(`\nmDNS discovery latency: failed: ${err instanceof Error ? err.message : String(err)}`)
    } finally {
      for (const c of children) c.kill('SIGKILL')
      try {
        execFileSync('ip', ['netns', 'del', ns])
      } catch {
        // gone
      }
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
    }
  })()
}
await latency()

process.exitCode = failed ? 1 : 0
exitWatchdog()
