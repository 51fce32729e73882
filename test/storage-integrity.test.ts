/**
 * Storage never forgets silently: each stored part of a LevelStore (log file, table file, the
 * db/ directory, the db-id record) damaged on real files gives ERR_STORAGE_CORRUPT or
 * ERR_STORAGE_LOST and leaves the files as they were, or, with `repair: true`, opens with a
 * logged warning that says what was lost. Also through the Platform: a stored circle never
 * quietly disappears.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { LevelStore, Platform, StorageError } from '../src/index.js'
import { checkLogBytes } from '../src/storage/leveldb-check.js'
import type { Logger } from '../src/logger.js'
import CRC32C from 'crc-32/crc32c.js'
import { randomSignId, tempDir } from './helpers/index.js'

const KEYS = 200

function capture(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = []
  const noop = (): void => {}
  return { warnings, logger: { trace: noop, debug: noop, info: noop, error: noop, warn: (_o, msg) => warnings.push(String(msg)) } }
}

/** A store with KEYS keys written one by one (so they sit in the log), closed. */
async function filled(dir: string): Promise<void> {
  const store = new LevelStore({ dir })
  for (let i = 0; i < KEYS; i++) await store.put(`k${String(i).padStart(4, '0')}`, 'v'.repeat(100) + i)
  await store.close()
}

async function count(dir: string): Promise<number> {
  const store = new LevelStore({ dir })
  let n = 0
  for await (const _ of store.createReadStream()) n++
  await store.close()
  return n
}

function dbFiles(dir: string, suffix: string): string[] {
  return fs.readdirSync(path.join(dir, 'db')).filter((f) => f.endsWith(suffix) && f !== 'LOG')
}

function scribble(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.from('garbage garbage garbage garbage!'), 0, 32, at)
  fs.closeSync(fd)
}

function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const f of fs.readdirSync(path.join(dir, 'db'))) if (f !== 'LOG' && f !== 'LOG.old' && f !== 'LOCK') out.set(f, fs.readFileSync(path.join(dir, 'db', f)).toString('hex'))
  return out
}

const isCode = (code: string) => (err: unknown) => err instanceof StorageError && err.code === code

test('LevelStore: garbage in the log file fails the open (ERR_STORAGE_CORRUPT), twice, files untouched', async (t) => {
  const dir = tempDir(t)
  await filled(dir)
  const [log] = dbFiles(dir, '.log')
  assert.ok(log, 'log')
  const size = fs.statSync(path.join(dir, 'db', log)).size
  scribble(path.join(dir, 'db', log), Math.floor(size / 2))
  const before = snapshot(dir)
  for (let i = 0; i < 2; i++) {
    const store = new LevelStore({ dir })
    await assert.rejects(store.open(), (err: unknown) => isCode('ERR_STORAGE_CORRUPT')(err) && /\.log at byte \d+: (checksum mismatch|bad record length)/.test((err as Error).message))
    await store.close()
  }
  assert.deepEqual(snapshot(dir), before, 'a refused open leaves every file as it was')

  const { logger, warnings } = capture()
  const repaired = new LevelStore({ dir, repair: true, logger })
  await repaired.open()
  assert.equal(repaired.repairs.length, 1)
  assert.equal(repaired.repairs[0]?.reason, 'corrupt')
  assert.equal(warnings.length, 1)
  assert.match(warnings[0] ?? '', /storage repaired: lost .*\.log at byte \d+: /)
  await repaired.close()
  const left = await count(dir)
  assert.ok(left > 0 && left < KEYS, `repair keeps what can be read (${left} of ${KEYS})`)
})

test('LevelStore: a damaged table file fails the open (ERR_STORAGE_CORRUPT); repair keeps the rest', async (t) => {
  const dir = tempDir(t)
  await filled(dir)
  assert.equal(await count(dir), KEYS) // this open turned the log into a table
  const [table] = dbFiles(dir, '.ldb')
  assert.ok(table, 'a table file exists')
  assert.equal(await count(dir), KEYS) // this open checked the table and recorded it intact
  const checked = JSON.parse(fs.readFileSync(path.join(dir, 'db-checked'), 'utf8')) as Record<string, string>
  assert.deepEqual(Object.keys(checked), [table], 'the intact table is recorded, so later opens skip it')
  // Same size, later modification time: a table recorded intact is read again.
  await new Promise((r) => setTimeout(r, 20))
  scribble(path.join(dir, 'db', table), 200)
  const store = new LevelStore({ dir })
  await assert.rejects(store.open(), (err: unknown) => isCode('ERR_STORAGE_CORRUPT')(err) && /\.ldb at byte \d+: block checksum mismatch/.test((err as Error).message))
  await store.close()

  const { logger, warnings } = capture()
  const repaired = new LevelStore({ dir, repair: true, logger })
  await repaired.open()
  await repaired.close()
  assert.equal(warnings.length, 1)
  assert.match(warnings[0] ?? '', /lost .*\.ldb/)
  assert.ok((await count(dir)) < KEYS, '(await count(dir)) < KEYS')
})

test('LevelStore: a ruined table footer is damage too', async (t) => {
  const dir = tempDir(t)
  await filled(dir)
  await count(dir)
  const [table] = dbFiles(dir, '.ldb')
  assert.ok(table, 'table')
  const file = path.join(dir, 'db', table)
  scribble(file, fs.statSync(file).size - 32)
  const store = new LevelStore({ dir })
  await assert.rejects(store.open(), isCode('ERR_STORAGE_CORRUPT'))
  await store.close()
})

