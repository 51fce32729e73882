// HyperDHT (Hyperswarm's DHT): UDX (reliable streams over UDP) + Noise + secret-stream. A private
// testnet of 3 DHT nodes on 127.0.0.1 (`hyperdht/testnet`; never the public bootstrap), a server
// node listening on a key pair, and a client node that connects by public key. `connect` therefore
// times hyperdht's own path: DHT lookup of the key on the testnet, the Noise handshake relayed
// through a DHT node, then the direct UDX connection and the secret-stream header.
// Messages: secret-stream's own framing (one write = one message), as in the secret-stream case.
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import type { BenchCase, BenchPair, BenchServer } from '../pair.js'
import { secretStreamPair, serveSecretStream } from './secret-stream.js'
import { withTimeout } from '../util.js'

export const HYPERDHT = 'hyperdht'

export const hyperdht: BenchCase = {
  name: HYPERDHT,
  async start(): Promise<BenchServer> {
    const { default: HyperDHT } = await import('hyperdht')
    const { default: createTestnet } = await import('hyperdht/testnet')
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    const sockets = new Set<NoiseSecretStream>()
    const track = (s: NoiseSecretStream): void => {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    const serverNode = testnet.createNode()
    const keyPair = HyperDHT.keyPair()
    const server = serverNode.createServer((s) => {
      track(s)
      serveSecretStream(s)
    })
    await server.listen(keyPair)
    const clientNode = testnet.createNode()
    const clientKeys = HyperDHT.keyPair()

    return {
      async open(): Promise<BenchPair> {
        const s = clientNode.connect(keyPair.publicKey, { keyPair: clientKeys })
        track(s)
        const pair = secretStreamPair(s)
        if (!(await withTimeout(s.opened, 20_000, 'hyperdht connect'))) throw new Error('hyperdht connect failed')
        return pair
      },
      async close(): Promise<void> {
        for (const s of sockets) s.destroy()
        await server.close()
        await testnet.destroy() // destroys serverNode and clientNode too (createNode registers them)
      },
    }
  },
}
