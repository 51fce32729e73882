/**
 * Checks a LevelDB directory's files before LevelDB opens them, because LevelDB itself does not
 * report what it loses: on open it replays its write-ahead log (`*.log`), silently skips every
 * record whose checksum fails (classic-level does not expose `paranoid_checks`) and then deletes
 * that log, so a damaged log means keys gone without a word, and gone for good after one open.
 * Table files (`*.ldb`, `*.sst`) are read with `verify_checksums` off, so damage there surfaces
 * late, or as wrong values.
 *
 * Formats, from LevelDB's `doc/log_format.md` and `doc/table_format.md`:
 * - log: 32 KiB blocks of records `crc32c:4 LE (masked) | length:2 LE | type:1 | data`, the
 *   checksum over type and data; types FULL=1, FIRST=2, MIDDLE=3, LAST=4; a block tail shorter
 *   than a header is zero padding. A record cut short at the end of the file is a writer that
 *   died mid-write (LevelDB ignores it, and so do we: nothing acknowledged was in it).
 * - table: blocks `contents | type:1 | crc32c:4 LE (masked, over contents and type)`; a 48-byte
 *   footer `metaindex handle | index handle | padding | magic:8`; handles are two varint64s;
 *   the index block's values are the handles of the data blocks; type 1 = Snappy.
 *
 * Reads files only; never writes. Pure apart from the reads.
 */
import fs from 'node:fs'
import path from 'node:path'
import CRC32C from 'crc-32/crc32c.js'
import snappy from 'snappyjs'

const LOG_BLOCK_BYTES = 32768
const LOG_HEADER_BYTES = 7
const TABLE_FOOTER_BYTES = 48
const BLOCK_TRAILER_BYTES = 5
/** 0xdb4775248b80fb57, little-endian. */
const TABLE_MAGIC = Buffer.from([0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb])
const CRC_MASK_DELTA = 0xa282ead8

enum RecordType {
  Zero = 0,
  Full = 1,
  First = 2,
  Middle = 3,
  Last = 4
}

/** One piece of damage found: which file, where, and how many bytes LevelDB would drop. */
export interface Damage {
  file: string
  offset: number
  bytes: number
  reason: string
}

/** What a check found. `damage` empty means every complete record and block checked out. */
export interface CheckReport {
  filesChecked: number
  bytesChecked: number
  damage: Damage[]
  /** Bytes at the end of a log that a writer left half-written (normal after a crash). */
  tornTailBytes: number
  /** Fingerprints (`size:mtimeMs`) of the live tables found intact, or known intact, by name. */
  intactTables: Record<string, string>
}

function unmask(masked: number): number {
  const rot = (masked - CRC_MASK_DELTA) >>> 0
  return ((rot >>> 17) | (rot << 15)) >>> 0
}

/** Masked CRC32C of `type` followed by `data`, as LevelDB stores it. */
function checksumOf(type: number, data: Uint8Array): number {
  return CRC32C.buf(data, CRC32C.buf(TYPE_BYTES[type] as Uint8Array)) >>> 0
}

/** One byte per record type, to start a checksum with. */
const TYPE_BYTES = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i))

function crc32c(data: Uint8Array): number {
  return CRC32C.buf(data) >>> 0
}

/**
 * Checks one log file's records as LevelDB's log reader would read them, reporting each place
 * where LevelDB would drop bytes; with `collect`, also returns the records (for the MANIFEST).
 */
