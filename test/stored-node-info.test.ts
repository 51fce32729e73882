// The nodeInfo a sender stores for peers it owes messages (`delivery.nodeInfo.<signId>`, issue 10)
// read back damaged: garbage, a wrong signature, oversized, stale, another node's. Each gives a
// warning through the platform's logger naming the peer whose address was lost and why, the entry
// is removed, the node starts, and the messages waiting for that peer are delivered once its real
// nodeInfo is known. A stored nodeInfo that is well formed but out of date (the peer moved) is
// passed over for the directory's. Two Platforms over TCP, MemoryStore.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore, Platform, nodeInfoSigningBytes, type NodeInfo, type PlatformOptions } from '../src/index.js'
import type { Logger } from '../src/logger.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { MAX_STORED_NODE_INFO_BYTES } from '../src/connections/stored-node-info.js'
import { waitUntil } from './helpers/index.js'

const TIMINGS = { reconnectMinMs: 20, reconnectMaxMs: 100, tickMs: 50 }
const KEY = 'delivery.nodeInfo.'

interface Warning {
  obj: unknown
  msg: string
}

function capture(): { logger: Logger; warnings: Warning[] } {
  const warnings: Warning[] = []
  const noop = (): void => {}
  return { warnings, logger: { trace: noop, debug: noop, info: noop, error: noop, warn: (obj, msg) => void warnings.push({ obj, msg: msg ?? '' }) } }
}

function node(store: MemoryStore, extra: PlatformOptions = {}): Platform {
  return new Platform({ storage: store, tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 100, stablePorts: false, ...extra, connections: { timings: TIMINGS } })
}

async function putRaw(store: MemoryStore, key: string, value: string): Promise<void> {
  const storage = new PlatformStorage(store)
  await storage.open()
  await storage.put(key, value)
  await storage.close()
}

/** B's nodeInfo, signed by B at `timestamp`, listing `connectionInfo`. */
function signedBy(b: Platform, connectionInfo: NodeInfo['connectionInfo'], timestamp: number): NodeInfo {
  const unsigned = { signId: b.identity.getSignId(), boxId: b.identity.getBoxId(), connectionInfo, timestamp }
  return { ...unsigned, signature: b.identity.sign(nodeInfoSigningBytes(unsigned)).toString('base64') }
}

const DAY = 86_400_000

/** The bad values, made from B's real nodeInfo (and A's, for "another node's"). */
const CASES: Array<{ name: string; reason: RegExp; value(b: NodeInfo, bNode: Platform, a: NodeInfo): string }> = [
  { name: 'garbage', reason: /not JSON/, value: () => '\u0000{garbage' },
  {
    name: 'a wrong signature',
    reason: /signature does not verify/,
    value: (b) => {
      const sig = Buffer.from(b.signature as string, 'base64')
      sig[10] = (sig[10] as number) ^ 0x40
      return JSON.stringify({ ...b, signature: sig.toString('base64') })
    }
  },
  { name: 'oversized', reason: /more than \d+/, value: (b) => JSON.stringify({ ...b, pad: 'x'.repeat(MAX_STORED_NODE_INFO_BYTES) }) },
  { name: 'stale (signed 40 days ago)', reason: /stale: signed 40 days ago/, value: (b, bNode) => JSON.stringify(signedBy(bNode, b.connectionInfo, Date.now() - 40 * DAY)) },
  { name: 'dated a week ahead', reason: /stale: signed in the future/, value: (b, bNode) => JSON.stringify(signedBy(bNode, b.connectionInfo, Date.now() + 7 * DAY)) },
  { name: 'another node\'s nodeInfo', reason: /another signId/, value: (_b, _bNode, a) => JSON.stringify(a) },
  { name: 'not a nodeInfo', reason: /boxId|signId/, value: () => JSON.stringify({ connectionInfo: 5 }) }
]

for (const c of CASES) {
  test(`stored nodeInfo ${c.name}: a warning says whose address was lost and why, it is removed, the node starts and delivers once the real nodeInfo is known`, async (t) => {
    const storeA = new MemoryStore()
    let a = node(storeA)
    const b = node(new MemoryStore())
    t.after(async () => {
      await a.close()
      await b.close()
    })
    await Promise.all([a.ready(), b.ready()])
    const bId = b.identity.getSignId()
    const bInfo = b.directory.getMyNodeInfo()
    const aInfo = a.directory.getMyNodeInfo()
    // Messages wait for B while A cannot find it (no discovery service).
    const accepted: string[] = []
    for (let i = 0; i < 5; i++) a.messaging.send('wait', bId, { i }, { accepted: (id) => accepted.push(id) })
    await waitUntil(() => accepted.length === 5, 5_000, 'accepted')
    await a.close()

    await putRaw(storeA, KEY + bId, c.value(bInfo, b, aInfo))
    const { logger, warnings } = capture()
    a = node(storeA, { logger })
    const got: number[] = []
    b.messaging.on('public.wait', (_topic, _sender, payload: { i: number }) => got.push(payload.i))
    await a.ready()
    const lost = warnings.filter((w) => w.msg.includes(bId) && /lost/.test(w.msg))
    assert.equal(lost.length, 1, `one warning that B's stored address was lost: ${JSON.stringify(warnings.map((w) => w.msg))}`)
    assert.match(lost[0]?.msg ?? '', c.reason)
    assert.equal(await a.storage.get(KEY + bId), undefined, 'the damaged entry was removed')

    // Its real nodeInfo known (as a discovery service would tell): the messages go.
    a.messaging.send('transports.nodeInfo', 'local', bInfo)
    await waitUntil(() => got.length === 5, 10_000, 'the waiting messages delivered')
    assert.deepEqual(got, [0, 1, 2, 3, 4])
    // And the real one is stored in place of the damaged one (messages waited for B).
    const stored = await a.storage.get(KEY + bId)
    assert.ok(stored && (JSON.parse(stored) as NodeInfo).signature === bInfo.signature, 'the real nodeInfo stored')
  })
}

