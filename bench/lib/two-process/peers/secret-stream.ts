// @hyperswarm/secret-stream (Noise XX + libsodium secretstream) over loopback TCP. Each write is
// one message at the other end, so no framing of our own. Keys are made at process start, as an
// application with a persistent identity would have them.
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import SecretStream from '@hyperswarm/secret-stream'
import { once } from '../../util.js'
import { secretStreamPair } from '../../peers/secret-stream.js'
import { serveBytes } from '../protocol.js'
import { pipeConn, type Peer, type Pipe } from '../conn.js'

/** The in-process bench's pair over a stream, as a Pipe (the same calls; `send` is `write`). */
export function secretPipe(s: SecretStream): Pipe {
  const pair = secretStreamPair(s)
  return { write: (m) => pair.send(m), onMessage: (cb) => pair.onMessage(cb), drained: () => pair.drained(), close: () => pair.close() }
}

/** Serves the session protocol on an accepted stream (also used by the hyperdht peer). */
export function serveSecret(s: SecretStream, streams: Set<SecretStream>): void {
  streams.add(s)
  s.on('close', () => streams.delete(s))
  s.on('error', () => {})
  s.on('end', () => s.end())
  const onMsg = serveBytes((m) => s.write(m))
  s.on('data', onMsg)
}

export const secretStream: Peer = {
  async serve() {
    const keys = SecretStream.keyPair()
    const streams = new Set<SecretStream>()
    const server = net.createServer((sock) => {
      sock.setNoDelay(true)
      sock.on('error', () => {})
      serveSecret(new SecretStream(false, sock, { keyPair: keys }), streams)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return {
      setup: { peer: 'secret-stream', port: (server.address() as AddressInfo).port },
      sessions: () => streams.size,
      async close() {
        const closed = new Promise<void>((r) => server.close(() => r()))
        for (const s of streams) s.destroy()
        await closed
      }
    }
  },
  async client(setup) {
    const port = setup['port'] as number
    const keys = SecretStream.keyPair()
    return {
      async dial() {
        const sock = net.connect(port, '127.0.0.1')
        sock.setNoDelay(true)
        sock.on('error', () => {})
        const s = new SecretStream(true, sock, { keyPair: keys })
        s.on('error', () => {})
        const pipe = secretPipe(s)
        if (!(await s.opened)) throw new Error('secret-stream handshake failed')
        return pipeConn(pipe)
      },
      async close() {}
    }
  }
}
