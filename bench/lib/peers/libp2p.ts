// js-libp2p 3: TCP + Noise + Yamux, one custom protocol stream per session, 4-byte length prefix
// framing on that stream. Two libp2p nodes in this process (server and client), loopback only, no
// discovery, no services. Every `open` dials a new connection (`force: true`), so `connect` times a
// TCP connect + multistream-select + Noise XX + Yamux + protocol negotiation.
//
// Node 20: libp2p 3 calls Promise.withResolvers (Node >= 22), so ../polyfill.js is loaded before
// libp2p (libp2p is imported lazily, in `start`). Back-pressure: wait for the stream's 'drain'
// event; its `onDrain()` keeps returning the first, already resolved promise, so a sender awaiting
// it never waits again and the write buffer grows without bound.
import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import type { BenchCase, BenchPair, BenchServer } from '../pair.js'
import { serveSession } from '../pair.js'
import { LengthPrefixDecoder, asBuffer, frameHeader } from '../framing.js'
import { withTimeout } from '../util.js'

export const LIBP2P = 'libp2p'
const PROTOCOL = '/mm-bench/1.0.0'

function sendFramed(stream: Stream, msg: Buffer): boolean {
  return stream.send(new Uint8ArrayList(frameHeader(msg.byteLength), msg))
}

function onMessages(stream: Stream, cb: (m: Buffer) => void): void {
  const dec = new LengthPrefixDecoder(cb)
  stream.addEventListener('message', (evt) => {
    const data = evt.data
    if (data instanceof Uint8Array) dec.push(asBuffer(data))
    else for (const chunk of data) dec.push(asBuffer(chunk))
  })
}

function drained(stream: Stream): Promise<void> {
  if (!stream.writableNeedsDrain) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const ok = (): void => {
      stream.removeEventListener('close', fail)
      resolve()
    }
    const fail = (): void => {
      stream.removeEventListener('drain', ok)
      reject(new Error('libp2p stream closed while waiting for drain'))
    }
    stream.addEventListener('drain', ok, { once: true })
    stream.addEventListener('close', fail, { once: true })
  })
}

async function createNode(listen: string[]): Promise<Libp2p> {
  await import('../polyfill.js')
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }] = await Promise.all([
    import('libp2p'),
    import('@libp2p/tcp'),
    import('@chainsafe/libp2p-noise'),
    import('@chainsafe/libp2p-yamux'),
  ])
  return createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The defaults (5 inbound connections per second per host, 10 pending upgrades) would reject
    // the benchmark's back-to-back connects; everything else stays at libp2p's defaults.
    connectionManager: { inboundConnectionThreshold: 1_000_000, maxIncomingPendingConnections: 1000, maxConnections: 10_000 },
  })
}

export const libp2p: BenchCase = {
  name: LIBP2P,
  async start(): Promise<BenchServer> {
    const server = await createNode(['/ip4/127.0.0.1/tcp/0'])
    await server.handle(
      PROTOCOL,
      (stream) => {
        const onMsg = serveSession((m) => sendFramed(stream, m))
        onMessages(stream, (m) => {
          try {
            onMsg(m)
          } catch (err) {
            stream.abort(err as Error)
          }
        })
        stream.addEventListener('remoteCloseWrite', () => {
          stream.close().catch(() => {})
        })
      },
      { maxInboundStreams: 4096 },
    )
    const client = await createNode([])
    const addr = server.getMultiaddrs()[0]
    if (!addr) throw new Error('libp2p server has no listen address')

    return {
      async open(): Promise<BenchPair> {
        const conn = await client.dial(addr, { force: true })
        const stream = await conn.newStream(PROTOCOL)
        let handler: (m: Buffer) => void = () => {}
        onMessages(stream, (m) => handler(m))
        return {
          send: (m) => sendFramed(stream, m),
          onMessage: (cb) => {
            handler = cb
          },
          drained: () => drained(stream),
          close: async () => {
            try {
              await withTimeout(stream.close(), 2000, 'libp2p stream close')
            } catch {
              stream.abort(new Error('close timed out'))
            }
            await conn.close().catch(() => conn.abort(new Error('close failed')))
          },
        }
      },
      async close(): Promise<void> {
        await client.stop()
        await server.stop()
      },
    }
  },
}
