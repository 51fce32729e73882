/**
 * Commands that talk to a running node through its control socket:
 *   peers | nodeinfo | add <nodeinfo> | send <signId|local> <topic> <json> | sub <pattern>
 * Human-readable output by default; `--json` prints one JSON object per line for scripts.
 * Exit codes: 0 done (for send: delivered), 1 failed (for send: not delivered), 2 usage.
 */
import { controlCall, controlRequest } from '../control-client.js'

export const CONTROL_COMMANDS = ['peers', 'nodeinfo', 'add', 'send', 'sub'] as const
export type ControlCommand = (typeof CONTROL_COMMANDS)[number]

export interface Io {
  out: (line: string) => void
  err: (line: string) => void
}

export interface ControlContext {
  dataDir: string
  json: boolean
  timeoutMs?: number
  /** Ends `sub` (Ctrl-C). Default: SIGINT / SIGTERM. */
  signal?: AbortSignal
}

/** A usage mistake: main prints usage and exits 2. */
export class ControlUsageError extends Error {}

const ARITY: Record<ControlCommand, number> = { peers: 0, nodeinfo: 0, add: 1, send: 3, sub: 1 }

export function isControlCommand(command: string | undefined): command is ControlCommand {
  return (CONTROL_COMMANDS as readonly string[]).includes(command ?? '')
}

export async function runControlCommand(command: ControlCommand, args: string[], ctx: ControlContext, io: Io): Promise<number> {
  if (args.length !== ARITY[command]) {
    throw new ControlUsageError(`${command} takes ${ARITY[command]} argument${ARITY[command] === 1 ? '' : 's'}, not ${args.length}`)
  }
  const print = (human: string, value: unknown): void => io.out(ctx.json ? JSON.stringify(value) : human)
  const fail = (reply: Record<string, unknown>): number => {
    if (ctx.json) io.out(JSON.stringify(reply))
    else io.err(`mm-platform: ${String(reply.error)}${reply.code ? ` [${String(reply.code)}]` : ''}`)
    return 1
  }
  switch (command) {
    case 'nodeinfo': {
      const r = await controlCall(ctx.dataDir, { cmd: 'nodeinfo' })
      if (!r.ok) return fail(r)
      // The nodeInfo itself is the line to hand to someone, in both modes.
      io.out(JSON.stringify(r.nodeInfo))
      return 0
    }
    case 'peers': {
      const r = await controlCall(ctx.dataDir, { cmd: 'peers' })
      if (!r.ok) return fail(r)
      const peers = r.peers as Array<{ signId: string; connected: boolean; via: string[] }>
      if (ctx.json) for (const p of peers) io.out(JSON.stringify(p))
      else if (peers.length === 0) io.out('no peers known yet')
      else for (const p of peers) io.out(`${p.signId}  ${p.connected ? 'connected' : 'known    '}  ${p.via.length ? 'via ' + p.via.join(',') : ''}`.trimEnd())
      return 0
    }
    case 'add': {
      let nodeInfo: unknown
      try {
        nodeInfo = JSON.parse(args[0] as string)
      } catch {
        throw new ControlUsageError('add takes a nodeInfo as JSON text (what `mm-platform nodeinfo` prints)')
      }
      const r = await controlCall(ctx.dataDir, { cmd: 'add', nodeInfo })
      if (!r.ok) return fail(r)
      print(`added ${String(r.signId)}`, r)
      return 0
    }
    case 'send': {
      const [destination, topic, text] = args as [string, string, string]
      let payload: unknown
      try {
        payload = JSON.parse(text)
      } catch {
        throw new ControlUsageError(`send's payload must be JSON, e.g. '{"hello":1}' or '"text"'`)
      }
      const r = await controlCall(ctx.dataDir, { cmd: 'send', destination, topic, payload, timeoutMs: ctx.timeoutMs })
      if (!r.ok) return fail(r)
      print(`delivered to ${destination} in ${String(r.ms)} ms`, r)
      return 0
    }
    case 'sub': {
      const abort = new AbortController()
      const stop = (): void => abort.abort()
      const external = ctx.signal
      if (external) external.addEventListener('abort', stop, { once: true })
      else {
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      }
      let code = 0
      let first = true
      try {
        await controlRequest(
          ctx.dataDir,
          { cmd: 'sub', pattern: args[0] },
          (line) => {
            if (first) {
              first = false
              if (!line.ok) code = fail(line)
              else if (ctx.json) io.out(JSON.stringify(line)) // {ok, pattern}: the subscription is active
              else io.err(`listening on ${String(line.pattern)} (Ctrl-C stops)`)
              return
            }
            print(`${String(line.topic)}  ${String(line.sender)}  ${JSON.stringify(line.payload)}`, line)
          },
          abort.signal
        )
      } finally {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
      }
      return code
    }
  }
}
