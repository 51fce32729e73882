/** Small files written so that a crash leaves the old content or the new, whole and on disk. */
import fs from 'node:fs'
import { StorageError } from '../errors.js'

/**
 * Writes `value` to `file` (inside `dir`, made 0700 if missing) with mode 0600.
 * @throws StorageError ERR_STORAGE_UNAVAILABLE when the file cannot be written.
 */
export function writeFileDurably(dir: string, file: string, value: string): void {
  // Write, fsync, rename, fsync the directory: a crash leaves the old key or the new one, whole
  // and on disk (without the first fsync the rename may reach the disk before the data does,
  // leaving an empty file; without the second the rename itself may be lost).
  const tmp = `${file}.${process.pid}.tmp`
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const fd = fs.openSync(tmp, 'w', 0o600)
    try {
      fs.writeFileSync(fd, value)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
    syncDirectory(dir)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot write ${file}: ${(err as Error).message}`, { cause: err })
  }
}

/** fsync of a directory, so a rename in it is durable; a no-op where directories cannot be opened (Windows). */
function syncDirectory(dir: string): void {
  let fd: number
  try {
    fd = fs.openSync(dir, 'r')
  } catch {
    return
  }
  try {
    fs.fsyncSync(fd)
  } catch {
    // Some file systems refuse fsync on a directory (EINVAL): the data itself is synced.
  } finally {
    fs.closeSync(fd)
  }
}
