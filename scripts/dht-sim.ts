/**
 * Kademlia simulation on loopback: N real platforms (TCP on 127.0.0.1, CurveCP sessions, memory
 * stores) in this process, each with the Kademlia service, each bootstrapped from one node that
 * joined before it; then lookups of random nodes from random nodes.
 * Reports lookup success, median and p95 hops, lookup time and memory per node.
 *
 *   node --import tsx scripts/dht-sim.ts [nodes=200] [lookups=200] [tcp|udp]
 */
import { Platform } from '../src/platform/platform.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import { Kademlia } from '../src/services/kademlia/kademlia.js'
import type { NodeInfo } from '../src/platform/node-info.js'

/** Idle sessions of the simulated nodes close after this long. */
export const IDLE_CLOSE_MS = 10_000

export interface SimOptions {
  nodes: number
  lookups: number
  /** Nodes joining at once. */
  joinBatch?: number
  /** Lookups running at once. */
  lookupConcurrency?: number
  /**
   * Transport between the nodes. 'tcp' costs a file descriptor per session end (both ends are in
   * this process); 'udp' shares one socket per node, which 1,000 nodes need under a 20,000 fd limit.
   */
  transport?: 'tcp' | 'udp'
  log?: (line: string) => void
}

export interface SimResult {
  nodes: number
  lookups: number
  succeeded: number
  successRate: number
  hopsMedian: number
  hopsP95: number
  lookupMsMedian: number
  lookupMsP95: number
  joinSeconds: number
  /** Growth of JS heap + external memory (buffers) / nodes, KiB, after a GC when run with --expose-gc. */
  memoryPerNodeKiB: number
  /** Growth of the resident set / nodes, KiB (includes sockets' kernel-side buffers not, allocator slack yes). */
  rssPerNodeKiB: number
  rpcTimeouts: number
}

interface SimNode {
  platform: Platform
  dht: Kademlia
  nodeInfo: NodeInfo
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

async function startNode(bootstrap: NodeInfo[], transport: 'tcp' | 'udp'): Promise<SimNode> {
  const platform = new Platform({
    storage: new MemoryStore(),
    // Sessions idle for IDLE_CLOSE_MS close (5 minutes by default): N nodes in one process would
    // otherwise keep ~N x 100 sessions alive, and their keepalives would take the CPU.
    connections: { timings: { idleCloseMs: IDLE_CLOSE_MS } },
    tcp: transport === 'tcp' ? { host: '127.0.0.1' } : false,
    udp: transport === 'udp' ? { host: '127.0.0.1' } : false
  })
  await platform.ready()
  const nodeInfo = platform.directory.getMyNodeInfo?.() as NodeInfo
  const dht = new Kademlia({ platform, bootstrap })
  await new Promise<void>((resolve) => dht.once('ready', resolve))
  return { platform, dht, nodeInfo }
}

/** Runs one simulation; closes every node before resolving. */
export async function simulate(options: SimOptions): Promise<SimResult> {
  const log = options.log ?? (() => {})
  const joinBatch = options.joinBatch ?? 20
  global.gc?.()
  const before = process.memoryUsage()
  const started = Date.now()
  const transport = options.transport ?? 'tcp'
  const nodes: SimNode[] = [await startNode([], transport)]
  while (nodes.length < options.nodes) {
    const n = Math.min(joinBatch, options.nodes - nodes.length)
    const batch = await Promise.all(
      Array.from({ length: n }, () => startNode([(nodes[Math.floor(Math.random() * nodes.length)] as SimNode).nodeInfo], transport))
    )
    nodes.push(...batch)
    if (nodes.length % 100 < joinBatch) log(`joined ${nodes.length}/${options.nodes}`)
  }
  const joinSeconds = (Date.now() - started) / 1000
  global.gc?.()
  const after = process.memoryUsage()
  const memoryPerNodeKiB = (after.heapUsed + after.external - before.heapUsed - before.external) / nodes.length / 1024
  const rssPerNodeKiB = (after.rss - before.rss) / nodes.length / 1024

  const hops: number[] = []
  const times: number[] = []
  let succeeded = 0
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < options.lookups) {
      next++
      const from = nodes[Math.floor(Math.random() * nodes.length)] as SimNode
      let to = from
      while (to === from) to = nodes[Math.floor(Math.random() * nodes.length)] as SimNode
      const t0 = performance.now()
      const r = await from.dht.findNode(to.nodeInfo.signId)
      times.push(performance.now() - t0)
      if (r.nodeInfo?.signId === to.nodeInfo.signId) {
        succeeded++
        hops.push(r.hops)
      }
    }
  }
  await Promise.all(Array.from({ length: options.lookupConcurrency ?? 8 }, worker))
  const rpcTimeouts = nodes.reduce((n, x) => n + x.dht.stats.rpcTimeouts, 0)
  for (const n of nodes) await n.dht.close()
  await Promise.all(nodes.map((n) => n.platform.close()))
  hops.sort((a, b) => a - b)
  times.sort((a, b) => a - b)
  return {
    nodes: nodes.length,
    lookups: options.lookups,
    succeeded,
    successRate: succeeded / options.lookups,
    hopsMedian: quantile(hops, 0.5),
    hopsP95: quantile(hops, 0.95),
    lookupMsMedian: quantile(times, 0.5),
    lookupMsP95: quantile(times, 0.95),
    joinSeconds,
    memoryPerNodeKiB,
    rssPerNodeKiB,
    rpcTimeouts
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const nodes = Number(process.argv[2] ?? 200)
  const lookups = Number(process.argv[3] ?? 200)
  const transport = process.argv[4] === 'udp' ? 'udp' : 'tcp'
  simulate({ nodes, lookups, transport, log: (l) => console.error(l) }).then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (err) => {
      console.error(err)
      process.exitCode = 1
    }
  )
}
