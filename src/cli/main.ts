/**
 * The `mm-platform` command: a thin shell over the library.
 *   mm-platform start [--data-dir DIR] [--log-level debug|info|warn] [discovery options]
 *   mm-platform id    [--data-dir DIR]
 *   mm-platform peers | nodeinfo | add <nodeinfo> | send <signId|local> <topic> <json> | sub <pattern>
 *     (these talk to the running node through its control socket; see commands/control-commands.ts)
 */
import { parseArgs } from 'node:util'
import { Platform } from '../platform/platform.js'
import { LevelStore, defaultDataDir } from '../storage/level-store.js'
import { PlatformStorage } from '../storage/platform-storage.js'
import { Identity } from '../identity/identity.js'
import { createConsoleLogger } from '../logger.js'
import { MMError, describe } from '../errors.js'
import type { Message } from '../platform/message.js'
import type { NodeInfo } from '../platform/node-info.js'
import { startNodeServices } from './commands/node-services.js'
import { ControlUsageError, isControlCommand, runControlCommand } from './commands/control-commands.js'
import { NoNodeError } from './control-client.js'

const USAGE = `usage: mm-platform <command> [options]

commands:
  start                   start a node (mDNS and Kademlia on) and log what it receives (Ctrl-C stops it)
  id                      print this node's signId and boxId
  nodeinfo                print the running node's signed nodeInfo (hand it to someone for 'add')
  add <nodeinfo>          give the running node someone's nodeInfo (JSON, as 'nodeinfo' prints it)
  peers                   list the peers the running node knows of, and which are connected
  send <signId|local> <topic> <json>
                          send a message; exit code 0 when delivered, 1 when not
  sub <pattern>           print messages matching a scoped topic pattern (e.g. 'public.chat.*') until Ctrl-C

options:
  --data-dir DIR          data directory (default: $MM_PLATFORM_DATA or ~/.mm-platform)
  --json                  one JSON object per line (nodeinfo, add, peers, send, sub)
  --timeout MS            send: how long to wait for delivery (default 10000)
  --log-level LEVEL       debug, info or warn (start only; default info)
  start only:
  --no-mdns               no LAN discovery
  --mdns-interface ADDR   multicast on this interface address only
  --no-kademlia           no Kademlia DHT
  --bootstrap NODEINFO    a signed nodeInfo (JSON) to start the Kademlia DHT from (repeatable)
  --mainline              publish and resolve on the BitTorrent Mainline DHT (public, unless:)
  --mainline-bootstrap H:P  Mainline DHT node to start from instead of the public ones (repeatable)
  -h, --help              this text
`

const COMMANDS = new Set(['start', 'id'])

class UsageError extends Error {}

interface Io {
  out: (line: string) => void
  err: (line: string) => void
}

