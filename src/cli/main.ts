/**
 * The `mm-platform` command: a thin shell over the library.
 *   mm-platform start [--data-dir DIR] [--log-level debug|info|warn]
 *   mm-platform id    [--data-dir DIR]
 */
import { parseArgs } from 'node:util'
import { Platform } from '../platform/platform.js'
import { LevelStore, defaultDataDir } from '../storage/level-store.js'
import { PlatformStorage } from '../storage/platform-storage.js'
import { Identity } from '../identity/identity.js'
import { createConsoleLogger } from '../logger.js'
import { MMError, describe } from '../errors.js'
import type { Message } from '../platform/message.js'

const USAGE = `usage: mm-platform <command> [options]

commands:
  start   start a node on the embedded store and log what it receives (Ctrl-C stops it)
  id      print this node's signId and boxId

options:
  --data-dir DIR     data directory (default: $MM_PLATFORM_DATA or ~/.mm-platform)
  --log-level LEVEL  debug, info or warn (start only; default info)
  -h, --help         this text
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
    if (!COMMANDS.has(command)) throw new UsageError(`unknown command: ${command}`)
    if (rest.length) throw new UsageError(`unexpected argument: ${rest[0]}`)
    const dataDir = values['data-dir'] ?? defaultDataDir()
    if (dataDir.length === 0) throw new UsageError('--data-dir must not be empty')
    const level = values['log-level'] ?? 'info'
    if (level !== 'debug' && level !== 'info' && level !== 'warn') throw new UsageError(`--log-level must be debug, info or warn, not '${level}'`)
    switch (command) {
      case 'start':
        return await start(dataDir, level, io)
      case 'id':
        return await printId(dataDir, io)
      case undefined:
        throw new UsageError('a command is needed')
      default:
        throw new UsageError(`unknown command: ${command}`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`mm-platform: ${err.message}\n\n${USAGE}`)
      return 2
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

async function start(dataDir: string, level: 'debug' | 'info' | 'warn', io: Io): Promise<number> {
  const logger = createConsoleLogger(level)
  const platform = new Platform({ dataDir, logger })
  platform.on('message', (m: Message) => {
    logger.info({ sender: m.sender, scope: m.scope, protocol: m.protocol, topic: m.topic, payload: preview(m.payload) }, 'received')
  })
  platform.on('connection', (signId: string) => logger.info({ signId }, 'connected'))
  platform.on('disconnected', (signId: string) => logger.info({ signId }, 'disconnected'))
  await platform.ready()
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
      'Press Ctrl-C to stop.'
  )
  await stopped
  io.out('stopping...')
  await platform.close()
  io.out('stopped')
  return 0
}

function preview(payload: unknown): unknown {
  if (payload instanceof Uint8Array) return `<${payload.length} bytes>`
  if (typeof payload === 'string' && payload.length > 200) return payload.slice(0, 200) + '...'
  return payload
}
