/**
 * The Kademlia service over real platforms on loopback: lookups, delivery to a node no one handed
 * over, boxId lookups, bootstrap from stored contacts and from nodeInfoBootstrap, a bound on what
 * one peer may store, and a hostile node that cannot poison a lookup.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Kademlia } from '../src/services/kademlia/index.js'
import { MAX_VALUES_PER_PEER } from '../src/services/kademlia/values.js'
import { nodeIdOf } from '../src/services/kademlia/ids.js'
import { MemoryStore, type Directory, type Platform, type NodeInfo, type KadStore } from '../src/index.js'
import { fakeNode, loopbackPlatform, badRecords } from './helpers/discovery.js'
import { waitUntil } from './helpers/index.js'

interface Node {
  platform: Platform
  dht: Kademlia
  nodeInfo: NodeInfo
}

async function startNode(bootstrap: NodeInfo[], storage?: MemoryStore): Promise<Node> {
  const platform = await loopbackPlatform()
  const dht = new Kademlia({ platform, bootstrap, storage })
  await new Promise((r) => dht.once('ready', r))
  return { platform, dht, nodeInfo: platform.directory.getMyNodeInfo?.() as NodeInfo }
}

async function network(n: number, t: import('node:test').TestContext): Promise<Node[]> {
  const nodes: Node[] = [await startNode([])]
  for (let i = 1; i < n; i++) nodes.push(await startNode([(nodes[i - 1] as Node).nodeInfo])) // a chain: each knows only the one before
  t.after(async () => {
    for (const x of nodes) await x.dht.close()
    await Promise.all(nodes.map((x) => x.platform.close()))
  })
  return nodes
}

test('every node finds every other through the DHT, and a message reaches a node no one handed over', async (t) => {
  const nodes = await network(12, t)
  for (const from of nodes) {
    for (const to of nodes) {
      if (from === to) continue
      const r = await from.dht.findNode(to.nodeInfo.signId)
      assert.equal(r.nodeInfo?.signId, to.nodeInfo.signId)
    }
  }
  const first = nodes[0] as Node
  const last = nodes[nodes.length - 1] as Node
  const got = new Promise((resolve) => first.platform.messaging.once('public.hi', (_t, s, p) => resolve([s, p])))
  last.platform.messaging.send('hi', first.nodeInfo.signId, 7, { realtime: true })
  assert.deepEqual(await got, [last.nodeInfo.signId, 7])
  // boxId -> signId through the DHT (the node's record is also stored under its boxId key).
  const boxed = await ((nodes[3] as Node).platform.directory as Directory).get((nodes[9] as Node).nodeInfo.boxId)
  assert.equal(boxed, (nodes[9] as Node).nodeInfo.signId)
  // Our record is stored at other nodes.
  assert.ok(nodes.reduce((n, x) => n + x.dht.storedValues, 0) >= nodes.length)
})

test('a restarted service bootstraps from the contacts it stored; nodeInfoBootstrap seeds an empty one', async (t) => {
  const nodes = await network(4, t)
  const storage = new MemoryStore()
  const me = await startNode([(nodes[0] as Node).nodeInfo], storage)
  t.after(() => me.platform.close())
  await me.dht.close()
  const again = new Kademlia({ platform: me.platform, storage })
  t.after(() => again.close())
  me.platform.directory.getMyNodeInfo && me.platform.messaging.send('transports.myNodeInfo', 'local', me.platform.directory.getMyNodeInfo())
  await waitUntil(() => again.contacts().length >= 3, 10_000, 'contacts from storage')
  // A service with no bootstrap and no storage learns from a local nodeInfoBootstrap (mDNS sends these).
  const lone = await startNode([])
  t.after(async () => {
    await lone.dht.close()
    await lone.platform.close()
  })
  assert.equal(lone.dht.contacts().length, 0)
  lone.platform.messaging.send('transports.nodeInfoBootstrap', 'local', (nodes[1] as Node).nodeInfo)
  await waitUntil(() => lone.dht.contacts().length >= 3, 10_000, 'contacts after nodeInfoBootstrap')
})

/** A platform that speaks the RPCs by hand, to lie. */
async function hostileNode(t: import('node:test').TestContext, answer: (q: Record<string, unknown>, sender: string) => Record<string, unknown>): Promise<{ platform: Platform; nodeInfo: NodeInfo }> {
  const platform = await loopbackPlatform()
  t.after(() => platform.close())
  platform.messaging.on('public.kademlia.rpc', (_t, sender, q) => {
    const req = q as Record<string, unknown>
    platform.messaging.send('transports.nodeInfo', 'local', req.from)
    platform.messaging.send('kademlia.reply', sender, { id: req.id, r: req.q, ...answer(req, sender) }, { realtime: true })
  })
  return { platform, nodeInfo: platform.directory.getMyNodeInfo?.() as NodeInfo }
}

