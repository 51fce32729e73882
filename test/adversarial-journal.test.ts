/**
 * The seen-id journal under attack (src/storage/level-journal.ts): the victim on the default
 * LevelDB store, six throwaway identities flooding tiny durable frames (ids over 16 streams with
 * scattered seqs: every one new, every record a bitmap) and never reading. Each record batch is a
 * synchronous append of every dirty sender's whole record, so the attack decides how much is
 * written; the journal's files must stay bounded on disk (checkpoints every 2 s or past 4 MiB
 * delete the older ones), the victim within the suite's memory budget, and the friend served.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import type { TcpChannel } from '../src/connections/tcp-channel.js'
import { CHECKPOINT_BYTES } from '../src/storage/level-journal.js'
import { durableFlood, floodReport, floodSetup, floodTeardown, friendDuring } from './helpers/adversarial-flood.js'
import { MiB } from './helpers/victim.js'

const IDENTITIES = 6
/** The suite's budget for any attack (README, "Resource budget"). */
const BUDGET = 96 * MiB
/** On disk at once: the file being written, and the one before it until its checkpoint is done. */
const JOURNAL_BOUND = 3 * CHECKPOINT_BYTES

/** Bytes of the journal files in `dir` now (a file deleted while listed counts as gone); adds their names to `seen`. */
function journalBytes(dir: string, seen: Set<string>): number {
  let bytes = 0
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith('journal.')) continue
    seen.add(name)
    try {
      bytes += fs.statSync(path.join(dir, name)).size
    } catch {
      // deleted by a checkpoint in between
    }
  }
  return bytes
}

test('durable flood on the default LevelDB store: the seen-id journal stays bounded on disk, memory within budget, friend served', { timeout: 90_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-journal-victim-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  process.env.STORE_DIR = dir
  // The young generation at its smallest, as in the other floods (see adversarial-flood.test.ts).
  const s = await floodSetup({}, '--max-semi-space-size=1').finally(() => delete process.env.STORE_DIR)
  t.after(() => floodTeardown(s))
  const channels: TcpChannel[] = []
  t.after(() => Promise.all(channels.map((c) => c.close())))
  let peakJournal = 0
  const files = new Set<string>()
  const watch = setInterval(() => {
    peakJournal = Math.max(peakJournal, journalBytes(dir, files))
  }, 25)
  t.after(() => clearInterval(watch))
  let sent = 0
  const attack = durableFlood(s, IDENTITIES, channels).then((n) => (sent = n))
  const trips = await friendDuring(s, attack)
  clearInterval(watch)
  const after = await s.victim.memory()
  t.diagnostic(`${floodReport(`durable flood on LevelDB (${IDENTITIES} identities)`, s, after, sent, trips)}; journal on disk peaked at ${(peakJournal / MiB).toFixed(2)} MiB, ${files.size} files in turn`)
  assert.ok(s.victim.alive, 'the victim is up')
  assert.ok(trips > 0, 'the friend was served during the attack')
  assert.ok(files.size > 0, 'the records went through the journal')
  // Checkpoints (every 2 s while records come) moved them to LevelDB and started new files.
  assert.ok(files.size >= 2, `${files.size} journal files in turn: checkpoints ran during the flood`)
  assert.ok(peakJournal <= JOURNAL_BOUND, `the journal peaked at ${(peakJournal / MiB).toFixed(1)} MiB on disk (bound ${JOURNAL_BOUND / MiB})`)
  assert.ok(after.peakRss - s.before.rss < BUDGET, `victim RSS grew ${((after.peakRss - s.before.rss) / MiB).toFixed(1)} MiB (budget ${BUDGET / MiB})`)
})
