// mm-platform through its public API, as users run it: the built package (`mm-platform` resolves
// to dist/ by the package's own exports), `new Platform({...})`, `messaging` for JSON and
// `torrenting` (`bt`) for bytes, `callback` for delivery. A MemoryStore stands in for the LevelDB
// default so that disk is not measured (the identity is made at start either way).
// Over TCP, or over UDP alone (CurveCP as specified, the curvecpmessage stream).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Platform, MemoryStore, LevelStore, type Directory, type NodeInfo, type PlatformOptions } from 'mm-platform'
import { serveBytes, TOPIC } from '../protocol.js'
import type { Conn, Peer } from '../conn.js'

type Transport = 'tcp' | 'udp'
const TOPIC_IN = 'public.' + TOPIC
// BENCH_MM_REALTIME=1: every measured send (both ends) with `realtime: true`, so the hot path is
// measured without the persistent outbox in front of it. Off by default: users' default sends.
const REALTIME = process.env['BENCH_MM_REALTIME'] === '1'
const SEND = REALTIME ? { realtime: true } : {}
// BENCH_MM_STORAGE=level: the default LevelDB store (in a fresh temporary directory per process)
// instead of the MemoryStore, to measure what users run. Removed when the peer closes.
const LEVEL = process.env['BENCH_MM_STORAGE'] === 'level'
const levelDirs: string[] = []
function storage(): PlatformOptions['storage'] {
  if (!LEVEL) return new MemoryStore()
  const dir = mkdtempSync(join(tmpdir(), 'mm-bench-'))
  levelDirs.push(dir)
  return new LevelStore({ dir })
}
async function closeAndClean(p: Platform): Promise<void> {
  await p.close()
  for (const dir of levelDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}
const sendOpts = (callback?: (err: Error | null) => void): { realtime?: boolean; callback?: (err: Error | null) => void } =>
  callback ? { ...SEND, callback } : SEND

function options(transport: Transport, listen: boolean): PlatformOptions {
  const here = { host: '127.0.0.1' }
  return {
    storage: storage(),
    // A client only dials over TCP; over UDP it needs a socket of its own.
    tcp: transport === 'tcp' && listen ? here : false,
    udp: transport === 'udp' ? here : false,
    publishIntervalMs: 3_600_000,
    // Every bench client dials from 127.0.0.1 and is a stranger to the server: lift the admission
    // and stranger bounds (an attacker's limits, not what is measured) so that 10,000 idle
    // sessions can be opened at all. Throughput cases open one session and never reach them.
    connections: {
      maxPeers: 20_000,
      maxStrangerPeers: 16_000,
      admission: { perAddress: 1_024, global: 4_096, ratePerAddress: 100_000, rateGlobal: 100_000 }
    }
  }
}

/** A session to `serverId` on platform `p`; made by the first send, ended by close(). */
function conn(p: Platform, serverId: string): Conn {
  let bytes: (m: Buffer) => void = () => {}
  let json: (v: unknown) => void = () => {}
  let needDrain = false
  const onBytes = (_t: string, _s: string, payload: unknown): void => bytes(payload as Buffer)
  const onJson = (_t: string, _s: string, payload: unknown): void => json(payload)
  const onDrain = (): void => {
    needDrain = false
  }
  p.torrenting.on(TOPIC_IN, onBytes)
  p.messaging.on(TOPIC_IN, onJson)
  p.on('drain', onDrain)
  return {
    send(m) {
      const ok = p.torrenting.send(TOPIC, serverId, m, SEND)
      if (!ok) needDrain = true
      return ok
    },
    sendWithCallback(m, cb) {
      if (!p.torrenting.send(TOPIC, serverId, m, sendOpts(cb))) needDrain = true
    },
    sendJson: (v) => void p.messaging.send(TOPIC, serverId, v, SEND),
    onBytes: (cb) => {
      bytes = cb
    },
    onJson: (cb) => {
      json = cb
    },
    drained: () => (needDrain ? new Promise<void>((r) => p.once('drain', () => r())) : Promise.resolve()),
    async close() {
      p.torrenting.off(TOPIC_IN, onBytes)
      p.messaging.off(TOPIC_IN, onJson)
      p.off('drain', onDrain)
      await p.disconnect(serverId)
    }
  }
}

function makePeer(transport: Transport): Peer {
  return {
    async serve() {
      const server = new Platform(options(transport, true))
      await server.ready()
      const sessions = new Map<string, (m: Buffer) => void>()
      server.torrenting.on(TOPIC_IN, (_t, sender, payload) => {
        let onMsg = sessions.get(sender)
        if (!onMsg) {
          onMsg = serveBytes((m) => server.torrenting.send(TOPIC, sender, m, SEND))
          sessions.set(sender, onMsg)
        }
        onMsg(payload as Buffer)
      })
      server.messaging.on(TOPIC_IN, (_t, sender, payload) => {
        server.messaging.send(TOPIC, sender, payload, SEND)
      })
      server.on('disconnected', (signId: string) => sessions.delete(signId))
      const info = (server.directory as Directory).getMyNodeInfo()
      return {
        setup: { peer: transport === 'tcp' ? 'mm-platform' : 'mm-platform-udp', nodeInfo: info, realtime: REALTIME },
        sessions: () => server.connectedPeers().length,
        close: () => closeAndClean(server)
      }
    },
    async client(setup) {
      const info = setup['nodeInfo'] as NodeInfo
      const p = new Platform(options(transport, false))
      await p.ready()
      p.messaging.send('transports.nodeInfo', 'local', info)
      return {
        dial: async () => conn(p, info.signId),
        close: () => closeAndClean(p)
      }
    }
  }
}

export const mmTcp = makePeer('tcp')
export const mmUdp = makePeer('udp')