/** Runs the command line; resolves with the exit code (the `start` command resolves on stop). */
export async function main(argv: string[], io: Io = { out: (l) => console.log(l), err: (l) => console.error(l) }): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        'log-level': { type: 'string' },
        json: { type: 'boolean' },
        timeout: { type: 'string' },
        'no-mdns': { type: 'boolean' },
        'mdns-interface': { type: 'string' },
        'no-kademlia': { type: 'boolean' },
        bootstrap: { type: 'string', multiple: true },
        mainline: { type: 'boolean' },
        'mainline-bootstrap': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    io.err(`mm-platform: ${describe(err)}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.out(USAGE)
    return 0
  }
  const [command, ...rest] = positionals
  try {
    // The command is judged first: `mm-platform frobnicate x` is an unknown command, not an extra argument.
    if (command === undefined) throw new UsageError('a command is needed')
    if (!COMMANDS.has(command) && !isControlCommand(command)) throw new UsageError(`unknown command: ${command}`)
    if (rest.length && !isControlCommand(command)) throw new UsageError(`unexpected argument: ${rest[0]}`)
    const dataDir = values['data-dir'] ?? defaultDataDir()
    if (dataDir.length === 0) throw new UsageError('--data-dir must not be empty')
    const level = values['log-level'] ?? 'info'
    if (level !== 'debug' && level !== 'info' && level !== 'warn') throw new UsageError(`--log-level must be debug, info or warn, not '${level}'`)
    if (isControlCommand(command)) {
      const timeoutMs = values.timeout === undefined ? undefined : Number(values.timeout)
      if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of milliseconds')
      return await runControlCommand(command, rest, { dataDir, json: values.json === true, timeoutMs }, io)
    }
    switch (command) {
      case 'start':
        return await start(dataDir, level, io, {
          mdns: !values['no-mdns'],
          mdnsInterface: values['mdns-interface'],
          kademlia: !values['no-kademlia'],
          bootstrap: (values.bootstrap ?? []).map(parseBootstrap),
          mainline: values.mainline === true || values['mainline-bootstrap'] !== undefined,
          mainlineBootstrap: values['mainline-bootstrap']
        })
      case 'id':
        return await printId(dataDir, io)
      case undefined:
        throw new UsageError('a command is needed')
      default:
        throw new UsageError(`unknown command: ${command}`)
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ControlUsageError) {
      io.err(`mm-platform: ${err.message}\n\n${USAGE}`)
      return 2
    }
    if (err instanceof NoNodeError) {
      io.err(`mm-platform: ${err.message}`)
      return 1
    }
    const code = err instanceof MMError ? ` [${err.code}]` : ''
    io.err(`mm-platform: ${describe(err)}${code}`)
    return 1
  }
}

async function printId(dataDir: string, io: Io): Promise<number> {
  const platform = new Platform({ dataDir })
  try {
    await platform.ready()
    io.out(`signId  ${platform.identity.getSignId()}\nboxId   ${platform.identity.getBoxId()}\ndataDir ${dataDir}`)
    return 0
  } catch (err) {
    if (!(err instanceof MMError && err.code === 'ERR_STORAGE_LOCKED')) throw err
    // A node is running on this directory: its identity file can still be read.
    const identity = new Identity(new PlatformStorage(new LevelStore({ dir: dataDir })))
    if (!identity.known) throw err // its identity file is not there: nothing true to print
    io.out(`signId  ${identity.getSignId()}\nboxId   ${identity.getBoxId()}\ndataDir ${dataDir} (in use by a running node)`)
    return 0
  } finally {
    await platform.close()
  }
}

function parseBootstrap(text: string): NodeInfo {
  try {
    return JSON.parse(text) as NodeInfo
  } catch {
    throw new UsageError('--bootstrap takes a nodeInfo as JSON text (what `mm-platform nodeinfo` prints)')
  }
}

type Discovery = Pick<import('./commands/node-services.js').NodeServiceOptions, 'mdns' | 'mdnsInterface' | 'kademlia' | 'bootstrap' | 'mainline' | 'mainlineBootstrap'>

async function start(dataDir: string, level: 'debug' | 'info' | 'warn', io: Io, discovery: Discovery): Promise<number> {
  const logger = createConsoleLogger(level)
  const platform = new Platform({ dataDir, logger })
  platform.on('message', (m: Message) => {
    logger.info({ sender: m.sender, scope: m.scope, protocol: m.protocol, topic: m.topic, payload: preview(m.payload) }, 'received')
  })
  platform.on('connection', (signId: string) => logger.info({ signId }, 'connected'))
  platform.on('disconnected', (signId: string) => logger.info({ signId }, 'disconnected'))
  await platform.ready()
  const found = new Set<string>()
  const services = await startNodeServices(platform, {
    dataDir,
    ...discovery,
    logger,
    onPeer: (signId, via) => {
      if (found.has(signId)) return
      found.add(signId)
      io.out(`found   ${signId} via ${via}`)
    },
    onPublished: (seq) => io.out(`published on mainline (seq ${seq})`)
  })
  // Handlers first: a Ctrl-C (or a supervisor's SIGINT) right after the banner must stop cleanly.
  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  const listening = (platform.directory.getMyNodeInfo?.().connectionInfo ?? []).map((e) => {
    const info = e.transportInfo as { address?: string; port?: number }
    return `${e.transportType} ${info.address}:${info.port}`
  })
  io.out(
    `mm-platform node running\nsignId  ${platform.identity.getSignId()}\nboxId   ${platform.identity.getBoxId()}\ndataDir ${dataDir}\n` +
      listening.map((l) => `listen  ${l}\n`).join('') +
      `control ${services.control.path}\n` +
      `discovery ${[discovery.mdns && 'mdns', discovery.kademlia && 'kademlia', discovery.mainline && 'mainline'].filter(Boolean).join(', ') || 'off'}\n` +
      'Press Ctrl-C to stop.'
  )
  await stopped
  io.out('stopping...')
  await services.close()
  await platform.close()
  io.out('stopped')
  return 0
}

function preview(payload: unknown): unknown {
  if (payload instanceof Uint8Array) return `<${payload.length} bytes>`
  if (typeof payload === 'string' && payload.length > 200) return payload.slice(0, 200) + '...'
  return payload
}
