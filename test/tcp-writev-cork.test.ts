// TcpChannel.writev (src/connections/tcp-channel.ts): a writev that makes one packet writes it
// without corking the socket; one that makes several corks it once, so they still leave together.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { nextEvent } from './helpers/index.js'
import { tcpChannelPair } from './helpers/tcp-channels.js'

test('writev: one packet is written uncorked, several within one cork', async () => {
  const { client, server, done } = await tcpChannelPair('hello')
  client.resume()
  await nextEvent(client, 'secure')
  await new Promise((r) => setTimeout(r, 20))
  const got: Buffer[] = []
  server.on('data', (d: Buffer) => got.push(d))

  const net = (client as unknown as { socket: { socket: Socket } }).socket.socket
  const events: string[] = []
  const { cork, uncork, write } = net
  net.cork = function (this: Socket) {
    events.push('cork')
    return cork.call(this)
  }
  net.uncork = function (this: Socket) {
    events.push('uncork')
    return uncork.call(this)
  }
  net.write = function (this: Socket, ...args: unknown[]) {
    events.push('write')
    return (write as (...a: unknown[]) => boolean).apply(this, args)
  } as Socket['write']

  const max = (client as unknown as { session: { maxMessage: number } }).session.maxMessage
  client.writev([Buffer.alloc(10, 1), Buffer.alloc(20, 2)])
  assert.deepEqual(events, ['write'], 'one packet: written at once, no cork')
  events.length = 0
  client.writev([Buffer.alloc(max, 3), Buffer.alloc(max, 4), Buffer.alloc(5, 5)])
  assert.deepEqual(events, ['cork', 'write', 'write', 'write', 'uncork'], 'three packets: within one cork')

  await new Promise((r) => setTimeout(r, 50))
  const all = Buffer.concat(got)
  assert.equal(all.length, 30 + 2 * max + 5, 'every byte arrived')
  assert.equal(all[0], 1)
  assert.equal(all[10], 2)
  assert.equal(all[30], 3)
  assert.equal(all[30 + max], 4)
  assert.equal(all[30 + 2 * max], 5)
  await done()
})
