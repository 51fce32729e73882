// Plain loopback TCP (node:net), 4-byte length prefix framing, no encryption: the physical limit.
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { BenchCase, BenchPair, BenchServer } from '../pair.js'
import { serveSession } from '../pair.js'
import { LengthPrefixDecoder, frameHeader } from '../framing.js'
import { once, withTimeout } from '../util.js'

export const PLAIN_TCP = 'plain-tcp'

/** Send one framed message: header + body in one writev, no copy. */
export function sendFramed(sock: net.Socket, msg: Buffer): boolean {
  sock.cork()
  sock.write(frameHeader(msg.byteLength))
  const ok = sock.write(msg)
  sock.uncork()
  return ok
}

/** Wire `sock` as a message pipe; batches the writes made while handling one chunk. */
export function attach(sock: net.Socket, onMsg: (m: Buffer) => void): void {
  sock.setNoDelay(true)
  const dec = new LengthPrefixDecoder(onMsg)
  sock.on('data', (chunk: Buffer) => {
    sock.cork()
    try {
      dec.push(chunk)
    } finally {
      sock.uncork()
    }
  })
}

export async function closeSocket(sock: net.Socket, ms = 2000): Promise<void> {
  if (sock.destroyed) return
  const closed = new Promise<void>((r) => sock.once('close', () => r()))
  sock.end()
  try {
    await withTimeout(closed, ms, 'tcp socket close')
  } catch {
    sock.destroy()
  }
}

export const plainTcp: BenchCase = {
  name: PLAIN_TCP,
  async start(): Promise<BenchServer> {
    const sockets = new Set<net.Socket>()
    const track = (s: net.Socket): void => {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    const server = net.createServer((sock) => {
      track(sock)
      const onMsg = serveSession((m) => sendFramed(sock, m))
      attach(sock, (m) => {
        try {
          onMsg(m)
        } catch (err) {
          sock.destroy(err as Error)
        }
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo

    return {
      async open(): Promise<BenchPair> {
        const sock = net.connect(port, '127.0.0.1')
        track(sock)
        let handler: (m: Buffer) => void = () => {}
        attach(sock, (m) => handler(m))
        await once(sock, 'connect')
        return {
          send: (m) => sendFramed(sock, m),
          onMessage: (cb) => {
            handler = cb
          },
          drained: () => (sock.writableNeedDrain ? once(sock, 'drain') : Promise.resolve()),
          close: () => closeSocket(sock),
        }
      },
      async close(): Promise<void> {
        const closed = new Promise<void>((r) => server.close(() => r()))
        for (const s of sockets) s.destroy()
        await closed
      },
    }
  },
}