test('a hostile node cannot poison a lookup: forged, misfiled and stale answers are dropped and counted', async (t) => {
  const honest = await network(2, t)
  const target = honest[1] as Node
  const other = fakeNode()
  // The victim knows only the hostile node. Asked for nodes it names bad ones; asked for the
  // target's record it gives a forgery (the target's record with its own address, so the
  // signature no longer verifies), and, to be believed, one honest node.
  const evil = await hostileNode(t, (q) =>
    q.q === 'find_value'
      ? { value: { ...target.nodeInfo, connectionInfo: evil.nodeInfo.connectionInfo }, nodes: [(honest[0] as Node).nodeInfo] }
      : { nodes: [badRecords(other).stale, badRecords(other).future] }
  )
  const victim = await startNode([evil.nodeInfo])
  t.after(async () => {
    await victim.dht.close()
    await victim.platform.close()
  })
  assert.deepEqual(victim.dht.contacts().map((c) => c.signId), [evil.nodeInfo.signId])
  const r = await victim.dht.findNode(target.nodeInfo.signId)
  assert.deepEqual(r.nodeInfo, target.nodeInfo)
  assert.equal(r.hops, 2)
  assert.equal(victim.dht.stats.dropped.forged, 1, JSON.stringify(victim.dht.stats))
  assert.ok(victim.dht.stats.dropped.stale >= 1 && victim.dht.stats.dropped.future >= 1, JSON.stringify(victim.dht.stats))
  // A valid record offered under the wrong key is refused too.
  const misfiled = await hostileNode(t, (q) => (q.q === 'find_value' ? { value: other.nodeInfo() } : { nodes: [] }))
  const victim2 = await startNode([misfiled.nodeInfo])
  t.after(async () => {
    await victim2.dht.close()
    await victim2.platform.close()
  })
  const r2 = await victim2.dht.findNode(fakeNode().signId)
  assert.equal(r2.nodeInfo, undefined)
  assert.ok(victim2.dht.stats.hostile >= 1)
})

test('one peer may store only a bounded number of values; unsigned and stale stores are refused', async (t) => {
  const [node] = await network(1, t)
  const n = node as Node
  const evil = await loopbackPlatform()
  t.after(() => evil.close())
  const from = evil.directory.getMyNodeInfo?.() as NodeInfo
  evil.messaging.send('transports.nodeInfo', 'local', n.nodeInfo)
  let replies = 0
  evil.messaging.on('public.kademlia.reply', () => replies++)
  const store = (value: NodeInfo, i: number): void => {
    const key = (nodeIdOf(value.signId) as Buffer).toString('hex')
    evil.messaging.send('kademlia.rpc', n.nodeInfo.signId, { id: `s${i}`, q: 'store', from, key, value }, { realtime: true })
  }
  for (let i = 0; i < 3 * MAX_VALUES_PER_PEER; i++) store(fakeNode().nodeInfo(), i)
  const bad = badRecords()
  store(bad.unsigned, 100)
  store(bad.stale, 101)
  await waitUntil(() => replies === 3 * MAX_VALUES_PER_PEER + 2, 10_000, 'replies to every store')
  assert.equal(n.dht.storedValues, MAX_VALUES_PER_PEER)
  assert.equal(n.dht.stats.storesRefused, 2 * MAX_VALUES_PER_PEER)
  assert.equal(n.dht.stats.dropped.unsigned, 1)
  assert.equal(n.dht.stats.dropped.stale, 1)
})

test('kad-fs works as the storage (as in the seed): stored values and contacts survive a restart', async (t) => {
  const { default: kadfs } = (await import('kad-fs')) as unknown as { default: (dir: string) => import('../src/index.js').KadStore }
  const { tempDir } = await import('./helpers/index.js')
  const dir = tempDir(t)
  const nodes = await network(3, t)
  const platform = await loopbackPlatform()
  t.after(() => platform.close())
  const first = new Kademlia({ platform, storage: kadfs(dir), bootstrap: [(nodes[0] as Node).nodeInfo] })
  await new Promise((r) => first.once('ready', r))
  const stored = (nodes[1] as Node).nodeInfo
  // The others stored their records before we joined: their next republish reaches us too.
  await (nodes[1] as Node).dht.publish()
  await waitUntil(() => first.storedValues >= 1 && first.contacts().length >= 3, 10_000, 'joined and holding a record')
  await first.close()
  const again = new Kademlia({ platform, storage: kadfs(dir) })
  t.after(() => again.close())
  platform.messaging.send('transports.myNodeInfo', 'local', platform.directory.getMyNodeInfo?.())
  await waitUntil(() => again.contacts().length >= 3, 10_000, 'contacts from kad-fs')
  assert.ok(again.contacts().some((n) => n.signId === stored.signId))
  await waitUntil(() => again.storedValues >= 1, 5_000, 'values from kad-fs')
  // Closed here, before the directory is removed: close() waits for kad-fs's writes in flight.
  await again.close()
})

test('close() waits for the store\'s writes in flight: none lands after it resolves', async (t) => {
  const nodes = await network(3, t)
  const memory = new MemoryStore()
  let started = 0
  let landed = 0
  // Every write answers 150 ms late, as a slow disk would.
  const store: KadStore = {
    get: (key, callback) => memory.get(key, callback),
    del: (key, callback) => memory.del(key, callback),
    createReadStream: () => memory.createReadStream(),
    put: (key, value, callback) => {
      started++
      setTimeout(() => memory.put(key, value, (err) => {
        landed++
        callback(err)
      }), 150)
    }
  }
  const platform = await loopbackPlatform()
  t.after(() => platform.close())
  const dht = new Kademlia({ platform, storage: store, bootstrap: [(nodes[0] as Node).nodeInfo] })
  await new Promise((r) => dht.once('ready', r))
  await (nodes[1] as Node).dht.publish()
  await waitUntil(() => dht.storedValues >= 1, 10_000, 'a value stored')
  await dht.close() // also saves the contacts: one more write
  assert.ok(started >= 2, `writes started: ${started}`)
  assert.equal(landed, started, 'every write landed before close() resolved')
})
