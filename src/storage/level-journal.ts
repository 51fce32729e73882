/**
 * A write-ahead journal beside LevelDB for the keys of one prefix (the seen-id record,
 * seen-ids.ts, whose every message waits for a write before its ACK): a batch of those keys is
 * appended to a file with one synchronous write() and is done when that returns. A LevelDB write
 * goes through libuv's threadpool and back through the event loop: ~20-30 us of CPU across the
 * two threads per write (measured one at a time, classic-level 3), against ~2 us here. The
 * durability is LevelDB's own without `sync`: in the OS once done, so it survives a crash of the
 * process. A `sync` batch is not journaled (level-store.ts): its flush would block the event loop.
 *
 * Every {@link CHECKPOINT_MS} (or past {@link CHECKPOINT_BYTES}, or at close) the latest value of
 * each key journaled goes to LevelDB in one batch (a checkpoint) and the journal files before it
 * are deleted. An open replays the files left by a crash into LevelDB first, oldest first.
 *
 * Files: `<dir>/journal.<n>` (n counts up), lines of JSON `[key, value]` (`null`: deleted). A line
 * that does not decode is skipped with a warning (a torn last line after a power loss): the record
 * it held is then the one before it.
 */
import fs from 'node:fs'
import path from 'node:path'
import { StorageError } from '../errors.js'
import type { BatchOp } from './store.js'

export const CHECKPOINT_MS = 2_000
export const CHECKPOINT_BYTES = 4 * 1024 * 1024
const FILE_RE = /^journal\.(\d{1,15})$/

/** The journal files in `dir`, oldest first. */
function journalFiles(dir: string): Array<{ gen: number; file: string }> {
  const out: Array<{ gen: number; file: string }> = []
  for (const name of fs.readdirSync(dir)) {
    const m = FILE_RE.exec(name)
    if (m) out.push({ gen: Number(m[1]), file: path.join(dir, name) })
  }
  return out.sort((a, b) => a.gen - b.gen)
}

/**
 * What the journal files left in `dir` hold: the latest value of each key, as ops (a del for
 * `null`), the files, and the next file number. Lines that do not decode are told to `warn`.
 */
export function readJournal(dir: string, warn: (message: string) => void): { ops: BatchOp[]; files: string[]; nextGen: number } {
  const files = journalFiles(dir)
  const latest = new Map<string, string | null>()
  for (const { file } of files) {
    const lines = fs.readFileSync(file, 'utf8').split('\n')
    let bad = 0
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string
      if (line === '' && i === lines.length - 1) break
      let entry: unknown
      try {
        entry = JSON.parse(line)
      } catch {
        entry = undefined
      }
      if (Array.isArray(entry) && entry.length === 2 && typeof entry[0] === 'string' && (typeof entry[1] === 'string' || entry[1] === null)) latest.set(entry[0], entry[1])
      else bad++
    }
    if (bad) warn(`${bad} record(s) of the journal ${file} do not decode and are dropped: a seen message id there may be forgotten, so a message may reach the handlers again`)
  }
  const ops: BatchOp[] = []
  for (const [key, value] of latest) ops.push(value === null ? { type: 'del', key } : { type: 'put', key, value })
  return { ops, files: files.map((f) => f.file), nextGen: (files.at(-1)?.gen ?? 0) + 1 }
}

export class LevelJournal {
  /** Journaled, not yet in LevelDB: key -> value (null: deleted). */
  readonly pending = new Map<string, string | null>()
  private fd: number | undefined
  private gen: number
  private bytes = 0
  /** Files whose records are all in `pending` or LevelDB: deleted after the next checkpoint. */
  private readonly old: string[] = []
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  /**
   * @param prefix the keys journaled
   * @param writeLevel writes ops to LevelDB (a checkpoint)
   */
  constructor(
    private readonly dir: string,
    readonly prefix: string,
    nextGen: number,
    private readonly writeLevel: (ops: BatchOp[]) => Promise<void>
  ) {
    this.gen = nextGen
  }

  /** True when every op is a text record under the prefix (a batch to journal). */
  takes(ops: BatchOp[]): boolean {
    for (const op of ops) if (!op.key.startsWith(this.prefix) || (op.type === 'put' && typeof op.value !== 'string')) return false
    return true
  }

  /** Appends ops (checked by the store) in one write; done when it returns. @throws StorageError */
  append(ops: BatchOp[]): void {
    let text = ''
    for (const op of ops) text += `[${JSON.stringify(op.key)},${op.type === 'put' ? JSON.stringify(op.value) : 'null'}]\n`
    try {
      this.fd ??= fs.openSync(path.join(this.dir, `journal.${this.gen}`), 'a', 0o600)
      // The text itself (no Buffer made); a short write (not seen on a regular file) is finished in bytes.
      const n = fs.writeSync(this.fd, text)
      const bytes = Buffer.byteLength(text)
      if (n < bytes) {
        const rest = Buffer.from(text).subarray(n)
        for (let off = 0; off < rest.length; ) off += fs.writeSync(this.fd, rest, off)
      }
      this.bytes += bytes
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot write the journal in ${this.dir}: ${(err as Error).message}`, { cause: err })
    }
    for (const op of ops) this.pending.set(op.key, op.type === 'put' ? (op.value as string) : null)
    if (this.bytes >= CHECKPOINT_BYTES) void this.checkpoint().catch(() => {})
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        void this.checkpoint().catch(() => {})
      }, CHECKPOINT_MS)
      this.timer.unref()
    }
  }

  /** True when a key in [gte, lt) waits for a checkpoint (a read of that range must wait for one). */
  overlaps(gte: string, lt: string): boolean {
    for (const key of this.pending.keys()) if (key >= gte && key < lt) return true
    return false
  }

  /**
   * Writes what is pending to LevelDB, then deletes the journal files before it. One at a time;
   * on failure the records stay pending (and in their files) for the next one.
   */
  checkpoint(): Promise<void> {
    if (this.running) return this.running.then(() => this.checkpoint())
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.pending.size === 0 && this.fd === undefined) return Promise.resolve()
    const taken = new Map(this.pending)
    this.pending.clear()
    if (this.fd !== undefined) {
      fs.closeSync(this.fd)
      this.fd = undefined
      this.old.push(path.join(this.dir, `journal.${this.gen}`))
      this.gen++
      this.bytes = 0
    }
    const ops: BatchOp[] = []
    for (const [key, value] of taken) ops.push(value === null ? { type: 'del', key } : { type: 'put', key, value })
    const run = (ops.length ? this.writeLevel(ops) : Promise.resolve()).then(
      () => {
        for (const file of this.old.splice(0)) fs.rmSync(file, { force: true })
      },
      (err: unknown) => {
        for (const [key, value] of taken) if (!this.pending.has(key)) this.pending.set(key, value)
        throw err
      }
    )
    this.running = run.finally(() => (this.running = undefined)).catch(() => {})
    return run
  }

  /** A last checkpoint (files left on failure are replayed at the next open). */
  async close(): Promise<void> {
    await this.checkpoint().catch(() => {})
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
  }
}
