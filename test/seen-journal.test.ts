// The seen-id record on the default store goes through the store's journal (level-journal.ts):
// each record batch is one synchronous append to a file, moved to LevelDB by checkpoints. Nothing
// whose record resolved is lost to a SIGKILL, reads see journaled records, a journal line that
// does not decode is dropped with a warning, and a damaged record it held is dropped by the
// platform with a warning.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { Platform } from '../src/index.js'
import { LevelStore } from '../src/storage/level-store.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { SeenIds } from '../src/storage/seen-ids.js'
import { CHECKPOINT_MS } from '../src/storage/level-journal.js'
import type { Logger } from '../src/logger.js'
import { tempDir } from './helpers/index.js'

const STREAM = '0123456789abcdef'
const journals = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.startsWith('journal.'))

test('seen ids on LevelDB: a writer killed with SIGKILL loses no id whose record resolved (journal replayed at open, across checkpoints)', async (t) => {
  const dir = tempDir(t)
  const reported = new Map<string, number>()
  let from = 0
  for (let round = 0; round < 2; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join('test', 'fixtures', 'seen-crash-child.ts')], {
      env: { ...process.env, DATA_DIR: dir, FROM: String(from), NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stderr = ''
    let buffered = ''
    let started = 0
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal))) // stdout read to its end
    // Killed past a checkpoint (so some records are in LevelDB, the latest only in the journal).
    const killAt = CHECKPOINT_MS + 500 + Math.floor(Math.random() * 1000)
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString()
      const parts = buffered.split('\n')
      buffered = parts.pop() ?? ''
      for (const line of parts) {
        if (line === 'ready') {
          started = Date.now()
          setTimeout(() => child.kill('SIGKILL'), killAt)
        }
        const m = /^([abc]) (\d+)$/.exec(line)
        if (m) reported.set(m[1]!, Math.max(reported.get(m[1]!) ?? -1, Number(m[2])))
      }
    })
    const signal = await exited
    assert.equal(signal, 'SIGKILL', `the child was killed, not ended (${stderr.slice(0, 500)})`)
    assert.ok(started > 0 && reported.size === 3, 'the child recorded ids')
    const storage = new PlatformStorage(new LevelStore({ dir }))
    await storage.open()
    const seen = await SeenIds.open({ storage })
    for (const [sender, high] of reported) {
      assert.equal(seen.hasSeq(sender, STREAM, high), true, `${sender} ${high} resolved, so it is seen after the crash`)
      // (stdout may lag the records: the child can have recorded more than it printed)
      assert.equal(seen.hasSeq(sender, STREAM, high + 1_000_000), false, 'a far later one is not')
      from = Math.max(from, high + 1_000_000)
    }
    await seen.close()
    await storage.close()
    assert.deepEqual(journals(dir), [], 'a clean close leaves no journal: its records are in LevelDB')
  }
})

test('seen ids on LevelDB: a record batch is journaled, not a LevelDB write; reads see it; close moves it to LevelDB', async (t) => {
  const dir = tempDir(t)
  const store = new LevelStore({ dir })
  const storage = new PlatformStorage(store)
  await storage.open()
  const seen = await SeenIds.open({ storage })
  let levelWrites = 0
  const level = (store as unknown as { level: { batch: () => unknown } }).level
  const batch = level.batch.bind(level)
  level.batch = () => (levelWrites++, batch())
  const spares = (store as unknown as { spareBatches: unknown[] }).spareBatches
  spares.length = 0
  for (let seq = 0; seq < 20; seq++) await seen.recordSeq('s', STREAM, seq, Date.now() + 60_000)
  assert.equal(levelWrites, 0, 'no LevelDB batch per record')
  assert.equal(journals(dir).length, 1, 'one journal file')
  assert.match((await storage.get('seen.s')) as string, /"0123456789abcdef":\[19,/, 'get sees the journaled record')
  assert.equal((await storage.range({ gte: 'seen.', lt: 'seen.\uffff' })).length, 1, 'range sees it (after a checkpoint)')
  assert.deepEqual(journals(dir), [], 'the checkpoint deleted the journal')
  await seen.recordSeq('s', STREAM, 20, Date.now() + 60_000)
  await seen.close()
  await storage.close()
  const again = new PlatformStorage(new LevelStore({ dir }))
  await again.open()
  assert.match((await again.get('seen.s')) as string, /"0123456789abcdef":\[20,/)
  assert.deepEqual(journals(dir), [])
  await again.close()
})

test('seen ids on LevelDB with sync: a record is a LevelDB write (flushed on its threadpool), never a journal append (its flush would block the event loop)', async (t) => {
  const dir = tempDir(t)
  const store = new LevelStore({ dir })
  const storage = new PlatformStorage(store)
  await storage.open()
  const seen = await SeenIds.open({ storage, sync: true })
  let levelWrites = 0
  const level = (store as unknown as { level: { batch: () => unknown } }).level
  const batch = level.batch.bind(level)
  level.batch = () => (levelWrites++, batch())
  const spares = (store as unknown as { spareBatches: unknown[] }).spareBatches
  for (let seq = 0; seq < 5; seq++) {
    spares.length = 0 // a new chained batch each time, so each write is counted
    await seen.recordSeq('s', STREAM, seq, Date.now() + 60_000)
  }
  assert.equal(levelWrites, 5, 'one LevelDB batch per record')
  assert.deepEqual(journals(dir), [], 'no journal file')
  await seen.close()
  await storage.close()
})

test('seen ids on LevelDB: a journal line that does not decode is dropped with a warning, the others replayed; a damaged record is dropped by the platform with a warning', async (t) => {
  const dir = tempDir(t)
  const first = new Platform({ dataDir: dir, tcp: false, udp: false })
  await first.ready()
  await first.close()
  const good = JSON.stringify({ [STREAM]: [5, Date.now() + 60_000] })
  fs.writeFileSync(path.join(dir, 'journal.3'), `${JSON.stringify(['seen.good', good])}\n{"torn\n${JSON.stringify(['seen.bad', 'not json'])}\n`)
  const warnings: string[] = []
  const logger = { warn: (_o: unknown, msg?: string) => void warnings.push(String(msg ?? _o)), info() {}, error() {}, debug() {}, trace() {}, fatal() {}, child: () => logger, level: 'warn' } as unknown as Logger
  const second = new Platform({ dataDir: dir, tcp: false, udp: false, logger })
  await second.ready()
  await second.close()
  assert.ok(warnings.some((w) => /journal.*do not decode/.test(w)), `the torn line is told (${warnings.join(' | ')})`)
  assert.ok(warnings.some((w) => /seen ids: a damaged record was dropped/.test(w)), 'the damaged record is dropped with a warning')
  assert.deepEqual(journals(dir), [], 'the journal was replayed and deleted')
  const storage = new PlatformStorage(new LevelStore({ dir }))
  await storage.open()
  const seen = await SeenIds.open({ storage })
  assert.equal(seen.hasSeq('good', STREAM, 5), true, 'the good line was replayed')
  await seen.close()
  await storage.close()
})
