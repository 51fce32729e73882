// The adversarial suite's victim (test/fixtures/victim-process.ts in a child process) and its
// friend (a platform in this process, in the victim's friends circle) that checks it gets through.
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { MemoryStore, Platform, type Message } from '../../src/index.js'

const FIXTURE = fileURLToPath(new URL('../fixtures/victim-process.ts', import.meta.url))

export interface VictimMemory {
  peakRss: number
  peakHeap: number
  rss: number
  heap: number
  stats: { refused: Record<string, number>; peers: number; strangers: number; handshaking: number; udpDrops: Record<string, number>; connectedPeers: string[] }
}

export class Victim {
  readonly child: ChildProcess
  signId = ''
  boxId = ''
  nodeInfo: { connectionInfo: Array<{ transportType: string; transportInfo: { address: string; port: number } }> } = { connectionInfo: [] }
  exitCode: number | null | undefined = undefined
  private waiting: Array<(e: Record<string, unknown>) => void> = []

  private constructor(env: Record<string, string>) {
    this.child = fork(FIXTURE, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.child.on('message', (e: Record<string, unknown>) => this.waiting.shift()?.(e))
    this.child.on('exit', (code) => (this.exitCode = code))
  }

  /** `udpOnly`: the victim does not listen on TCP (a friend then reaches it over UDP). */
  static async start(friends: string[], connections: Record<string, unknown> = {}, udpOnly = false): Promise<Victim> {
    const v = new Victim({ FRIENDS: friends.join(','), CONNECTIONS: JSON.stringify(connections), TCP: udpOnly ? '0' : '1' })
    const ready = await v.next()
    if (ready.event !== 'ready') throw new Error(`victim failed: ${String(ready.error)}`)
    v.signId = ready.signId as string
    v.nodeInfo = ready.nodeInfo as Victim['nodeInfo']
    v.boxId = (ready.nodeInfo as { boxId: string }).boxId
    return v
  }

  port(transport: 'tcp' | 'udp'): number {
    const entry = this.nodeInfo.connectionInfo.find((e) => e.transportType === transport)
    if (!entry) throw new Error(`victim has no ${transport}`)
    return entry.transportInfo.port
  }

  get alive(): boolean {
    return this.exitCode === undefined && this.child.connected
  }

  private next(timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('victim did not answer')), timeoutMs)
      this.waiting.push((e) => {
        clearTimeout(timer)
        resolve(e)
      })
    })
  }

  async memory(): Promise<VictimMemory> {
    if (!this.alive) throw new Error(`the victim exited (code ${String(this.exitCode)})`)
    this.child.send({ cmd: 'mem' })
    return (await this.next()) as unknown as VictimMemory
  }

  async resetPeak(): Promise<void> {
    this.child.send({ cmd: 'resetPeak' })
    await this.next()
  }

  async close(): Promise<void> {
    if (!this.alive) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.send({ cmd: 'close' })
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }
}

/** A legitimate friend of the victim: it echoes through the victim and times the round trip. */
export class Friend {
  readonly platform: Platform
  /** 'udp': the friend reaches the victim over UDP only. */
  readonly transport: 'tcp' | 'udp'
  private n = 0

  constructor(transport: 'tcp' | 'udp' = 'tcp') {
    this.transport = transport
    this.platform = new Platform({ storage: new MemoryStore(), tcp: false, udp: transport === 'udp' ? { host: '127.0.0.1' } : false })
  }

  async ready(): Promise<string> {
    await this.platform.ready()
    return this.platform.identity.getSignId()
  }

  learn(victim: Victim): void {
    this.platform.messaging.send('transports.nodeInfo', 'local', victim.nodeInfo)
  }

  /** One message to the victim and its echo back; rejects after `timeoutMs`. */
  roundTrip(victim: Victim, timeoutMs = 10_000): Promise<number> {
    const n = ++this.n
    const started = Date.now()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.platform.off('message', onMessage)
        reject(new Error(`the friend's echo ${n} did not come back within ${timeoutMs} ms`))
      }, timeoutMs)
      const onMessage = (m: Message): void => {
        if (m.topic !== 'echo.reply' || m.sender !== victim.signId) return
        // The 'message' event carries the JSON text of an `ms` payload.
        const payload = (typeof m.payload === 'string' ? JSON.parse(m.payload) : m.payload) as { n?: number }
        if (payload.n !== n) return
        clearTimeout(timer)
        this.platform.off('message', onMessage)
        resolve(Date.now() - started)
      }
      this.platform.on('message', onMessage)
      this.platform.messaging.send('echo', victim.signId, { n })
    })
  }

  close(): Promise<void> {
    return this.platform.close()
  }
}

export const MiB = 1024 * 1024
