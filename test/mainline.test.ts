/**
 * The Mainline directory on a private bittorrent-dht swarm on loopback (never the public DHT):
 * delivery to a node found through the DHT alone, a Pkarr cross-check both ways with the `pkarr`
 * package's SignedPacket, rising sequence numbers, and bad records refused and counted.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { SignedPacket } from 'pkarr'
import z32 from 'z32'
import type DHT from 'bittorrent-dht'
import { Mainline } from '../src/services/mainline/index.js'
import { bep44SigningBytes } from '../src/services/mainline/pkarr-record.js'
import { splitTxt } from '../src/services/shared/txt.js'
import { sign } from '../src/crypto/sodium.js'
import { parseId } from '../src/identity/ids.js'
import type { NodeInfo, Platform } from '../src/index.js'
import { startSwarm, swarmNode, type Swarm } from '../scripts/mainline-swarm.js'
import { badRecords, fakeNode, loopbackPlatform, type FakeNode } from './helpers/discovery.js'

async function withSwarm(t: import('node:test').TestContext, n = 8): Promise<Swarm> {
  const swarm = await startSwarm(n)
  t.after(() => swarm.close())
  return swarm
}

async function node(t: import('node:test').TestContext, swarm: Swarm): Promise<{ platform: Platform; mainline: Mainline }> {
  const platform = await loopbackPlatform()
  const mainline = new Mainline({ platform, bootstrap: swarm.bootstrap, host: '127.0.0.1', retryMs: 200 })
  t.after(async () => {
    await mainline.close()
    await platform.close()
  })
  return { platform, mainline }
}

function get(dht: DHT, key: Buffer): Promise<DHT.GetResult | null> {
  return new Promise((resolve, reject) => dht.get(createHash('sha1').update(key).digest(), { cache: false }, (err, r) => (err ? reject(err) : resolve(r))))
}

function put(dht: DHT, args: { k: Buffer; v: Buffer; seq: number; sig: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => dht.put(args, (err, _h, n) => (err ? reject(err) : resolve(n))))
}

test('a node found through the private Mainline DHT alone gets a message', async (t) => {
  const swarm = await withSwarm(t)
  const a = await node(t, swarm)
  const b = await node(t, swarm)
  await new Promise((r) => a.mainline.once('published', r))
  const got = new Promise((resolve) => a.platform.messaging.once('public.over.mainline', (_t, s, p) => resolve([s, p])))
  b.platform.messaging.send('over.mainline', a.platform.identity.getSignId(), 'hi', { realtime: true })
  assert.deepEqual(await got, [b.platform.identity.getSignId(), 'hi'])
  assert.equal(b.mainline.stats.resolved, 1)
  assert.deepEqual(b.mainline.peers().map((n) => n.signId), [a.platform.identity.getSignId()])
})

test('our published item decodes and verifies with pkarr SignedPacket; seq rises with the nodeInfo', async (t) => {
  const swarm = await withSwarm(t)
  const a = await node(t, swarm)
  const firstSeq = await new Promise<number>((r) => a.mainline.once('published', r))
  const key = parseId(a.platform.identity.getSignId()) as Buffer
  const item = await get(swarm.nodes[5] as DHT, key)
  assert.ok(item)
  const packet = SignedPacket.fromBep44Args({ k: key, seq: item.seq as number, sig: item.sig as Buffer, v: item.v })
  const origin = z32.encode(key)
  const txt = packet.resourceRecords('_mm')
  assert.equal(txt.length, 1)
  const body = JSON.parse(Buffer.concat((txt[0] as unknown as { data: Buffer[] }).data).toString())
  const mine = a.platform.directory.getMyNodeInfo?.() as NodeInfo
  assert.equal(body.boxId, mine.boxId)
  assert.equal(body.signature, mine.signature)
  assert.equal(packet.timestamp(), (mine.timestamp as number) * 1000)
  assert.deepEqual(packet.resourceRecords('@').map((r) => (r as { data: string }).data), ['127.0.0.1'])
  assert.ok((packet.packet().answers ?? []).every((r) => r.name === origin || r.name === `_mm.${origin}`))
  // A newer nodeInfo (the directory re-signs) is published with a higher seq.
  const newer = { ...mine, timestamp: (mine.timestamp as number) + 1000 }
  const { signature: _s, ...unsigned } = newer
  const { nodeInfoSigningBytes } = await import('../src/platform/node-info.js')
  newer.signature = a.platform.identity.sign(nodeInfoSigningBytes(unsigned as Required<typeof unsigned>)).toString('base64')
  const next = new Promise<number>((r) => a.mainline.once('published', r))
  a.platform.messaging.send('transports.myNodeInfo', 'local', newer)
  assert.equal(await next, firstSeq + 1_000_000)
  assert.equal((await get(swarm.nodes[2] as DHT, key))?.seq, firstSeq + 1_000_000)
})

/** Puts a Pkarr packet made by the pkarr package for `fake`, with `body` in its _mm TXT record. */
async function putPkarr(swarm: Swarm, fake: FakeNode, body: Record<string, unknown>, seq: number): Promise<void> {
  const packet = SignedPacket.fromPacket(
    { publicKey: fake.publicKey, secretKey: fake.secretKey },
    { type: 'response', id: 0, answers: [{ name: '_mm', type: 'TXT', ttl: 300, data: splitTxt(JSON.stringify(body)) }, { name: '@', type: 'A', ttl: 300, data: '127.0.0.1' }] },
    { timestamp: seq } as unknown as object
  )
  const args = packet.bep44Args()
  assert.ok((await put(swarm.nodes[1] as DHT, { k: Buffer.from(args.k), v: Buffer.from(args.v), seq: args.seq, sig: Buffer.from(args.sig) })) > 0)
}

