/**
 * Shared test helpers: temporary directories that clean themselves up, child `node` runs with a
 * timeout, polling and event waits with a deadline, and key material for fake peers.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import type { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { signKeyPair, signPublicToBoxPublic, signSecretToBoxSecret, sign, boxBeforeNm, boxPublicFromSecret } from '../../src/crypto/sodium.js'
import type { IdentityLike, NodeInfo } from '../../src/index.js'

/** The package root (where package.json and bin/ are). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const FIXTURES = path.join(ROOT, 'test', 'fixtures')
export const CLI = path.join(ROOT, 'bin', 'mm-platform.js')

/**
 * A fresh empty directory, removed when the test `t` ends (or by the returned cleanup). The test's
 * `after` hooks run in the order they were added, so this removal may run before a later hook
 * closes what writes here; a file written meanwhile is retried, not reported (ENOTEMPTY).
 */
export function tempDir(t?: TestContext, prefix = 'mm-platform-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  if (t) t.after(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 }))
  return dir
}

/** Every path under `dir`, relative, sorted (directories end with '/'). */
export function listTree(dir: string): string[] {
  const out: string[] = []
  const walk = (sub: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name
      if (entry.isDirectory()) {
        out.push(rel + '/')
        walk(rel)
      } else {
        out.push(rel)
      }
    }
  }
  walk('')
  return out.sort()
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
  ms: number
}

export interface RunOptions {
  args?: string[]
  env?: Record<string, string>
  cwd?: string
  /** Killed (SIGKILL) after this long; the result then has timedOut = true. Default 30 s. */
  timeoutMs?: number
}

/** Runs `node <file> ...args` to completion, collecting its output. Never rejects on exit code. */
export function runNode(file: string, options: RunOptions = {}): Promise<RunResult> {
  const started = Date.now()
  const child = spawnNode(file, options)
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, options.timeoutMs ?? 30_000)
  return new Promise((resolve, reject) => {
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started })
    })
  })
}

/** Starts `node <file> ...args` with piped output (for long-running children). */
export function spawnNode(file: string, options: RunOptions = {}): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env }
  // The test runner's own flags and tsx must not leak into the user's process.
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT
  return spawn(process.execPath, [file, ...(options.args ?? [])], { cwd: options.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Resolves with the first match of `pattern` in the child's stdout (accumulated), or rejects. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = ''
    let stderr = ''
    const onData = (d: Buffer | string): void => {
      seen += d.toString()
      const m = seen.match(pattern)
      if (m) {
        finish()
        resolve(m)
      }
    }
    const onErr = (d: Buffer | string): void => {
      stderr += d.toString()
    }
    const onExit = (code: number | null): void => {
      finish()
      reject(new Error(`child exited (${code}) before printing ${pattern}; stdout: ${seen}; stderr: ${stderr}`))
    }
    const timer = setTimeout(() => {
      finish()
      reject(new Error(`no ${pattern} within ${timeoutMs} ms; stdout: ${seen}; stderr: ${stderr}`))
    }, timeoutMs)
    const finish = (): void => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.stderr?.off('data', onErr)
      child.off('exit', onExit)
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onErr)
    child.on('exit', onExit)
  })
}

/** Resolves with the exit code and signal of a child, or rejects after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not exit within ${timeoutMs} ms`)), timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
}

/** Polls `condition` (awaited when it returns a promise) every 10 ms until it is true; rejects after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await delay(10)
  }
}

/** The arguments of the next `event` on `emitter`, or a rejection after `timeoutMs`. */
export function nextEvent<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener)
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (...args: unknown[]): void => {
      clearTimeout(timer)
      resolve(args as T)
    }
    emitter.once(event, listener)
  })
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A fresh random signId (base64 of an Ed25519 public key). */
export function randomSignId(): string {
  return signKeyPair().publicKey.toString('base64')
}

/** A valid nodeInfo of a fresh random node. */
export function randomNodeInfo(connectionInfo: NodeInfo['connectionInfo'] = [{ transportType: 'tcp', transportInfo: { host: '127.0.0.1', port: 4000 } }]): NodeInfo {
  const { publicKey } = signKeyPair()
  const boxKey = signPublicToBoxPublic(publicKey)
  if (!boxKey) throw new Error('unreachable: a fresh key always converts')
  return { signId: publicKey.toString('base64'), boxId: boxKey.toString('base64'), connectionInfo }
}

/** An identity object that lives only in memory (for the `identity` and `directory` options). */
export function memoryIdentity(): IdentityLike & { loads: number } {
  const { publicKey, secretKey } = signKeyPair()
  const boxSecret = signSecretToBoxSecret(secretKey)
  const boxPublic = boxPublicFromSecret(boxSecret)
  return {
    loads: 0,
    getSignId: () => publicKey.toString('base64'),
    getBoxId: () => boxPublic.toString('base64'),
    sign: (message: Uint8Array) => sign(message, secretKey),
    boxBeforeNm: (their: Uint8Array) => boxBeforeNm(their, boxSecret),
    async load() {
      this.loads++
    }
  }
}