test('stored nodeInfo out of date (the peer moved, a valid signature): passed over for the directory\'s once a dial from it fails; no warning at load', async (t) => {
  const storeA = new MemoryStore()
  let a = node(storeA)
  const b = node(new MemoryStore())
  t.after(async () => {
    await a.close()
    await b.close()
  })
  await Promise.all([a.ready(), b.ready()])
  const bId = b.identity.getSignId()
  const bInfo = b.directory.getMyNodeInfo()
  const accepted: string[] = []
  for (let i = 0; i < 3; i++) a.messaging.send('wait', bId, { i }, { accepted: (id) => accepted.push(id) })
  await waitUntil(() => accepted.length === 3, 5_000, 'accepted')
  await a.close()
  // Signed by B a minute ago, at an address where nothing listens now.
  const moved = signedBy(b, [{ transportType: 'tcp', transportInfo: { host: '127.0.0.1', port: 9 } }], Date.now() - 60_000)
  await putRaw(storeA, KEY + bId, JSON.stringify(moved))
  const { logger, warnings } = capture()
  a = node(storeA, { logger })
  const got: number[] = []
  b.messaging.on('public.wait', (_topic, _sender, payload: { i: number }) => got.push(payload.i))
  await a.ready()
  assert.equal(warnings.filter((w) => w.msg.includes(bId)).length, 0, 'a well-formed entry is kept')
  a.messaging.send('transports.nodeInfo', 'local', bInfo)
  await waitUntil(() => got.length === 3, 10_000, 'delivered from the directory\'s nodeInfo')
  const stored = JSON.parse((await a.storage.get(KEY + bId)) as string) as NodeInfo
  assert.equal(stored.timestamp, bInfo.timestamp, 'the newer nodeInfo replaced the out-of-date one')
})

test('a send counts as accepted only once where its peer is is stored: a sender that crashes right after accepted reaches the peer after its restart, with no nodeInfo given', async (t) => {
  const aStore = new MemoryStore()
  const bStore = new MemoryStore()
  const port = { a: 0, b: 0 }
  let a = node(aStore)
  let b = node(bStore)
  await Promise.all([a.ready(), b.ready()])
  const bId = b.identity.getSignId()
  const bInfo = b.directory.getMyNodeInfo() as NodeInfo
  port.b = Number((bInfo.connectionInfo.find((c) => c.transportType === 'tcp') as unknown as { transportInfo: { port: number } }).transportInfo.port)
  // A learns where B is once, from its directory (as a discovery service would), and dials it.
  a.messaging.send('transports.nodeInfo', 'local', bInfo)
  await new Promise<void>((resolve, reject) => a.messaging.send('hello', bId, {}, { realtime: true, callback: (err) => (err ? reject(err) : resolve()) }))
  await b.close()
  // A crash the moment the outbox has taken the message: what storage holds then is all a
  // restarted A has (MemoryStore's read stream is a snapshot taken when it is made).
  let snapshot: NodeJS.ReadableStream | undefined
  const id = await new Promise<string>((resolve) =>
    a.messaging.send('later', bId, { n: 1 }, {
      accepted: (i) => {
        snapshot = aStore.createReadStream()
        resolve(i)
      }
    })
  )
  await a.close()
  const left = new MemoryStore()
  for await (const e of snapshot as AsyncIterable<{ key: string; value: string }>) await left.put(e.key, e.value)
  a = node(left)
  t.after(() => a.close())
  await a.ready()
  assert.deepEqual((await a.outbox.list()).map((m) => m.id), [id])
  b = node(bStore, { tcp: { host: '127.0.0.1', port: port.b } })
  t.after(() => b.close())
  const got: unknown[] = []
  b.messaging.on('public.later', (_t, _s, p) => got.push(p))
  await b.ready()
  await waitUntil(() => got.length === 1, 10_000, 'the message, reached from the stored nodeInfo alone')
})
