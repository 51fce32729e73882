/**
 * Closing a TCP connection (src/transports/tcp.ts): what we queued is flushed, then FIN, and the
 * socket is destroyed if the peer does not finish within 2 s. Nothing read after close() is used,
 * so a peer that floods and never reads must not keep us reading (a buffer per read) at its rate
 * until then; a peer that reads still gets everything we queued and a prompt, graceful close.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { TcpListener, TCP_MAX_PACKET_BYTES } from '../src/transports/tcp.js'
import type { PacketSocket } from '../src/transports/packet-socket.js'
import { delay, waitUntil } from './helpers/index.js'
import { drainOr } from './helpers/adversarial-flood.js'

const MiB = 1024 * 1024

/** A listener and a raw client connected to it; the server's PacketSocket and its net.Socket. */
async function connected(t: TestContext): Promise<{ client: net.Socket; server: PacketSocket; raw: net.Socket }> {
  let server: PacketSocket | undefined
  const listener = new TcpListener((s) => (server = s))
  await listener.listen({ host: '127.0.0.1' })
  t.after(() => listener.close())
  const client = net.connect({ host: '127.0.0.1', port: listener.port })
  client.on('error', () => undefined)
  t.after(() => client.destroy())
  await waitUntil(() => server !== undefined, 5_000, 'the connection to be accepted')
  const s = server as PacketSocket
  s.setMaxPacketBytes?.(TCP_MAX_PACKET_BYTES)
  return { client, server: s, raw: (s as unknown as { socket: net.Socket }).socket }
}

/** `count` length-prefixed packets of `size` bytes, in one buffer. */
function packets(count: number, size: number): Buffer {
  const one = Buffer.alloc(4 + size, 7)
  one.writeUInt32BE(size, 0)
  return Buffer.concat(Array.from({ length: count }, () => one))
}

test('after close(), a peer that floods and does not read is no longer read (until the socket is destroyed)', async (t) => {
  const { client, server, raw } = await connected(t)
  let packetsIn = 0
  server.onPacket(() => packetsIn++)
  server.onClose(() => undefined)
  client.pause() // never reads
  // Our side has more queued than the kernel takes: the flush cannot finish.
  const big = Buffer.alloc(60_000)
  while (server.send(big)) await new Promise((r) => setImmediate(r))
  let flooding = true
  const chunk = packets(64, 1000)
  const flood = (async () => {
    while (flooding && !client.destroyed) {
      if (!client.write(chunk)) await drainOr(client, 50)
      else await new Promise((r) => setImmediate(r))
    }
  })()
  await waitUntil(() => packetsIn > 1000, 5_000, 'the flood to be read')
  void server.close()
  const readAtClose = raw.bytesRead
  await delay(1_500) // under the 2 s after which the socket is destroyed
  const readAfter = raw.bytesRead - readAtClose
  flooding = false
  await flood
  t.diagnostic(`read after close: ${readAfter} bytes in 1.5 s`)
  assert.ok(readAfter < MiB, `at most a read or two after close (${readAfter} bytes)`)
  await waitUntil(() => raw.destroyed, 3_000, 'the socket to be destroyed once the 2 s pass')
})

test('after close(), a peer that reads gets all we queued and the connection ends at once', async (t) => {
  const { client, server, raw } = await connected(t)
  server.onPacket(() => undefined)
  let closed = false
  server.onClose(() => (closed = true))
  let received = 0
  client.on('data', (d: Buffer) => (received += d.length))
  client.on('end', () => client.end())
  // It also keeps sending while we close: that is read and dropped, and does not hold the close up.
  const timer = setInterval(() => client.writable && client.write(packets(4, 1000)), 5)
  t.after(() => clearInterval(timer))
  let sent = 0
  for (let i = 0; i < 100; i++) {
    server.send(Buffer.alloc(60_000, 1))
    sent += 60_004
  }
  const started = Date.now()
  await server.close()
  const took = Date.now() - started
  assert.ok(closed && raw.destroyed, 'closed')
  assert.equal(received, sent, 'every byte queued before close() arrived')
  assert.ok(took < 1_500, `closed gracefully, not by the 2 s timer (${took} ms)`)
})
