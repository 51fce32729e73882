// Test-side handle on a platform running in a child process (test/fixtures/peer-process.ts).
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const FIXTURE = fileURLToPath(new URL('../fixtures/peer-process.ts', import.meta.url))

export interface PeerEvent {
  event: string
  [key: string]: unknown
}

export class PeerProcess {
  readonly child: ChildProcess
  readonly events: PeerEvent[] = []
  signId = ''
  nodeInfo: Record<string, unknown> = {}
  private waiters: Array<{ match: (e: PeerEvent) => boolean; resolve: (e: PeerEvent) => void }> = []
  private nextId = 1
  /** Answer the child's directory lookups from this table (the test plays discovery). */
  readonly directory = new Map<string, unknown>()

  private constructor(dataDir: string, env: Record<string, string>) {
    this.child = fork(FIXTURE, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, DATA_DIR: dataDir, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    this.child.on('message', (e: PeerEvent) => {
      if (e.event === 'requestNodeInfo') {
        const info = this.directory.get(e.signId as string)
        if (info) this.child.send({ cmd: 'nodeInfo', nodeInfo: info })
      }
      this.events.push(e)
      for (const w of [...this.waiters]) {
        if (w.match(e)) {
          this.waiters.splice(this.waiters.indexOf(w), 1)
          w.resolve(e)
        }
      }
    })
  }

  static async start(dataDir: string, env: Record<string, string> = {}): Promise<PeerProcess> {
    const p = new PeerProcess(path.resolve(dataDir), env)
    const ready = await p.waitFor((e) => e.event === 'ready' || e.event === 'failed', 30_000)
    if (ready.event === 'failed') throw new Error(`peer failed to start: ${String(ready.error)}`)
    p.signId = ready.signId as string
    p.nodeInfo = ready.nodeInfo as Record<string, unknown>
    return p
  }

  /** Resolves with the first event (already seen or future) that matches. */
  waitFor(match: (e: PeerEvent) => boolean, timeoutMs = 20_000, includePast = false): Promise<PeerEvent> {
    if (includePast) {
      const past = this.events.find(match)
      if (past) return Promise.resolve(past)
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for an event matching ${match.toString()}; last events: ${JSON.stringify(this.events.slice(-5))}`))
      }, timeoutMs)
      const done = (e: PeerEvent): void => {
        clearTimeout(timer)
        resolve(e)
      }
      this.waiters.push({ match, resolve: done })
    })
  }

  /** Tells this peer how to reach `other` (as a discovery service would). */
  learn(other: PeerProcess): void {
    this.directory.set(other.signId, other.nodeInfo)
    this.child.send({ cmd: 'nodeInfo', nodeInfo: other.nodeInfo })
  }

  send(destination: string, topic: string, payload: unknown, extra: Record<string, unknown> = {}): number {
    const id = this.nextId++
    this.child.send({ cmd: 'send', id, topic, destination, payload, ...extra })
    return id
  }

  sendBig(destination: string, topic: string, size: number): number {
    const id = this.nextId++
    this.child.send({ cmd: 'sendBig', id, topic, destination, size })
    return id
  }

  /** Sends a local message in the child; resolves once the child has dispatched it. */
  async local(topic: string, payload: unknown): Promise<void> {
    const done = this.waitFor((e) => e.event === 'localDone' && e.topic === topic)
    this.child.send({ cmd: 'local', topic, payload })
    await done
  }

  /** Closes this peer's session with `signId` (platform.disconnect); resolves when it has. */
  async disconnect(signId: string): Promise<void> {
    const done = this.waitFor((e) => e.event === 'disconnectDone' && e.signId === signId, 5_000)
    this.child.send({ cmd: 'disconnect', signId })
    await done
  }

  /** Circles, cached nodeInfo of `signIds`, platform.stats() and RSS of the child. */
  async state(signIds: string[] = []): Promise<PeerEvent> {
    const reply = this.waitFor((e) => e.event === 'state')
    this.child.send({ cmd: 'state', signIds })
    return reply
  }

  messages(topic?: string): PeerEvent[] {
    return this.events.filter((e) => e.event === 'message' && (!topic || e.topic === topic))
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || !this.child.connected) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    this.child.send({ cmd: 'close' })
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  /** Ends the process abruptly (no close()). */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    this.child.kill('SIGKILL')
    await exited
  }
}