function bodyOf(n: Partial<NodeInfo>): Record<string, unknown> {
  const { signId: _id, ...rest } = n
  return rest
}

test('a packet made with the pkarr package resolves through our service', async (t) => {
  const swarm = await withSwarm(t)
  const b = await node(t, swarm)
  const fake = fakeNode()
  const nodeInfo = fake.nodeInfo()
  await putPkarr(swarm, fake, bodyOf(nodeInfo), (nodeInfo.timestamp as number) * 1000)
  assert.deepEqual(await b.mainline.resolve(fake.signId), nodeInfo)
})

test('forged, unsigned, stale and future-dated records in the DHT are refused and counted; so are items that are not records', async (t) => {
  const swarm = await withSwarm(t)
  const b = await node(t, swarm)
  const kinds = ['forged', 'unsigned', 'stale', 'future'] as const
  for (const kind of kinds) {
    const fake = fakeNode()
    await putPkarr(swarm, fake, bodyOf(badRecords(fake)[kind]), Date.now() * 1000)
    assert.equal(await b.mainline.resolve(fake.signId), undefined, kind)
    assert.equal(b.mainline.stats.dropped[kind], 1, kind)
  }
  // A BEP 44 item properly signed by its key but holding no DNS packet.
  const fake = fakeNode()
  const v = Buffer.from('not a dns packet')
  await put(swarm.nodes[3] as DHT, { k: fake.publicKey, v, seq: 1, sig: sign(bep44SigningBytes(1, v), fake.secretKey) })
  assert.equal(await b.mainline.resolve(fake.signId), undefined)
  assert.equal(b.mainline.stats.hostile, 1)
  assert.equal(b.mainline.stats.resolved, 0)
  // An item with a bad BEP 44 signature never gets that far: swarm nodes refuse to store it.
  const liar = fakeNode()
  const stranger = await swarmNode(swarm.bootstrap)
  t.after(() => new Promise<void>((r) => stranger.destroy(() => r())))
  await put(stranger, { k: liar.publicKey, v, seq: 1, sig: sign(bep44SigningBytes(2, v), liar.secretKey) }).catch(() => 0)
  assert.equal(await b.mainline.resolve(liar.signId), undefined)
  assert.equal(b.mainline.stats.hostile, 1)
})
