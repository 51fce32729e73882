/**
 * A private BitTorrent Mainline DHT swarm on loopback (bittorrent-dht nodes with BEP 44 `verify`,
 * no public bootstrap, joined to each other with addNode), for tests and benchmarks.
 *
 *   node --import tsx scripts/mainline-swarm.ts [nodes=8]   # prints {"bootstrap":["127.0.0.1:PORT"]}, runs until SIGTERM
 */
import DHT from 'bittorrent-dht'
import { verify } from '../src/crypto/sodium.js'

export interface Swarm {
  nodes: DHT[]
  /** `host:port` of a few swarm nodes, to pass as `bootstrap`. */
  bootstrap: string[]
  close(): Promise<void>
}

/** A new swarm node on 127.0.0.1 that stores and verifies BEP 44 items. */
export async function swarmNode(bootstrap: string[] | false = false): Promise<DHT> {
  const dht = new DHT({ bootstrap, host: '127.0.0.1', verify: (s, m, k) => verify(s, m, k), maxValues: 100_000 })
  await new Promise<void>((resolve) => dht.listen(0, '127.0.0.1', () => resolve()))
  return dht
}

/**
 * Starts `n` nodes; each is introduced to `links` random earlier ones (and they to it), which
 * gives every routing table a start the way a real bootstrap would.
 */
export async function startSwarm(n: number, links = 8): Promise<Swarm> {
  const nodes: DHT[] = []
  for (let i = 0; i < n; i++) {
    const node = await swarmNode()
    const port = node.address().port
    for (let j = 0; j < Math.min(links, nodes.length); j++) {
      const peer = nodes[Math.floor(Math.random() * nodes.length)] as DHT
      node.addNode({ host: '127.0.0.1', port: peer.address().port })
      peer.addNode({ host: '127.0.0.1', port })
    }
    nodes.push(node)
  }
  // addNode pings to learn the node's id: wait until every table has someone in it.
  const deadline = Date.now() + 30_000
  while (n > 1 && nodes.some((d) => d.nodes.count() === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  return {
    nodes,
    bootstrap: nodes.slice(0, 3).map((d) => `127.0.0.1:${d.address().port}`),
    close: () => Promise.all(nodes.map((d) => new Promise<void>((r) => d.destroy(() => r())))).then(() => {})
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  startSwarm(Number(process.argv[2] ?? 8)).then((swarm) => {
    console.log(JSON.stringify({ bootstrap: swarm.bootstrap }))
    const stop = (): void => void swarm.close().then(() => process.exit(0))
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}
