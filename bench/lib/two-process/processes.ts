// The parent's side of the children: fork, wait for typed IPC messages, stop.
import { fork, type ChildProcess } from 'node:child_process'
import type { PeerName, ServerSetup } from './protocol.js'
import { withTimeout } from '../util.js'

export type Msg = { type: string } & Record<string, unknown>

export class Child {
  readonly proc: ChildProcess
  private readonly inbox: Msg[] = []
  private waiting: ((m: Msg) => void) | undefined
  private exited = false
  readonly exitedP: Promise<void>

  constructor(script: string, args: string[], execArgv: string[], readonly label: string) {
    this.proc = fork(script, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    // A send to a child that has just exited fails with EPIPE on this event; stop() copes.
    this.proc.on('error', () => {})
    this.proc.on('message', (m: Msg) => {
      if (this.waiting) {
        const w = this.waiting
        this.waiting = undefined
        w(m)
      } else this.inbox.push(m)
    })
    this.exitedP = new Promise((r) =>
      this.proc.once('exit', () => {
        this.exited = true
        r()
      })
    )
  }

  /** The next message; rejects on an `error` message, the child's exit, or after `ms`. */
  async next(ms = 60_000): Promise<Msg> {
    const m =
      this.inbox.shift() ??
      (await withTimeout(
        Promise.race([
          new Promise<Msg>((r) => {
            this.waiting = r
          }),
          this.exitedP.then((): Msg => ({ type: 'exited' }))
        ]),
        ms,
        `${this.label}: reply`
      ))
    if (m.type === 'error') throw new Error(`${this.label}: ${String(m['message'])}`)
    if (m.type === 'exited') throw new Error(`${this.label}: exited with code ${this.proc.exitCode}`)
    return m
  }

  async ask(msg: Msg, ms?: number): Promise<Msg> {
    this.proc.send(msg)
    return this.next(ms)
  }

  /** Asks the child to close and exit; kills it if it has not after `ms`. */
  async stop(ms = 8000): Promise<void> {
    if (this.exited) return
    if (this.proc.connected) {
      try {
        this.proc.send({ type: 'exit' })
      } catch {}
    }
    try {
      await withTimeout(this.exitedP, ms, `${this.label}: exit`)
    } catch {
      this.proc.kill('SIGKILL')
      await this.exitedP
    }
  }
}

export interface Spawner {
  script: string
  /** Extra node flags for the children of one peer and role (profiles, --expose-gc). */
  execArgv: (peer: PeerName, role: string) => string[]
}

export async function startServer(s: Spawner, peer: PeerName): Promise<{ child: Child; setup: ServerSetup }> {
  const child = new Child(s.script, ['server', peer], s.execArgv(peer, 'server'), `${peer} server`)
  const ready = await child.next()
  return { child, setup: ready['setup'] as ServerSetup }
}

export async function startClient(s: Spawner, peer: PeerName, setup: ServerSetup): Promise<Child> {
  const child = new Child(s.script, ['client', peer, JSON.stringify(setup)], s.execArgv(peer, 'client'), `${peer} client`)
  await child.next()
  return child
}