test('LevelStore: a deleted db/ under an existing data directory is ERR_STORAGE_LOST, not a new empty store', async (t) => {
  const dir = tempDir(t)
  await filled(dir)
  fs.writeFileSync(path.join(dir, 'identity'), 'stays')
  fs.rmSync(path.join(dir, 'db'), { recursive: true })
  const store = new LevelStore({ dir })
  await assert.rejects(store.open(), (err: unknown) => isCode('ERR_STORAGE_LOST')(err) && /is gone/.test((err as Error).message))
  await store.close()
  assert.equal(fs.existsSync(path.join(dir, 'db', 'CURRENT')), false, 'a refused open makes no new database')

  const { logger, warnings } = capture()
  const repaired = new LevelStore({ dir, repair: true, logger })
  await repaired.open()
  await repaired.close()
  assert.equal(repaired.repairs[0]?.reason, 'lost')
  assert.match(warnings[0] ?? '', /lost every stored circle, outbox message/)
  // From now on the new database is this directory's own: opens quietly.
  const again = new LevelStore({ dir })
  await again.open()
  await again.close()
})

test("LevelStore: another directory's db/ put in place is ERR_STORAGE_LOST", async (t) => {
  const [a, b] = [tempDir(t), tempDir(t)]
  await filled(a)
  await filled(b)
  fs.rmSync(path.join(a, 'db'), { recursive: true })
  fs.cpSync(path.join(b, 'db'), path.join(a, 'db'), { recursive: true })
  const store = new LevelStore({ dir: a })
  await assert.rejects(store.open(), (err: unknown) => isCode('ERR_STORAGE_LOST')(err) && /not the one it was made with/.test((err as Error).message))
  await store.close()
})

test('LevelStore: a fresh directory, a clean reopen and a log cut at its end open quietly', async (t) => {
  const dir = tempDir(t)
  const { logger, warnings } = capture()
  await filled(dir)
  const [log] = dbFiles(dir, '.log')
  assert.ok(log, 'log')
  const file = path.join(dir, 'db', log)
  // A writer killed mid-record leaves a cut record at the end: LevelDB ignores it, and so do we.
  fs.truncateSync(file, fs.statSync(file).size - 50)
  const store = new LevelStore({ dir, logger })
  await store.open()
  await store.close()
  assert.equal(await count(dir), KEYS - 1)
  assert.deepEqual(warnings, [])
  assert.deepEqual(await new LevelStore({ dir }).open().then(() => 'ok'), 'ok')
})

test('LevelStore: the reserved db-id key is hidden from reads and refused for writes', async (t) => {
  const dir = tempDir(t)
  const store = new LevelStore({ dir })
  t.after(() => store.close())
  await store.put('a', '1')
  const keys: string[] = []
  for await (const e of store.createReadStream()) keys.push((e as { key: string }).key)
  assert.deepEqual(keys, ['a'])
  await assert.rejects(store.put('\u0000db-id', 'x'), isCode('ERR_STORAGE_BAD_KEY'))
  await assert.rejects(store.batch([{ type: 'del', key: '\u0000db-id' }]), isCode('ERR_STORAGE_BAD_KEY'))
})

test('checkLogBytes: a record whose bytes changed is found, the same record intact is not', () => {
  // One FULL record "hello" in a 32 KiB block: masked crc32c over type and data, length, type.
  const data = Buffer.from('hello')
  const crc = CRC32C.buf(Buffer.concat([Buffer.from([1]), data])) >>> 0
  const masked = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0
  const header = Buffer.alloc(7)
  header.writeUInt32LE(masked, 0)
  header.writeUInt16LE(data.length, 4)
  header[6] = 1
  const block = Buffer.concat([header, data, Buffer.alloc(32768 - 12)])
  assert.deepEqual(checkLogBytes('x.log', block).damage, [])
  block[8] = 0x41 // 'hello' -> 'hAllo'
  const bad = checkLogBytes('x.log', block)
  assert.equal(bad.damage.length, 1)
  assert.equal(bad.damage[0]?.reason, 'checksum mismatch')
})

test('Platform: a stored friends circle is never quietly gone (corrupt log, deleted db/)', async (t) => {
  const dir = tempDir(t)
  const friend = randomSignId()
  const first = new Platform({ dataDir: dir, tcp: false, udp: false })
  await first.ready()
  first.messaging.send('friends.update', 'local', [friend])
  const started = Date.now()
  while ((await first.storage.get('circle.friends')) === undefined && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10))
  await first.close()

  const [log] = dbFiles(dir, '.log')
  assert.ok(log, 'log')
  const copy = tempDir(t)
  fs.cpSync(dir, copy, { recursive: true })
  scribble(path.join(dir, 'db', log), 20)
  const corrupt = new Platform({ dataDir: dir, tcp: false, udp: false })
  corrupt.on('error', () => {})
  await assert.rejects(corrupt.ready(), isCode('ERR_STORAGE_CORRUPT'))
  await corrupt.close()

  fs.rmSync(path.join(copy, 'db'), { recursive: true })
  const lost = new Platform({ dataDir: copy, tcp: false, udp: false })
  lost.on('error', () => {})
  await assert.rejects(lost.ready(), isCode('ERR_STORAGE_LOST'))
  await lost.close()

  const { logger, warnings } = capture()
  const repaired = new Platform({ dataDir: copy, tcp: false, udp: false, repairStorage: true, logger })
  await repaired.ready()
  assert.equal(repaired.scopeOf(friend), 'public')
  assert.ok(warnings.some((w) => /lost every stored circle/.test(w)), 'warnings.some((w) => /lost every stored circle/.test(w))')
  await repaired.close()
})
