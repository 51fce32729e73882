// Entry of every child process of the two-process bench (bundled to plain JS by build.ts, so no
// TypeScript loader runs in the measured processes). argv: role, peer, setup JSON (clients).
//   server     serve; send {type:'ready', setup}; answer {type:'memory'} requests; exit on 'exit'
//   client     dial once per 'run' command's need; send a RunResult per command; exit on 'exit'
//   cold       a fresh process: load the library, dial, first echo, send a ColdResult, exit
//   memclient  hold argv[4] idle sessions (connect + one echo each); report memory; exit on 'exit'
import type { Peer, Client, Conn } from './conn.js'
import type { ColdResult, MemoryReport, PeerName, RunCommand, ServerSetup } from './protocol.js'
import { firstEcho, runCommand } from './measure.js'
import { mapLimit } from '../util.js'

const [role, peerName, setupJson, countArg] = process.argv.slice(2) as [string, PeerName, string?, string?]

async function loadPeer(name: PeerName): Promise<Peer> {
  switch (name) {
    case 'plain-tcp':
      return (await import('./peers/plain-tcp.js')).plainTcp
    case 'secret-stream':
      return (await import('./peers/secret-stream.js')).secretStream
    case 'hyperdht':
      return (await import('./peers/hyperdht.js')).hyperdht
    case 'mm-platform':
      return (await import('./peers/mm-platform.js')).mmTcp
    case 'mm-platform-udp':
      return (await import('./peers/mm-platform.js')).mmUdp
  }
}

const send = (msg: object): Promise<void> => new Promise((resolve) => process.send!(msg, () => resolve()))

async function memory(sessions: number): Promise<MemoryReport> {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 100))
    gc?.()
  }
  const m = process.memoryUsage()
  return { type: 'memory', rss: m.rss, heapUsed: m.heapUsed, external: m.external, sessions }
}

function onCommand(handler: (msg: { type: string } & Record<string, unknown>) => Promise<void>): void {
  let chain = Promise.resolve()
  process.on('message', (msg: { type: string } & Record<string, unknown>) => {
    chain = chain.then(() => handler(msg)).catch(async (err: unknown) => {
      await send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) })
    })
  })
}

async function exit(close: () => Promise<void>): Promise<never> {
  const t = setTimeout(() => process.exit(0), 5000)
  try {
    await close()
  } catch {}
  clearTimeout(t)
  process.exit(0)
}

async function main(): Promise<void> {
  if (role === 'cold') {
    const peer = await loadPeer(peerName)
    const client = await peer.client(JSON.parse(setupJson!) as ServerSetup)
    const ready = performance.now()
    const c = await client.dial()
    await firstEcho(c)
    const end = performance.now()
    const result: ColdResult = { type: 'cold', sinceStart: end, connect: end - ready, ready }
    await send(result)
    await exit(async () => {
      await c.close()
      await client.close()
    })
  }
  const peer = await loadPeer(peerName)
  if (role === 'server') {
    const server = await peer.serve()
    onCommand(async (msg) => {
      if (msg.type === 'memory') await send(await memory(server.sessions()))
      else if (msg.type === 'exit') await exit(() => server.close())
    })
    await send({ type: 'ready', setup: server.setup })
    return
  }
  const setup = JSON.parse(setupJson!) as ServerSetup
  if (role === 'client') {
    const client = await peer.client(setup)
    let conn: Conn | undefined
    const get = async (): Promise<Conn> => (conn ??= await client.dial())
    const drop = async (): Promise<void> => {
      const c = conn
      conn = undefined
      await c?.close()
    }
    onCommand(async (msg) => {
      if (msg.type === 'run') await send(await runCommand(client, get, drop, msg as unknown as RunCommand))
      else if (msg.type === 'exit')
        await exit(async () => {
          await drop()
          await client.close()
        })
    })
    await send({ type: 'ready' })
    return
  }
  if (role === 'memclient') {
    // mm-platform holds one session per pair of nodes, so each session needs its own client
    // node (made before the baseline, as that is a node's cost, not a session's); byte pipes
    // dial many sessions from one client.
    const n = Number(countArg)
    const perSession = peerName.startsWith('mm-platform')
    const clients: Client[] = perSession ? await mapLimit(Array.from({ length: n }), 50, () => peer.client(setup)) : [await peer.client(setup)]
    const conns: Conn[] = []
    onCommand(async (msg) => {
      if (msg.type === 'memory') await send(await memory(conns.length))
      else if (msg.type === 'open') {
        await mapLimit(Array.from({ length: n }), 50, async (_, i) => {
          const c = await clients[perSession ? i : 0]!.dial()
          await firstEcho(c)
          conns.push(c)
        })
        await send({ type: 'opened', sessions: conns.length })
      } else if (msg.type === 'exit') await exit(async () => void (await Promise.all(clients.map((c) => c.close()))))
    })
    await send({ type: 'ready' })
  }
}

// An orphan (the parent died) must not keep its sockets and CPU: leave with the IPC channel.
process.on('disconnect', () => process.exit(0))

main().catch(async (err: unknown) => {
  await send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) })
  process.exit(1)
})
