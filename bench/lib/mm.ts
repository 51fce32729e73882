// mm-platform as a bench case: the server is one Platform that echoes or sinks per sender; each
// open() is a new client Platform (memory store, dial only), so every session is a fresh TCP
// connection and CurveCP handshake. All traffic goes through the public API (torrenting, 'bt').
import { Platform, MemoryStore, type Directory, type NodeInfo, type PlatformOptions } from '../../dist/esm/index.js'
import type { BenchCase, BenchPair, BenchServer } from './pair.js'
import { serveSession } from './pair.js'
import type { MemoryPerSession } from './memory.js'

const TOPIC = 'bench'

type Transport = 'tcp' | 'udp'

/** Clients only dial: no TCP listener; UDP needs a socket of its own, on loopback. */
function quiet(transport: Transport): PlatformOptions {
  return { storage: new MemoryStore(), tcp: false, udp: transport === 'udp' ? { host: '127.0.0.1' } : false, publishIntervalMs: 3_600_000 }
}

async function client(server: NodeInfo, transport: Transport = 'tcp'): Promise<Platform> {
  const p = new Platform(quiet(transport))
  await p.ready()
  p.messaging.send('transports.nodeInfo', 'local', server)
  return p
}

function pairOf(p: Platform, serverSignId: string, release: () => Promise<void>): BenchPair {
  let handler: (m: Buffer) => void = () => {}
  const onMessage = (_t: string, _s: string, payload: unknown): void => handler(payload as Buffer)
  p.torrenting.on('public.' + TOPIC, onMessage)
  return {
    send: (msg) => p.torrenting.send(TOPIC, serverSignId, msg),
    onMessage: (cb) => {
      handler = cb
    },
    drained: () => new Promise<void>((resolve) => p.once('drain', () => resolve())),
    close: async () => {
      p.torrenting.off('public.' + TOPIC, onMessage)
      await release()
    }
  }
}

async function startServer(transport: Transport = 'tcp'): Promise<{ server: Platform; info: NodeInfo }> {
  const server = new Platform({
    storage: new MemoryStore(),
    tcp: transport === 'tcp' ? { host: '127.0.0.1' } : false,
    udp: transport === 'udp' ? { host: '127.0.0.1' } : false,
    publishIntervalMs: 3_600_000
  })
  await server.ready()
  const sessions = new Map<string, (m: Buffer) => void>()
  server.torrenting.on('public.' + TOPIC, (_t, sender, payload) => {
    let onMsg = sessions.get(sender)
    if (!onMsg) {
      onMsg = serveSession((m) => server.torrenting.send(TOPIC, sender, m))
      sessions.set(sender, onMsg)
    }
    onMsg(payload as Buffer)
  })
  server.on('disconnected', (signId: string) => sessions.delete(signId))
  return { server, info: (server.directory as Directory).getMyNodeInfo() }
}

/**
 * Like the peer cases (secret-stream reuses one client key pair), client identities are reused:
 * a pool of client Platforms, each in one session at a time. Every open() is still a new TCP
 * connection and a full CurveCP handshake; close() ends that session (platform.disconnect).
 */
function makeCase(name: string, transport: Transport): BenchCase {
  return {
    name,
    async start(): Promise<BenchServer> {
      const { server, info } = await startServer(transport)
      const idle: Platform[] = []
      const all = new Set<Platform>()
      return {
        async open() {
          let p = idle.pop()
          if (!p) {
            p = await client(info, transport)
            all.add(p)
          }
          const c = p
          return pairOf(c, info.signId, async () => {
            await c.disconnect(info.signId)
            await server.disconnect(c.identity.getSignId())
            idle.push(c)
          })
        },
        async close() {
          await Promise.all([...all].map((c) => c.close()))
          await server.close()
        }
      }
    }
  }
}

export const mmTcp = makeCase('mm-platform', 'tcp')
/** The same, over CurveCP on UDP alone (the curvecpmessage stream). */
export const mmUdp = makeCase('mm-platform udp', 'udp')

/**
 * Memory per idle session: n client Platforms are made first (their fixed cost is not a
 * session's), then each opens a session with one echo; the delta over both ends, per session.
 */
export async function mmMemoryPerSession(n: number): Promise<MemoryPerSession> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('needs node --expose-gc')
  const settle = async (): Promise<NodeJS.MemoryUsage> => {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 50))
      gc()
    }
    return process.memoryUsage()
  }
  const { server, info } = await startServer()
  const clients: Platform[] = []
  for (let i = 0; i < n; i++) clients.push(await client(info))
  const before = await settle()
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      clients.slice(i, i + 50).map(
        (p) =>
          new Promise<void>((resolve, reject) => {
            p.torrenting.once('public.' + TOPIC, () => resolve())
            p.torrenting.send(TOPIC, info.signId, Buffer.from('e'), { callback: (err) => err && reject(err) })
            p.torrenting.send(TOPIC, info.signId, Buffer.alloc(1024))
          })
      )
    )
  }
  await new Promise((r) => setTimeout(r, 200))
  const after = await settle()
  await Promise.all(clients.map((c) => c.close()))
  await server.close()
  const per = (k: keyof NodeJS.MemoryUsage): number => (after[k] - before[k]) / n
  return { n, heap: per('heapUsed'), external: per('external'), arrayBuffers: per('arrayBuffers'), total: per('heapUsed') + per('external'), rss: per('rss') }
}
