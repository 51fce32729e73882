// A variant of the A/B scripts (ab-two-process.ts, ab-connect.ts) started as a pair of processes:
// `ss` (secret-stream), `dht` (hyperdht), `tcp` (plain TCP), or `dir:rt[:udp]`: mm-platform from
// `dir` (`new`: this tree's dist/; else a directory holding a copy of package.json and dist/ of
// another build, node_modules linked to this tree's), rt = 1 for realtime sends, `udp` for UDP.
import { cpSync, mkdirSync } from 'node:fs'
import { startClient, startServer, type Child, type Spawner } from './processes.js'
import type { PeerName } from './protocol.js'

export interface Pair {
  name: string
  server: Child
  client: Child
}

/** Starts the server and client of variant `v`; `script` is this tree's bench child (buildChild). */
export async function startVariant(v: string, script: string): Promise<Pair> {
  let peer: PeerName = 'mm-platform'
  let sc = script
  if (v === 'ss') peer = 'secret-stream'
  else if (v === 'dht') peer = 'hyperdht'
  else if (v === 'tcp') peer = 'plain-tcp'
  else {
    const [dir, rt, transport] = v.split(':') as [string, string, string?]
    if (transport === 'udp') peer = 'mm-platform-udp'
    // The children inherit the environment at fork: each pair gets its own switch.
    process.env['BENCH_MM_REALTIME'] = rt
    if (dir !== 'new') {
      mkdirSync(`${dir}/bench/.tmp`, { recursive: true })
      cpSync(script.replace(/child\.mjs$/, ''), `${dir}/bench/.tmp/two-process`, { recursive: true })
      sc = `${dir}/bench/.tmp/two-process/child.mjs`
    }
  }
  const spawner: Spawner = { script: sc, execArgv: () => [] }
  const { child: server, setup } = await startServer(spawner, peer)
  const client = await startClient(spawner, peer, setup)
  return { name: v, server, client }
}
