/**
 * The datagram socket: sends to IPv4 literals answer the name lookup at once (no deferral per
 * datagram), and a bind host given by name still resolves.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { bindUdpSocket } from '../src/transports/udp-socket.js'

test('a socket bound by host name exchanges datagrams with one bound to a literal', { timeout: 10_000 }, async (t) => {
  const a = await bindUdpSocket('localhost', 0)
  const b = await bindUdpSocket('127.0.0.1', 0)
  t.after(async () => {
    await a.close()
    await b.close()
  })
  const got: string[] = []
  const arrived = new Promise<void>((resolve) =>
    b.onMessage((packet, port, address) => {
      got.push(`${packet.toString()} from ${address}:${port}`)
      if (got.length === 3) resolve()
    })
  )
  for (const word of ['one', 'two', 'three']) a.send(Buffer.from(word), b.address().port, '127.0.0.1')
  await arrived
  assert.deepEqual(got.map((g) => g.split(' ')[0]).sort(), ['one', 'three', 'two'])
  assert.ok(got.every((g) => g.endsWith(`127.0.0.1:${a.address().port}`)))
})
