/**
 * The mDNS service in-process, on the loopback interface and a port of its own (so that nothing
 * reaches a real LAN and parallel tests do not hear each other): two platforms find each other
 * with no nodeInfo handed over and exchange a message; hostile answers are dropped and counted.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import makeMdns from 'multicast-dns'
import { MulticastDNS, SERVICE_TYPE, instanceName } from '../src/services/mdns/index.js'
import { splitTxt } from '../src/services/shared/txt.js'
import type { Directory } from '../src/index.js'
import { parseId } from '../src/identity/ids.js'
import { badRecords, fakeNode, loopbackPlatform } from './helpers/discovery.js'
import { waitUntil } from './helpers/index.js'

const port = (): number => 20_000 + Math.floor(Math.random() * 30_000)
const lan = (p: number) => ({ interface: '127.0.0.1', bind: '0.0.0.0', port: p })

test('two nodes find each other by mDNS alone and exchange a message', async (t) => {
  const p = port()
  const a = await loopbackPlatform()
  const b = await loopbackPlatform()
  const ma = new MulticastDNS({ platform: a, ...lan(p) })
  const mb = new MulticastDNS({ platform: b, ...lan(p) })
  t.after(async () => {
    await ma.close()
    await mb.close()
    await a.close()
    await b.close()
  })
  await waitUntil(() => ma.peers().length === 1 && mb.peers().length === 1, 10_000, 'both discovered')
  assert.equal(ma.peers()[0]?.signId, b.identity.getSignId())
  assert.equal(mb.stats.discovered, 1)
  const got = new Promise((resolve) => b.messaging.once('public.hello', (_t, sender, payload) => resolve([sender, payload])))
  a.messaging.send('hello', b.identity.getSignId(), { hi: 1 }, { realtime: true })
  assert.deepEqual(await got, [a.identity.getSignId(), { hi: 1 }])
  // directory.get (boxId -> signId) is answered from what was heard.
  assert.equal(await (a.directory as Directory).get(b.identity.getBoxId()), b.identity.getSignId())
})

test('a node that is asked for a signId it has not heard of queries the LAN for that name', async (t) => {
  const p = port()
  const a = await loopbackPlatform()
  const b = await loopbackPlatform()
  const ma = new MulticastDNS({ platform: a, ...lan(p), queryIntervalMs: 3_600_000 })
  t.after(async () => {
    await ma.close()
    await a.close()
    await b.close()
  })
  // b answers only a direct query for its own instance name (it started after a's queries).
  const raw = makeMdns({ ...lan(p), multicast: true, loopback: true })
  t.after(() => new Promise<void>((r) => raw.destroy(() => r())))
  const mine = instanceName(parseId(b.identity.getSignId()) as Buffer)
  let asked = 0
  raw.on('query', (q) => {
    if (!q.questions.some((x) => x.name === mine && x.type === 'TXT')) return
    asked++
    raw.respond({ answers: [{ name: mine, type: 'TXT', data: splitTxt(JSON.stringify(b.directory.getMyNodeInfo?.())) }] })
  })
  await new Promise((r) => setTimeout(r, 1500)) // let a's start-up queries pass
  const found = await a.directory.getNodeInfo(b.identity.getSignId())
  assert.equal(found.signId, b.identity.getSignId())
  assert.ok(asked >= 1)
})

test('forged, unsigned, stale, future-dated, oversized and misfiled mDNS records are dropped and counted', async (t) => {
  const p = port()
  const a = await loopbackPlatform()
  const ma = new MulticastDNS({ platform: a, ...lan(p) })
  const fed: unknown[] = []
  a.messaging.on('self.transports.nodeInfo', (_t, _s, n) => fed.push(n))
  t.after(async () => {
    await ma.close()
    await a.close()
  })
  const raw = makeMdns({ ...lan(p), multicast: true, loopback: true })
  t.after(() => new Promise<void>((r) => raw.destroy(() => r())))
  const node = fakeNode()
  const name = instanceName(parseId(node.signId) as Buffer)
  const bad = badRecords(node)
  const send = (instance: string, text: string): void =>
    raw.respond({ answers: [{ name: SERVICE_TYPE, type: 'PTR', data: instance }, { name: instance, type: 'TXT', data: splitTxt(text) }] })
  for (const record of Object.values(bad)) send(name, JSON.stringify(record))
  send(instanceName(parseId(fakeNode().signId) as Buffer), JSON.stringify(node.nodeInfo())) // under another node's name
  send(name, '{not json')
  await waitUntil(() => ma.stats.hostile === 2 && Object.values(ma.stats.dropped).every((n) => n === 1 || n === 0) && ma.stats.dropped.forged === 1 && ma.stats.dropped.unsigned === 1 && ma.stats.dropped.stale === 1 && ma.stats.dropped.future === 1 && ma.stats.dropped.oversized === 1, 5_000, 'every bad record counted')
  assert.equal(ma.peers().length, 0)
  assert.deepEqual(fed, [])
  // The good record still gets through afterwards.
  send(name, JSON.stringify(node.nodeInfo()))
  await waitUntil(() => ma.peers().length === 1, 5_000, 'good record accepted')
  assert.equal(fed.length, 1)
})
