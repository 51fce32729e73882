/**
 * The control socket of a running node: a Unix domain socket `control.sock` in the node's data
 * directory, readable and writable by its owner only (mode 0600), through which the command line
 * tool reaches the node (`mm-platform peers`, `nodeinfo`, `add`, `send`, `sub`).
 *
 * Protocol: one JSON object per line each way. A request `{cmd, ...}` gets one reply
 * `{ok: true, ...}` or `{ok: false, error}`; `sub` then streams `{topic, sender, payload}` lines
 * until the client hangs up. Requests are bounded (MAX_REQUEST_BYTES); a client that sends more
 * or garbage gets an error and is disconnected; nothing it sends can stop the node.
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { Platform } from '../platform/platform.js'
import { checkNodeInfo, type NodeInfo } from '../platform/node-info.js'
import { describe } from '../errors.js'
import type { Logger } from '../logger.js'

export const CONTROL_SOCKET_NAME = 'control.sock'
/** Largest request line, bytes. */
export const MAX_REQUEST_BYTES = 256 * 1024
/** Most control clients at once. */
export const MAX_CONTROL_CLIENTS = 32
/** Default wait for a `send` to be acknowledged, ms. */
export const SEND_TIMEOUT_MS = 10_000

/** Where the node's discovery services are, for `peers` and `add`. */
export interface KnownPeersSource {
  name: string
  peers(): NodeInfo[]
}

export interface ControlServerOptions {
  platform: Platform
  dataDir: string
  sources?: KnownPeersSource[]
  logger: Logger
}

/** The path of the control socket of the node using `dataDir`. */
export function controlSocketPath(dataDir: string): string {
  return path.join(dataDir, CONTROL_SOCKET_NAME)
}

export class ControlServer {
  private readonly server: net.Server
  private readonly clients = new Set<net.Socket>()
  private readonly cleanups = new Set<() => void>()
  readonly path: string

  private constructor(private readonly options: ControlServerOptions) {
    this.path = controlSocketPath(options.dataDir)
    this.server = net.createServer((socket) => this.onClient(socket))
    this.server.maxConnections = MAX_CONTROL_CLIENTS
  }