export function checkLogBytes(file: string, bytes: Uint8Array, collect = false): { damage: Damage[]; tornTailBytes: number; records: Buffer[] } {
  const damage: Damage[] = []
  const records: Buffer[] = []
  let fragments: Buffer[] = []
  let tornTailBytes = 0
  let inFragment = false
  let fragmentStart = 0
  for (let blockStart = 0; blockStart < bytes.length; blockStart += LOG_BLOCK_BYTES) {
    const blockEnd = Math.min(blockStart + LOG_BLOCK_BYTES, bytes.length)
    const lastBlock = blockEnd === bytes.length && blockEnd - blockStart < LOG_BLOCK_BYTES
    let pos = blockStart
    while (blockEnd - pos >= LOG_HEADER_BYTES) {
      const view = Buffer.from(bytes.buffer, bytes.byteOffset + pos, blockEnd - pos)
      const stored = view.readUInt32LE(0)
      const length = view.readUInt16LE(4)
      const type = view[6] as number
      if (LOG_HEADER_BYTES + length > view.length) {
        // Past the end of the file: a writer cut off mid-record, if the header is one a writer
        // could have made (a known type, a record that fits in its block); else damage, where
        // LevelDB would quietly drop the rest of the file.
        const fitsBlock = pos - blockStart + LOG_HEADER_BYTES + length <= LOG_BLOCK_BYTES
        const knownType = type >= RecordType.Full && type <= RecordType.Last
        if (lastBlock && fitsBlock && knownType) tornTailBytes += view.length
        else damage.push({ file, offset: pos, bytes: blockEnd - pos, reason: 'bad record length' })
        pos = blockEnd
        break
      }
      if (type === RecordType.Zero && length === 0) {
        pos = blockEnd // preallocated space: LevelDB skips the rest of the block
        break
      }
      const data = view.subarray(LOG_HEADER_BYTES, LOG_HEADER_BYTES + length)
      if (checksumOf(type, data) !== unmask(stored)) {
        damage.push({ file, offset: pos, bytes: blockEnd - pos, reason: 'checksum mismatch' })
        pos = blockEnd
        break
      }
      const recordAt = pos
      pos += LOG_HEADER_BYTES + length
      switch (type) {
        case RecordType.Full:
          if (inFragment) damage.push({ file, offset: fragmentStart, bytes: recordAt - fragmentStart, reason: 'partial record without end' })
          inFragment = false
          if (collect) records.push(Buffer.from(data))
          break
        case RecordType.First:
          if (inFragment) damage.push({ file, offset: fragmentStart, bytes: recordAt - fragmentStart, reason: 'partial record without end' })
          inFragment = true
          fragmentStart = recordAt
          fragments = collect ? [Buffer.from(data)] : []
          break
        case RecordType.Middle:
        case RecordType.Last:
          if (!inFragment) {
            damage.push({ file, offset: recordAt, bytes: LOG_HEADER_BYTES + length, reason: 'missing start of fragmented record' })
            break
          }
          if (collect) fragments.push(Buffer.from(data))
          if (type === RecordType.Last) {
            if (collect) records.push(Buffer.concat(fragments))
            fragments = []
            inFragment = false
          }
          break
        default:
          damage.push({ file, offset: recordAt, bytes: LOG_HEADER_BYTES + length, reason: `unknown record type ${type}` })
          inFragment = false
      }
    }
    if (lastBlock && blockEnd - pos > 0 && blockEnd - pos < LOG_HEADER_BYTES) tornTailBytes += blockEnd - pos
  }
  // A fragmented record open at the end of the file is a torn write, not damage.
  if (inFragment) tornTailBytes += bytes.length - fragmentStart
  return { damage, tornTailBytes, records }
}

function readVarint(buf: Buffer, pos: number): { value: number; next: number } {
  let value = 0
  let shift = 0
  for (let i = pos; i < buf.length && shift <= 49; i++) {
    const byte = buf[i] as number
    value += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) return { value, next: i + 1 }
    shift += 7
  }
  throw new Error('bad varint')
}

/**
 * Checks the trailer of the block at a handle; with `contents`, returns them decompressed (only
 * the index is read: decompressing every data block would cost ~20x the checksums).
 */
