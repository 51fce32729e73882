// Plain loopback TCP, 4-byte length prefix, no encryption: the physical limit.
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { once } from '../../util.js'
import { attach, closeSocket, sendFramed } from '../../peers/plain-tcp.js'
import { serveBytes } from '../protocol.js'
import { pipeConn, type Peer, type Pipe } from '../conn.js'

export function tcpPipe(sock: net.Socket): Pipe {
  let handler: (m: Buffer) => void = () => {}
  attach(sock, (m) => handler(m))
  return {
    write: (m) => sendFramed(sock, m),
    onMessage: (cb) => {
      handler = cb
    },
    drained: () => (sock.writableNeedDrain ? once(sock, 'drain') : Promise.resolve()),
    close: () => closeSocket(sock)
  }
}

export const plainTcp: Peer = {
  async serve() {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((sock) => {
      sockets.add(sock)
      sock.on('close', () => sockets.delete(sock))
      sock.on('error', () => {})
      sock.on('end', () => sock.end())
      const onMsg = serveBytes((m) => sendFramed(sock, m))
      attach(sock, onMsg)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return {
      setup: { peer: 'plain-tcp', port: (server.address() as AddressInfo).port },
      sessions: () => sockets.size,
      async close() {
        const closed = new Promise<void>((r) => server.close(() => r()))
        for (const s of sockets) s.destroy()
        await closed
      }
    }
  },
  async client(setup) {
    const port = setup['port'] as number
    return {
      async dial() {
        const sock = net.connect(port, '127.0.0.1')
        sock.on('error', () => {})
        const pipe = tcpPipe(sock)
        await once(sock, 'connect')
        return pipeConn(pipe)
      },
      async close() {}
    }
  }
}
