/**
 * The datagram socket under the UDP endpoint: whole datagrams to and from any address. An
 * interface, so that tests can wrap it (loss, capture) and the endpoint never sees node:dgram.
 */
import dgram from 'node:dgram'
import type dns from 'node:dns'
import { createRequire } from 'node:module'
import net from 'node:net'
import { TransportError } from '../errors.js'

/** Socket buffers we ask the kernel for (it caps them at net.core.[rw]mem_max). */
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

/** What the endpoint needs of a socket: whole datagrams. A test wraps it to lose some. */
export interface DatagramSocket {
  send(packet: Buffer, port: number, address: string): void
  onMessage(listener: (packet: Buffer, port: number, address: string) => void): void
  address(): { address: string; port: number }
  close(): Promise<void>
}

/** dgram's lookup: an IPv4 literal answers at once; a name (a bind host) goes to dns.lookup. */
function literalLookup(address: string, options: dns.LookupOneOptions, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  // The address of the previous datagram is known to be a literal: no regex per datagram.
  if (address === lastLiteral) return callback(null, address, 4)
  if (net.isIPv4(address)) {
    lastLiteral = address
    callback(null, address, 4)
  } else loadDns().lookup(address, options, callback)
}
let lastLiteral = ''

/**
 * node:dns, loaded on the first name to look up (a bind host that is a name): loading it costs a
 * fresh process ~1 ms of CPU on import, and every address we send to is a literal. The CommonJS
 * build defines import.meta.url as __filename (scripts/build.mjs).
 */
let dnsModule: typeof dns | undefined
const loadDns = (): typeof dns => (dnsModule ??= createRequire(import.meta.url)('node:dns') as typeof dns)

/** Binds a UDP (IPv4) socket. */
export function bindUdpSocket(host: string, port: number, bufferBytes = UDP_SOCKET_BUFFER_BYTES): Promise<DatagramSocket> {
  // Every address we send to is an IPv4 literal (the endpoint checks them), so the name lookup
  // dgram makes per datagram answers at once: the default one defers each send to a nextTick.
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: bufferBytes, sendBufferSize: bufferBytes, lookup: literalLookup })
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close()
      reject(new TransportError('ERR_TRANSPORT', `cannot bind udp ${host}:${port}: ${err.message}`, { cause: err }))
    }
    socket.once('error', onError)
    socket.bind({ address: host, port }, () => {
      socket.off('error', onError)
      // A send error (e.g. ICMP unreachable) is the network's business: the stream retries.
      socket.on('error', () => {})
      let closed = false
      let closing: Promise<void> | undefined
      resolve({
        send(packet, p, address) {
          if (!closed) socket.send(packet, p, address)
        },
        onMessage(listener) {
          socket.on('message', (msg, rinfo) => listener(msg, rinfo.port, rinfo.address))
        },
        address() {
          const a = socket.address()
          return { address: a.address, port: a.port }
        },
        close() {
          closed = true
          closing ??= new Promise((r) => socket.close(() => r()))
          return closing
        }
      })
    })
  })
}