function readBlock(buf: Buffer, offset: number, size: number, contentsWanted = true): Buffer {
  if (offset + size + BLOCK_TRAILER_BYTES > buf.length) throw new Error('block handle past the end of the file')
  const contents = buf.subarray(offset, offset + size)
  const type = buf[offset + size] as number
  const stored = buf.readUInt32LE(offset + size + 1)
  // Tables checksum the contents then the type byte (logs: the type first).
  if ((crc32c(buf.subarray(offset, offset + size + 1)) >>> 0) !== unmask(stored)) throw new Error('block checksum mismatch')
  if (type > 1) throw new Error(`unknown block compression type ${type}`)
  if (type === 0 || !contentsWanted) return contents
  return Buffer.from(snappy.uncompress(contents))
}

/** The block handles held as values in an index block. */
function indexHandles(block: Buffer): Array<{ offset: number; size: number }> {
  if (block.length < 4) throw new Error('index block too short')
  const restarts = block.readUInt32LE(block.length - 4)
  const end = block.length - 4 - 4 * restarts
  if (end < 0) throw new Error('bad restart count in index block')
  const handles: Array<{ offset: number; size: number }> = []
  let pos = 0
  while (pos < end) {
    const shared = readVarint(block, pos)
    const unshared = readVarint(block, shared.next)
    const valueLength = readVarint(block, unshared.next)
    const valueAt = valueLength.next + unshared.value
    if (valueAt + valueLength.value > end) throw new Error('index entry past the end of its block')
    const value = block.subarray(valueAt, valueAt + valueLength.value)
    const offset = readVarint(value, 0)
    const size = readVarint(value, offset.next)
    handles.push({ offset: offset.value, size: size.value })
    pos = valueAt + valueLength.value
  }
  return handles
}

/** Checks a table file's footer, index, metaindex and every data block's checksum. */
export function checkTableBytes(file: string, buf: Buffer): Damage[] {
  try {
    if (buf.length < TABLE_FOOTER_BYTES) throw new Error('shorter than a table footer')
    const footer = buf.subarray(buf.length - TABLE_FOOTER_BYTES)
    if (!footer.subarray(40).equals(TABLE_MAGIC)) throw new Error('bad table magic number')
    const metaOffset = readVarint(footer, 0)
    const metaSize = readVarint(footer, metaOffset.next)
    const indexOffset = readVarint(footer, metaSize.next)
    const indexSize = readVarint(footer, indexOffset.next)
    readBlock(buf, metaOffset.value, metaSize.value, false)
    const damage: Damage[] = []
    for (const handle of indexHandles(readBlock(buf, indexOffset.value, indexSize.value))) {
      try {
        readBlock(buf, handle.offset, handle.size, false)
      } catch (err) {
        damage.push({ file, offset: handle.offset, bytes: handle.size + BLOCK_TRAILER_BYTES, reason: (err as Error).message })
      }
    }
    return damage
  } catch (err) {
    return [{ file, offset: 0, bytes: buf.length, reason: (err as Error).message }]
  }
}

/** The files the database's current version uses, from its MANIFEST (VersionEdit records). */
interface LiveFiles {
  tables: Set<number>
  logNumber: number
  prevLogNumber: number
}

// VersionEdit tags (LevelDB db/version_edit.cc).
const TAG_COMPARATOR = 1
const TAG_LOG_NUMBER = 2
const TAG_NEXT_FILE_NUMBER = 3
const TAG_LAST_SEQUENCE = 4
const TAG_COMPACT_POINTER = 5
const TAG_DELETED_FILE = 6
const TAG_NEW_FILE = 7
const TAG_PREV_LOG_NUMBER = 9

/**
 * Replays the MANIFEST named by CURRENT. Null when it cannot be read or parsed: LevelDB's own
 * open then reports it (it reads the MANIFEST strictly).
 */
