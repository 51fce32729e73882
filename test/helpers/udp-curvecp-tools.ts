/**
 * DJB's CurveCP tools (Debian package nacl-tools) for the interop tests: finding them (a missing
 * tool fails under CI and skips locally), key directories from curvecpmakekey, hex keys from
 * curvecpprintkey, an identity made from such a directory, and child processes that end with
 * the test.
 */
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { boxBeforeNm } from '../../src/crypto/sodium.js'
import type { IdentityLike } from '../../src/identity/identity.js'

export const NACL_TOOLS = ['curvecpserver', 'curvecpclient', 'curvecpmessage', 'curvecpmakekey', 'curvecpprintkey'] as const
export const NACL_PACKAGE = 'nacl-tools'

/** The tools missing from PATH. */
export function missingTools(): string[] {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)
  return NACL_TOOLS.filter((tool) => !dirs.some((d) => {
    try {
      fs.accessSync(path.join(d, tool), fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  }))
}

/**
 * True when the tools are there. Otherwise: under CI (process.env.CI set) the test fails naming
 * the package; locally it is skipped with the same message.
 */
export function requireTools(t: TestContext): boolean {
  const missing = missingTools()
  if (missing.length === 0) return true
  const message = `DJB's CurveCP tools are missing (${missing.join(', ')}): install the Debian package ${NACL_PACKAGE} (scripts/install-debian-deps.sh)`
  if (process.env.CI) assert.fail(message)
  t.skip(message)
  return false
}

/** A fresh key directory made by curvecpmakekey, and its public key in hex from curvecpprintkey. */
export function makeKeyDir(parent: string, name: string): { dir: string; publicKeyHex: string } {
  const dir = path.join(parent, name)
  execFileSync('curvecpmakekey', [dir])
  const publicKeyHex = execFileSync('curvecpprintkey', [dir]).toString().trim()
  assert.match(publicKeyHex, /^[0-9a-f]{64}$/)
  return { dir, publicKeyHex }
}

/**
 * An identity holding the box key pair of a curvecpmakekey directory (publickey and
 * .expertsonly/secretkey). Only the box key: with `auth: 'none'` nothing signs.
 */
export function identityFromKeyDir(dir: string): IdentityLike {
  const publicKey = fs.readFileSync(path.join(dir, 'publickey'))
  const secretKey = fs.readFileSync(path.join(dir, '.expertsonly', 'secretkey'))
  assert.equal(publicKey.length, 32)
  assert.equal(secretKey.length, 32)
  return {
    getSignId: () => {
      throw new Error('a curvecpmakekey directory holds no signing key')
    },
    getBoxId: () => publicKey.toString('base64'),
    sign: () => {
      throw new Error('a curvecpmakekey directory holds no signing key')
    },
    boxBeforeNm: (their: Uint8Array) => boxBeforeNm(their, secretKey)
  }
}

/** Spawns a tool; killed (and waited for) when the test ends. Its stderr is collected. */
export function spawnTool(t: TestContext, command: string, args: string[], options: SpawnOptions = {}): ChildProcess & { stderrText: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...options })
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    }
  })
  return Object.assign(child, { stderrText: () => stderr })
}

/** Resolves with the exit code once the child exits (rejects after `timeoutMs`). */
export function exited(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${child.spawnfile} did not exit within ${timeoutMs} ms`)), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
}

/** A free UDP port on 127.0.0.1 (bound and released). */
export async function freeUdpPort(): Promise<number> {
  const dgram = await import('node:dgram')
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()))
  const port = s.address().port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** `n` bytes of a pattern that differs at every position within 2^24 bytes. */
export function streamPattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i + seed * 97 + (i >>> 8) * 31 + (i >>> 16) * 7) & 0xff
  return b
}