  /** Listens on `<dataDir>/control.sock` with mode 0600 (a stale socket file is replaced). */
  static async listen(options: ControlServerOptions): Promise<ControlServer> {
    const s = new ControlServer(options)
    fs.rmSync(s.path, { force: true }) // only a node holding the data directory's lock gets here
    // Created under a umask that leaves the owner alone: no moment where others may connect.
    const oldMask = process.umask(0o177)
    try {
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', reject)
        s.server.listen(s.path, () => {
          s.server.off('error', reject)
          resolve()
        })
      })
    } finally {
      process.umask(oldMask)
    }
    fs.chmodSync(s.path, 0o600)
    s.server.on('error', (err) => options.logger.warn({ err }, 'control socket error'))
    return s
  }

  private onClient(socket: net.Socket): void {
    this.clients.add(socket)
    let buffered = ''
    let busy = false
    socket.setEncoding('utf8')
    const cleanup: Array<() => void> = []
    const done = (): void => {
      for (const c of cleanup.splice(0)) c()
      this.clients.delete(socket)
    }
    socket.on('close', done)
    socket.on('error', () => socket.destroy())
    socket.on('data', (chunk: string) => {
      buffered += chunk
      if (buffered.length > MAX_REQUEST_BYTES) {
        this.reply(socket, { ok: false, error: `request larger than ${MAX_REQUEST_BYTES} bytes` })
        socket.end()
        return
      }
      const nl = buffered.indexOf('\n')
      if (nl < 0 || busy) return
      busy = true // one request per connection
      const line = buffered.slice(0, nl)
      let request: Record<string, unknown>
      try {
        request = JSON.parse(line) as Record<string, unknown>
        if (!request || typeof request !== 'object') throw new Error('not an object')
      } catch {
        this.reply(socket, { ok: false, error: 'a request is one JSON object per line' })
        socket.end()
        return
      }
      this.handle(socket, request, cleanup).catch((err: unknown) => {
        this.reply(socket, { ok: false, error: describe(err) })
        socket.end()
      })
    })
  }

  private async handle(socket: net.Socket, req: Record<string, unknown>, cleanup: Array<() => void>): Promise<void> {
    const { platform } = this.options
    switch (req.cmd) {
      case 'nodeinfo':
        this.reply(socket, { ok: true, nodeInfo: platform.directory.getMyNodeInfo?.() })
        socket.end()
        return
      case 'peers': {
        const connected = new Set(platform.connectedPeers())
        const byId = new Map<string, { signId: string; connected: boolean; via: string[] }>()
        for (const source of this.options.sources ?? []) {
          for (const n of source.peers()) {
            const entry = byId.get(n.signId) ?? { signId: n.signId, connected: connected.has(n.signId), via: [] }
            entry.via.push(source.name)
            byId.set(n.signId, entry)
          }
        }
        for (const signId of connected) if (!byId.has(signId)) byId.set(signId, { signId, connected: true, via: [] })
        this.reply(socket, { ok: true, peers: [...byId.values()] })
        socket.end()
        return
      }
      case 'add': {
        const checked = checkNodeInfo(req.nodeInfo)
        if ('reason' in checked) throw new Error(`not a usable nodeInfo: ${checked.reason}`)
        // Signed ones also seed the DHT; the directory takes either (this is the local user).
        platform.messaging.send('transports.nodeInfo', 'local', checked.nodeInfo)
        if (checked.nodeInfo.signature) platform.messaging.send('transports.nodeInfoBootstrap', 'local', checked.nodeInfo)
        this.reply(socket, { ok: true, signId: checked.nodeInfo.signId })
        socket.end()
        return
      }
      case 'send': {
        const { destination, topic, payload } = req
        if (typeof destination !== 'string' || typeof topic !== 'string') throw new Error('send needs a destination and a topic')
        const timeoutMs = typeof req.timeoutMs === 'number' && req.timeoutMs > 0 ? req.timeoutMs : SEND_TIMEOUT_MS
        const started = Date.now()
        const err = await new Promise<Error | null>((resolve) => {
          try {
            platform.messaging.send(topic, destination, payload, { realtime: true, expireAfter: timeoutMs, callback: resolve })
          } catch (e) {
            resolve(e instanceof Error ? e : new Error(describe(e)))
          }
        })
        this.reply(socket, err ? { ok: false, error: describe(err), code: (err as { code?: string }).code } : { ok: true, delivered: true, ms: Date.now() - started })
        socket.end()
        return
      }
      case 'sub': {
        const pattern = req.pattern
        if (typeof pattern !== 'string' || pattern.length === 0) throw new Error('sub needs a topic pattern')
        const handler = (topic: string, sender: string, payload: unknown): void => {
          this.reply(socket, { topic, sender, payload: Buffer.isBuffer(payload) ? { bytes: payload.toString('base64') } : payload })
        }
        platform.messaging.on(pattern, handler)
        const off = (): void => void platform.messaging.off(pattern, handler)
        cleanup.push(off)
        this.cleanups.add(off)
        this.reply(socket, { ok: true, pattern })
        return
      }
      default:
        throw new Error(`unknown control command: ${String(req.cmd)}`)
    }
  }

  private reply(socket: net.Socket, value: unknown): void {
    if (!socket.destroyed && socket.writable) socket.write(JSON.stringify(value) + '\n')
  }

  /** Stops listening, disconnects clients, removes the socket file. Idempotent. */
  async close(): Promise<void> {
    for (const off of this.cleanups) off()
    this.cleanups.clear()
    for (const c of this.clients) c.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    fs.rmSync(this.path, { force: true })
  }
}
