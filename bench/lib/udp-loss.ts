// Loss tolerance of our UDP stream: one-way throughput through a seeded lossy socket wrapper
// (no netem here), at several loss rates, each way dropping the same fraction of datagrams.
import { UdpChannels as UdpTransport } from '../../dist/esm/connections/udp-channels.js'
import { Identity } from '../../dist/esm/identity/identity.js'
import { PlatformStorage } from '../../dist/esm/storage/platform-storage.js'
import { MemoryStore } from '../../dist/esm/storage/memory-store.js'
import { lossyLink } from '../../test/helpers/udp-lossy.js'

function identity(): Identity {
  return new Identity(new PlatformStorage(new MemoryStore()))
}

/** MB/s to move `bytes` one way with `loss` dropped each way; throws if it takes over `timeoutMs`. */
export async function throughputWithLoss(loss: number, bytes = 8 * 1024 * 1024, timeoutMs = 60_000): Promise<number> {
  const serverId = identity()
  const server = new UdpTransport({ identity: serverId })
  const link = lossyLink({ loss, seed: 7 })
  const client = new UdpTransport({ identity: identity(), wrapSocket: link.wrap })
  try {
    let received = 0
    let done!: () => void
    const finished = new Promise<void>((resolve) => (done = resolve))
    server.onChannel((channel) => {
      channel.on('data', (chunk: Buffer) => {
        received += chunk.length
        if (received >= bytes) done()
      })
      channel.resume()
    })
    await server.listen({ host: '127.0.0.1', port: 0 })
    const channel = client.dial('127.0.0.1', server.endpoint.port, { remoteBoxId: serverId.getBoxId(), remoteSignId: serverId.getSignId() })
    await new Promise<void>((resolve, reject) => {
      channel.once('secure', () => resolve())
      channel.once('close', (err?: Error) => reject(err ?? new Error('closed during the handshake')))
    })
    const chunk = Buffer.alloc(64 * 1024, 1)
    const t0 = performance.now()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`loss ${loss}: not done in ${timeoutMs} ms (${received} bytes)`)), timeoutMs)
    })
    const send = (async () => {
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        if (!channel.write(chunk)) await new Promise<void>((resolve) => channel.once('drain', () => resolve()))
      }
      await finished
    })()
    try {
      await Promise.race([send, timeout])
    } finally {
      clearTimeout(timer)
    }
    return bytes / ((performance.now() - t0) / 1000) / 1e6
  } finally {
    await Promise.all([client.close(), server.close()])
  }
}
