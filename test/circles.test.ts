/**
 * Circles: the Circle class, `friends.update` / `devices.update` messages (replace, persist,
 * refuse bad lists), the `friends` / `devices` options, and platform.scopeOf().
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Circle, InvalidArgumentError, MemoryStore, Platform, type CircleLike } from '../src/index.js'
import { MAX_CIRCLE_MEMBERS } from '../src/platform/circle.js'
import { nextEvent, randomSignId, tempDir, waitUntil } from './helpers/index.js'

test('Circle: inScope, update, getMembers, size', () => {
  const [a, b, c] = [randomSignId(), randomSignId(), randomSignId()]
  const circle = new Circle('friends', [a, b, a])
  assert.equal(circle.name, 'friends')
  assert.equal(circle.size, 2, 'duplicates count once')
  assert.equal(circle.inScope(a), true)
  assert.equal(circle.inScope(c), false)
  assert.equal(circle.inScope('local'), false)
  circle.update([c])
  assert.deepEqual(circle.getMembers(), [c])
  assert.equal(circle.inScope(a), false)
  circle.update([])
  assert.equal(circle.size, 0)
  assert.deepEqual(new Circle('empty').getMembers(), [])
})

test('Circle: an invalid member list is refused and the circle is unchanged', () => {
  const a = randomSignId()
  const circle = new Circle('devices', [a])
  const bad: unknown[] = [
    'not an array',
    null,
    { 0: a, length: 1 },
    [a, 'not-an-id'],
    [a, 42],
    [Buffer.alloc(31).toString('base64')],
    [a.slice(0, -1)],
    Array.from({ length: MAX_CIRCLE_MEMBERS + 1 }, () => a)
  ]
  for (const list of bad) {
    assert.throws(() => circle.update(list as string[]), InvalidArgumentError)
    assert.deepEqual(circle.getMembers(), [a])
  }
  assert.throws(() => new Circle('x', ['nope']), InvalidArgumentError)
})

test('scopeOf: local and devices are self, friends are friends, anyone else public', async () => {
  const [device, friend, both, stranger] = [randomSignId(), randomSignId(), randomSignId(), randomSignId()]
  const platform = new Platform({ storage: new MemoryStore(), tcp: false, devices: [device, both], friends: [friend, both] })
  await platform.ready()
  assert.equal(platform.scopeOf('local'), 'self')
  assert.equal(platform.scopeOf(device), 'self')
  assert.equal(platform.scopeOf(both), 'self', 'devices win over friends')
  assert.equal(platform.scopeOf(friend), 'friends')
  assert.equal(platform.scopeOf(stranger), 'public')
  await platform.close()
})

test('friends.update / devices.update replace the set and persist across a restart (MemoryStore)', async () => {
  const storage = new MemoryStore()
  const [f1, f2, d1] = [randomSignId(), randomSignId(), randomSignId()]
  const first = new Platform({ storage, tcp: false, friends: [f1] })
  await first.ready()
  assert.equal(first.scopeOf(f1), 'friends')
  first.messaging.send('friends.update', 'local', [f2])
  first.messaging.send('devices.update', 'local', [d1])
  assert.equal(first.scopeOf(f1), 'public', 'replaced, not added to')
  assert.equal(first.scopeOf(f2), 'friends')
  assert.equal(first.scopeOf(d1), 'self')
  await waitUntil(() => storage.getSync('circle.devices') !== null, 2_000, 'the circle write')
  await first.close()
  assert.deepEqual(JSON.parse(storage.getSync('circle.friends') ?? 'null'), [f2])

  const second = new Platform({ storage, tcp: false })
  await second.ready()
  assert.equal(second.scopeOf(f2), 'friends')
  assert.equal(second.scopeOf(d1), 'self')
  assert.equal(second.scopeOf(f1), 'public')
  assert.deepEqual((second.friends as Circle).getMembers(), [f2])
  await second.close()
})

test('friends.update persists across a restart on LevelDB, even when closed right after', async (t) => {
  const dataDir = tempDir(t)
  const friend = randomSignId()
  const first = new Platform({ dataDir, tcp: false })
  await first.ready()
  first.messaging.send('friends.update', 'local', [friend])
  await first.close()
  const second = new Platform({ dataDir, tcp: false })
  await second.ready()
  assert.equal(second.scopeOf(friend), 'friends')
  await second.close()
})

test('an invalid friends.update is reported and leaves the circle unchanged', async () => {
  const storage = new MemoryStore()
  const friend = randomSignId()
  const platform = new Platform({ storage, tcp: false, friends: [friend] })
  await platform.ready()
  const reported = nextEvent<[Error]>(platform, 'handlerError')
  platform.messaging.send('friends.update', 'local', ['garbage'])
  const [err] = await reported
  assert.ok(err instanceof InvalidArgumentError, String(err))
  assert.equal(platform.scopeOf(friend), 'friends')
  assert.equal(storage.getSync('circle.friends'), null, 'nothing persisted')
  await platform.close()
})

test('friends / devices options: an array, or any object with inScope', async () => {
  const special = randomSignId()
  const custom: CircleLike = { inScope: (signId) => signId === special }
  const platform = new Platform({ storage: new MemoryStore(), tcp: false, friends: custom })
  await platform.ready()
  assert.equal(platform.friends, custom)
  assert.equal(platform.scopeOf(special), 'friends')
  assert.equal(platform.scopeOf(randomSignId()), 'public')
  // A circle without update() ignores update messages, without failing.
  let reported = 0
  platform.on('handlerError', () => reported++)
  platform.messaging.send('friends.update', 'local', [randomSignId()])
  assert.equal(platform.scopeOf(special), 'friends')
  assert.equal(reported, 0)
  await platform.close()

  assert.throws(() => new Platform({ storage: new MemoryStore(), friends: 'alice' as unknown as string[] }), InvalidArgumentError)
  assert.throws(() => new Platform({ storage: new MemoryStore(), devices: ['not-an-id'] }), InvalidArgumentError)
  assert.throws(() => new Platform({ storage: new MemoryStore(), devices: {} as CircleLike }), InvalidArgumentError)
})

test('a stored circle that does not parse is ignored, not fatal', async () => {
  const storage = new MemoryStore()
  await storage.put('circle.friends', '{not json')
  const platform = new Platform({ storage, tcp: false })
  await platform.ready()
  assert.deepEqual((platform.friends as Circle).getMembers(), [])
  await platform.close()
})
