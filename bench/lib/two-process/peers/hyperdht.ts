// HyperDHT (UDX + Noise + secret-stream). The server process runs a private 3-node testnet on
// 127.0.0.1 (`hyperdht/testnet`, never the public bootstrap) and a server node; the client process
// makes its own DHT node bootstrapped from that testnet and connects by public key.
import { createRequire } from 'node:module'
import HyperDHT from 'hyperdht'
import type SecretStream from '@hyperswarm/secret-stream'
import { withTimeout } from '../../util.js'
import { secretPipe, serveSecret } from './secret-stream.js'
import { pipeConn, type Peer } from '../conn.js'

// hyperdht has no exports map, so an ES module cannot name its testnet file without '.js' (which
// its types do not declare); require it, as CommonJS users do.
const createTestnet = createRequire(import.meta.url)('hyperdht/testnet') as typeof import('hyperdht/testnet').default

export const hyperdht: Peer = {
  async serve() {
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    const streams = new Set<SecretStream>()
    // On loopback the server is reachable: say so, so that clients connect to it directly as to a
    // public server. Left 'firewalled' (the default), a client dialling from another process
    // tries to holepunch between two firewalled loopback nodes and aborts (HOLEPUNCH_ABORTED).
    const node = testnet.createNode({ firewalled: false })
    const keyPair = HyperDHT.keyPair()
    const server = node.createServer((s) => serveSecret(s, streams))
    await server.listen(keyPair)
    return {
      setup: { peer: 'hyperdht', bootstrap: testnet.bootstrap, publicKey: keyPair.publicKey.toString('hex') },
      sessions: () => streams.size,
      async close() {
        for (const s of streams) s.destroy()
        await server.close()
        await testnet.destroy()
      }
    }
  },
  async client(setup) {
    const node = new HyperDHT({ bootstrap: setup['bootstrap'] as Array<{ host: string; port: number }>, host: '127.0.0.1', ephemeral: true })
    const keyPair = HyperDHT.keyPair()
    const remote = Buffer.from(setup['publicKey'] as string, 'hex')
    const streams = new Set<SecretStream>()
    return {
      async dial() {
        const s = node.connect(remote, { keyPair })
        streams.add(s)
        s.on('close', () => streams.delete(s))
        s.on('error', () => {})
        const pipe = secretPipe(s)
        if (!(await withTimeout(s.opened, 20_000, 'hyperdht connect'))) throw new Error('hyperdht connect failed')
        return pipeConn(pipe)
      },
      async close() {
        for (const s of streams) s.destroy()
        await node.destroy()
      }
    }
  }
}
