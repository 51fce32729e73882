/**
 * The command line side of the control socket (control-socket.ts): connect to the node that uses
 * a data directory, send one request, read JSON lines back.
 */
import fs from 'node:fs'
import net from 'node:net'
import { controlSocketPath } from './control-socket.js'

/** No node is running on that data directory (or it runs without a control socket). */
export class NoNodeError extends Error {
  constructor(dataDir: string) {
    super(`no running node found in ${dataDir} (start one with: mm-platform start --data-dir ${dataDir})`)
  }
}

/**
 * Sends `request` and calls `onLine` for every JSON line the node sends back, until it hangs up
 * (or `signal` aborts). Resolves when the connection ends.
 */
export function controlRequest(dataDir: string, request: Record<string, unknown>, onLine: (value: Record<string, unknown>) => void, signal?: AbortSignal): Promise<void> {
  const socketPath = controlSocketPath(dataDir)
  if (!fs.existsSync(socketPath)) return Promise.reject(new NoNodeError(dataDir))
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    let buffered = ''
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'))
    socket.on('data', (chunk: string) => {
      buffered += chunk
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        try {
          onLine(JSON.parse(line) as Record<string, unknown>)
        } catch (err) {
          socket.destroy()
          reject(err)
          return
        }
      }
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? new NoNodeError(dataDir) : err)
    })
    socket.on('close', () => resolve())
    signal?.addEventListener('abort', () => socket.end(), { once: true })
  })
}

/** One request, one reply. */
export async function controlCall(dataDir: string, request: Record<string, unknown>): Promise<Record<string, unknown>> {
  let reply: Record<string, unknown> | undefined
  await controlRequest(dataDir, request, (line) => {
    reply ??= line
  })
  if (!reply) throw new Error('the node closed the control connection without a reply')
  return reply
}