function liveFiles(dbDir: string): LiveFiles | null {
  try {
    const current = fs.readFileSync(path.join(dbDir, 'CURRENT'), 'utf8').trim()
    if (!/^MANIFEST-\d+$/.test(current)) return null
    const { records, damage } = checkLogBytes(current, fs.readFileSync(path.join(dbDir, current)), true)
    if (damage.length) return null
    const live: LiveFiles = { tables: new Set(), logNumber: 0, prevLogNumber: 0 }
    for (const edit of records) {
      let pos = 0
      const next = (): number => {
        const v = readVarint(edit, pos)
        pos = v.next
        return v.value
      }
      const skipBytes = (): void => {
        const n = next()
        pos += n
      }
      while (pos < edit.length) {
        const tag = next()
        switch (tag) {
          case TAG_COMPARATOR:
            skipBytes()
            break
          case TAG_LOG_NUMBER:
            live.logNumber = next()
            break
          case TAG_PREV_LOG_NUMBER:
            live.prevLogNumber = next()
            break
          case TAG_NEXT_FILE_NUMBER:
          case TAG_LAST_SEQUENCE:
            next()
            break
          case TAG_COMPACT_POINTER:
            next()
            skipBytes()
            break
          case TAG_DELETED_FILE:
            next()
            live.tables.delete(next())
            break
          case TAG_NEW_FILE: {
            next()
            const number = next()
            next()
            skipBytes()
            skipBytes()
            live.tables.add(number)
            break
          }
          default:
            return null
        }
      }
    }
    return live
  } catch {
    return null
  }
}

/**
 * Checks every log and table file in a LevelDB directory (`dbDir` may be missing: nothing to
 * check). Files that vanish while we look (LevelDB is not open, so none should) are skipped.
 *
 * LevelDB never rewrites a table file, so a live table whose size and modification time are
 * those of `knownIntact` (from an earlier check) is not read again: opening a big store costs
 * only its new files. Writing into a table changes its modification time, so it is read again.
 */
export function checkLevelDir(dbDir: string, knownIntact: Record<string, string> = {}): CheckReport {
  const report: CheckReport = { filesChecked: 0, bytesChecked: 0, damage: [], tornTailBytes: 0, intactTables: {} }
  let names: string[]
  try {
    names = fs.readdirSync(dbDir)
  } catch {
    return report
  }
  // Only the files the database uses: a writer killed mid-compaction leaves a half-written table
  // that no version names, and an obsolete log may linger; LevelDB deletes both unread.
  const live = liveFiles(dbDir)
  if (live) {
    for (const number of live.tables) {
      const base = String(number).padStart(6, '0')
      if (!names.includes(`${base}.ldb`) && !names.includes(`${base}.sst`)) {
        report.damage.push({ file: `${base}.ldb`, offset: 0, bytes: 0, reason: 'table file missing' })
      }
    }
  }
  for (const name of names.sort()) {
    const isLog = name.endsWith('.log') && name !== 'LOG'
    const isTable = name.endsWith('.ldb') || name.endsWith('.sst')
    if (!isLog && !isTable) continue
    const number = parseInt(name, 10)
    if (live && isTable && !live.tables.has(number)) continue
    if (live && isLog && number < live.logNumber && number !== live.prevLogNumber) continue
    let bytes: Buffer
    let fingerprint = ''
    try {
      if (isTable) {
        const st = fs.statSync(path.join(dbDir, name))
        fingerprint = `${st.size}:${st.mtimeMs}`
        if (knownIntact[name] === fingerprint) {
          report.intactTables[name] = fingerprint
          continue
        }
      }
      bytes = fs.readFileSync(path.join(dbDir, name))
    } catch {
      continue
    }
    report.filesChecked++
    report.bytesChecked += bytes.length
    if (isLog) {
      const log = checkLogBytes(name, bytes)
      report.damage.push(...log.damage)
      report.tornTailBytes += log.tornTailBytes
    } else {
      const damage = checkTableBytes(name, bytes)
      report.damage.push(...damage)
      if (damage.length === 0) report.intactTables[name] = fingerprint
    }
  }
  return report
}

/** One line per damaged place, for errors and warnings. */
export function describeDamage(damage: Damage[]): string {
  const lines = damage.slice(0, 5).map((d) => `${d.file} at byte ${d.offset}: ${d.reason} (${d.bytes} bytes)`)
  if (damage.length > 5) lines.push(`and ${damage.length - 5} more`)
  return lines.join('; ')
}
