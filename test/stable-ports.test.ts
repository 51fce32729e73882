/**
 * Stable addresses: a node keeps its TCP and UDP ports across restarts on the same storage; a
 * busy stored port falls back to a new one, which is published and stored; explicit ports win.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import dgram from 'node:dgram'
import { Platform, MemoryStore } from '../src/index.js'
import type { Directory } from '../src/platform/directory.js'
import { PORTS_KEY } from '../src/platform/stable-ports.js'
import type { Logger } from '../src/logger.js'
import { tempDir } from './helpers/index.js'

const LOOPBACK = { host: '127.0.0.1' }

function ports(p: Platform): { tcp: number; udp: number } {
  const info = (p.directory as Directory).getMyNodeInfo().connectionInfo
  const port = (type: string): number => info.find((e) => e.transportType === type)?.transportInfo.port as number
  return { tcp: port('tcp'), udp: port('udp') }
}

async function run(dataDir: string, extra: Record<string, unknown> = {}): Promise<{ tcp: number; udp: number }> {
  const p = new Platform({ dataDir, tcp: LOOPBACK, udp: LOOPBACK, ...extra })
  await p.ready()
  const got = ports(p)
  await p.close()
  return got
}

test('a node listens on the same tcp and udp ports after a restart on the same storage', async (t) => {
  const dir = tempDir(t)
  const first = await run(dir)
  assert.ok(first.tcp > 0 && first.udp > 0, 'first.tcp > 0 && first.udp > 0')
  assert.deepEqual(await run(dir), first)
  assert.deepEqual(await run(dir), first, 'and again')
})

test('a busy stored port falls back to a new one (logged), which is published and stored', async (t) => {
  const dir = tempDir(t)
  const first = await run(dir)
  const tcpHog = net.createServer()
  await new Promise<void>((resolve) => tcpHog.listen({ host: '127.0.0.1', port: first.tcp }, resolve))
  const udpHog = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => udpHog.bind({ address: '127.0.0.1', port: first.udp }, resolve))
  t.after(() => {
    tcpHog.close()
    udpHog.close()
  })
  const warnings: string[] = []
  const noop = (): void => {}
  const logger: Logger = { trace: noop, debug: noop, info: noop, error: noop, warn: (_o, msg) => warnings.push(String(msg)) }
  const second = await run(dir, { logger })
  assert.notEqual(second.tcp, first.tcp)
  assert.notEqual(second.udp, first.udp)
  assert.ok(second.tcp > 0 && second.udp > 0, 'the new ports are published in getMyNodeInfo')
  assert.equal(warnings.filter((w) => /stored (tcp|udp) port \d+ is busy/.test(w)).length, 2)
  assert.deepEqual(await run(dir), second, 'the new ports are the stored ones from now on')
})

test('explicit ports win and are not stored; stablePorts: false forgets nothing but chooses freely', async (t) => {
  const dir = tempDir(t)
  const first = await run(dir)
  const free = await new Promise<number>((resolve) => {
    const s = net.createServer().listen({ host: '127.0.0.1', port: 0 }, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
  const explicit = await run(dir, { tcp: { host: '127.0.0.1', port: free } })
  assert.equal(explicit.tcp, free)
  assert.equal(explicit.udp, first.udp)
  assert.deepEqual(await run(dir), first, 'the explicit port did not replace the stored one')
  const unstable = await run(dir, { stablePorts: false })
  assert.notEqual(unstable.tcp, first.tcp)
})

test('the ports are kept in the given store under listen.ports', async () => {
  const storage = new MemoryStore()
  const p = new Platform({ storage, tcp: LOOPBACK, udp: LOOPBACK })
  await p.ready()
  const got = ports(p)
  await p.close()
  assert.deepEqual(JSON.parse(storage.getSync(PORTS_KEY) ?? 'null'), got)
})
