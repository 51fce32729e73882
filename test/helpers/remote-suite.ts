import { test } from 'node:test'
import type { PlatformOptions } from '../../src/index.js'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { nextEvent, tempDir } from './index.js'
import { PeerProcess } from './peer.js'


/**
 * The two-process acceptance tests of remote messaging, run once per transport: `env` chooses
 * what the child platforms listen on, `local` how an in-process platform is configured.
 */
export function remoteSuite(label: string, TRANSPORT_ENV: Record<string, string>, local: PlatformOptions): void {
  /** Processes closed at the end of the test, before their directories go. */
  const running = new Map<import('node:test').TestContext, PeerProcess[]>()
  async function pair(t: import('node:test').TestContext): Promise<[PeerProcess, PeerProcess, string, string]> {
    // The directories go once the processes have closed (after hooks run in the order they were
    // added): removed under a running node, LevelDB may still be writing into them.
    const dirA = tempDir()
    const dirB = tempDir()
    const [a, b] = await Promise.all([PeerProcess.start(dirA, TRANSPORT_ENV), PeerProcess.start(dirB, TRANSPORT_ENV)])
    running.set(t, [a, b])
    t.after(async () => {
      await Promise.all((running.get(t) ?? []).map((p) => p.close()))
      running.delete(t)
      for (const dir of [dirA, dirB]) fs.rmSync(dir, { recursive: true, force: true })
    })
    a.learn(b)
    b.learn(a)
    return [a, b, dirA, dirB]
  }

  test(`${label}: messages flow both ways by signId, with connection events and delivery callbacks`, async (t) => {
    const [a, b] = await pair(t)
    const sentA = a.send(b.signId, 'chat.hello', { text: 'hi B' })
    const atB = await b.waitFor((e) => e.event === 'message' && e.topic === 'chat.hello')
    assert.equal(atB.sender, a.signId)
    assert.equal(atB.scope, 'public')
    assert.equal(atB.protocol, 'ms')
    assert.deepEqual(atB.payload, JSON.stringify({ text: 'hi B' }))
    const cb = await a.waitFor((e) => e.event === 'sent' && e.id === sentA, 20_000, true)
    assert.equal(cb.error, null)

    b.send(a.signId, 'chat.reply', { text: 'hi A' })
    const atA = await a.waitFor((e) => e.event === 'message' && e.topic === 'chat.reply')
    assert.equal(atA.sender, b.signId)
    assert.deepEqual(JSON.parse(atA.payload as string), { text: 'hi A' })

    // connection events carry the peer's signId, on both sides, exactly once.
    await a.waitFor((e) => e.event === 'connection', 5_000, true)
    await b.waitFor((e) => e.event === 'connection', 5_000, true)
    assert.deepEqual(a.events.filter((e) => e.event === 'connection').map((e) => e.signId), [b.signId])
    assert.deepEqual(b.events.filter((e) => e.event === 'connection').map((e) => e.signId), [a.signId])

    // disconnected on A when B goes away.
    await b.close()
    const gone = await a.waitFor((e) => e.event === 'disconnected', 10_000, true)
    assert.equal(gone.signId, b.signId)
  })

  test(`${label}: the receiver scopes messages self, friends or public by the sender`, async (t) => {
    const [a, b] = await pair(t)
    a.send(b.signId, 'scope.one', 1)
    assert.equal((await b.waitFor((e) => e.event === 'message' && e.topic === 'scope.one')).scope, 'public')
    await b.local('friends.update', [a.signId])
    a.send(b.signId, 'scope.two', 2)
    assert.equal((await b.waitFor((e) => e.event === 'message' && e.topic === 'scope.two')).scope, 'friends')
    await b.local('friends.update', [])
    await b.local('devices.update', [a.signId])
    a.send(b.signId, 'scope.three', 3)
    assert.equal((await b.waitFor((e) => e.event === 'message' && e.topic === 'scope.three')).scope, 'self')
  })

  test(`${label}: 1,000 messages arrive in order, each acknowledged`, async (t) => {
    const [a, b] = await pair(t)
    const id = a.send(b.signId, 'seq.n', { tag: 'x' }, { repeat: 1000 })
    await b.waitFor(() => b.messages('seq.n').length === 1000, 30_000, true)
    const order = b.messages('seq.n').map((e) => JSON.parse(e.payload as string).i)
    assert.deepEqual(order, Array.from({ length: 1000 }, (_, i) => i))
    await a.waitFor(() => a.events.filter((e) => e.event === 'sent' && e.id === id).length === 1000, 20_000, true)
    assert.equal(a.events.filter((e) => e.event === 'sent' && e.id === id && e.error !== null).length, 0)
  })

  test(`${label}: a 16 MiB payload arrives intact`, async (t) => {
    const [a, b] = await pair(t)
    const size = 16 * 1024 * 1024
    const big = Buffer.alloc(size)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i)
    const expected = createHash('sha256').update(big).digest('hex')
    const id = a.sendBig(b.signId, 'big.blob', size)
    const got = await b.waitFor((e) => e.event === 'message' && e.topic === 'big.blob', 60_000)
    assert.deepEqual(got.payload, { bytes: size, sha256: expected })
    const cb = await a.waitFor((e) => e.event === 'sent' && e.id === id, 20_000, true)
    assert.equal(cb.error, null)
  })

  test(`${label}: the peer restarts (new process, new port) and the next message still arrives`, async (t) => {
    const [a, b0, , dirB] = await pair(t)
    a.send(b0.signId, 'life.before', 1)
    await b0.waitFor((e) => e.event === 'message' && e.topic === 'life.before', 10_000)
    // B's first Message may follow its handler by a turn (tcp-channel.ts): A's session is up then.
    await a.waitFor((e) => e.event === 'connection' && e.signId === b0.signId, 10_000, true)
    await b0.kill()

    // Same data dir: same identity, another port. The test plays discovery: it tells A the new
    // nodeInfo (the signed one, newer than the one A has).
    const b1 = await PeerProcess.start(dirB, TRANSPORT_ENV)
    running.get(t)?.push(b1)
    assert.equal(b1.signId, b0.signId)
    a.learn(b1)
    b1.learn(a)
    // Over TCP the kill resets the connection and A has already seen 'disconnected'. Over UDP
    // nothing tells A: it would find the peer dead after the dead-peer timeout (the frozen-peer
    // test below covers that); here the application closes the session, as it would on news
    // that the peer moved.
    await a.disconnect(b0.signId)
    await a.waitFor((e) => e.event === 'disconnected' && e.signId === b0.signId, 5_000, true)
    const id = a.send(b1.signId, 'life.after', 2)
    const got = await b1.waitFor((e) => e.event === 'message' && e.topic === 'life.after', 10_000)
    assert.equal(got.sender, a.signId)
    const cb = await a.waitFor((e) => e.event === 'sent' && e.id === id, 10_000, true)
    assert.equal(cb.error, null)
  })

  test(`${label}: a realtime message to a peer that cannot be reached fails fast with a clear error`, async (t) => {
    const [a, b] = await pair(t)
    await b.kill()
    a.directory.delete(b.signId)
    const started = Date.now()
    const id = a.send(b.signId, 'rt.ping', 1, { options: { realtime: true } })
    const cb = await a.waitFor((e) => e.event === 'sent' && e.id === id, 15_000, true)
    assert.ok(cb.error, 'the callback reports an error')
    assert.equal((cb.error as { code: string }).code, 'ERR_UNREACHABLE')
    assert.ok(Date.now() - started < 12_000)
  })

  test(`${label}: a peer that stops answering (process frozen, socket still open) is found dead`, async (t) => {
    const { Platform, MemoryStore } = await import('../../src/index.js')
    const a = new Platform({
      storage: new MemoryStore(),
      ...local,
      connections: { timings: { keepaliveMs: 100, deadAfterMs: 800, tickMs: 50 } }
    })
    await a.ready()
    const dirB = tempDir()
    const b = await PeerProcess.start(dirB, TRANSPORT_ENV)
    t.after(async () => {
      b.child.kill('SIGCONT')
      await b.close()
      await a.close()
      fs.rmSync(dirB, { recursive: true, force: true })
    })
    a.messaging.send('transports.nodeInfo', 'local', b.nodeInfo)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("'alive' was neither acknowledged nor failed within 10 s")), 10_000)
      a.messaging.send('alive', b.signId, 1, { callback: (err) => (clearTimeout(timer), err ? reject(err) : resolve()) })
    })
    const t0 = Date.now()
    const gone = nextEvent(a, 'disconnected', 5_000)
    b.child.kill('SIGSTOP')
    await gone
    const ms = Date.now() - t0
    assert.ok(ms >= 700 && ms < 5_000, `declared dead after ${ms} ms`)
    assert.deepEqual(a.connectedPeers(), [])
  })
}
