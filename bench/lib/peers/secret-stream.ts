// @hyperswarm/secret-stream (Noise XX handshake + libsodium secretstream) over a loopback TCP
// socket. secret-stream is already message-framed: each write is one encrypted message (3-byte
// length + 17 bytes of secretstream overhead) and arrives as one 'data' chunk, so no extra framing.
// Both sides use a fixed key pair, as an application with a persistent identity would.
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import SecretStream from '@hyperswarm/secret-stream'
import type { BenchCase, BenchPair, BenchServer } from '../pair.js'
import { serveSession } from '../pair.js'
import { once, withTimeout } from '../util.js'

export const SECRET_STREAM = 'secret-stream'

/** A BenchPair over a NoiseSecretStream (also used by the hyperdht case). */
export function secretStreamPair(s: SecretStream): BenchPair {
  let handler: (m: Buffer) => void = () => {}
  let needDrain = false
  s.on('data', (m: Buffer) => handler(m))
  s.on('drain', () => {
    needDrain = false
  })
  return {
    send(m) {
      const ok = s.write(m)
      if (!ok) needDrain = true
      return ok
    },
    onMessage(cb) {
      handler = cb
    },
    drained: () => (needDrain && !s.destroyed ? once(s, 'drain') : Promise.resolve()),
    close: () => endSecretStream(s),
  }
}

/** Serve the harness protocol on an accepted NoiseSecretStream. */
export function serveSecretStream(s: SecretStream): void {
  s.on('error', () => {})
  s.on('end', () => s.end())
  const onMsg = serveSession((m) => s.write(m))
  s.on('data', (m: Buffer) => {
    try {
      onMsg(m)
    } catch (err) {
      s.destroy(err as Error)
    }
  })
}

export async function endSecretStream(s: SecretStream, ms = 2000): Promise<void> {
  if (s.destroyed) return
  const closed = new Promise<void>((r) => s.once('close', () => r()))
  s.end()
  try {
    await withTimeout(closed, ms, 'secret-stream close')
  } catch {
    s.destroy()
  }
}

export const secretStream: BenchCase = {
  name: SECRET_STREAM,
  async start(): Promise<BenchServer> {
    const serverKeys = SecretStream.keyPair()
    const clientKeys = SecretStream.keyPair()
    const streams = new Set<SecretStream>()
    const track = (s: SecretStream): void => {
      streams.add(s)
      s.on('close', () => streams.delete(s))
      s.on('error', () => {})
    }
    const server = net.createServer((sock) => {
      sock.setNoDelay(true)
      sock.on('error', () => {})
      const s = new SecretStream(false, sock, { keyPair: serverKeys })
      track(s)
      serveSecretStream(s)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo

    return {
      async open(): Promise<BenchPair> {
        const sock = net.connect(port, '127.0.0.1')
        sock.setNoDelay(true)
        sock.on('error', () => {})
        const s = new SecretStream(true, sock, { keyPair: clientKeys })
        track(s)
        const pair = secretStreamPair(s)
        if (!(await s.opened)) throw new Error('secret-stream handshake failed')
        return pair
      },
      async close(): Promise<void> {
        const closed = new Promise<void>((r) => server.close(() => r()))
        for (const s of streams) s.destroy()
        await closed
      },
    }
  },
}
