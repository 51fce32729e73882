// Profiles both processes of mm-platform's two-process cases with `node --cpu-prof` and groups
// their self time into buckets (bench/lib/two-process/buckets.ts): per round trip (µs) for the
// echo cases, per MB (ms) for bulk, per connection for connects. Each case runs in a fresh pair of
// processes; only the samples inside the measured span count (both processes), except for cold
// connects, where each client's whole life (process start to exit) is the point.
//   node --import tsx bench/profile-two-process.ts [case,...] [--peer mm-platform] [--top]
// Profiles are left in bench/.tmp/profiles/ (open them in Chrome DevTools for the call trees).
import { mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { buildChild, OUT_DIR } from './lib/two-process/build.js'
import { Child, startClient, startServer, type Spawner } from './lib/two-process/processes.js'
import type { Case, PeerName, RunResult } from './lib/two-process/protocol.js'
import { BUCKETS, BUCKET_NOTES, summarise, type Summary } from './lib/two-process/buckets.js'
import { fmt, table } from './lib/two-process/report.js'

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const peer = (flag('--peer') ?? 'mm-platform') as PeerName
const showTop = args.includes('--top')
const cases = (args[0] && !args[0].startsWith('--') ? args[0] : 'echo64,echo1,bulk-cb,bulk,cold').split(',') as Array<Case | 'cold'>
const SECONDS = Number(flag('--seconds') ?? 6)
const ROOT = join(OUT_DIR, '..', 'profiles')

const script = await buildChild()
const profDir = (c: string): string => join(ROOT, `${peer}-${c}`)
const profArgs = (dir: string, name: string): string[] => ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `${name}.cpuprofile`, '--cpu-prof-interval', '200']

async function profileCase(c: Case | 'cold'): Promise<{ units: number; unit: string; per: number; files: Record<string, string>; window: [number, number] | undefined }> {
  const dir = profDir(c)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const spawner: Spawner = { script, execArgv: (_p, role) => profArgs(dir, role) }
  const { child: server, setup } = await startServer(spawner, peer)
  let units = 0
  let unit = ''
  let per = 1
  let window: [number, number] | undefined
  if (c === 'cold') {
    // Ten fresh client processes; each profile is a whole process life. The server is profiled
    // across all ten (it also did its own start, which is small beside ten handshakes).
    const n = 10
    for (let i = 0; i < n; i++) {
      const child = new Child(script, ['cold', peer, JSON.stringify(setup)], profArgs(dir, `cold-${i}`), 'cold')
      await child.next()
      await child.exitedP
    }
    units = n
    unit = 'connection'
  } else {
    const client = await startClient(spawner, peer, setup)
    const r = (await client.ask({ type: 'run', case: c, seconds: SECONDS, count: 200 }, 180_000)) as unknown as RunResult
    await client.stop()
    window = r.window
    units = c.startsWith('bulk') ? r.units / 1e6 : r.units
    unit = c.startsWith('bulk') ? 'MB' : c === 'warm-connect' ? 'connection' : 'round trip'
    per = c.startsWith('bulk') ? 1 : 1000 // ms per MB; µs per round trip / connection
    console.log(`${peer} ${c}: ${fmt(r.value, c.startsWith('bulk') ? 1 : c === 'warm-connect' ? 2 : 0)} ${c.startsWith('bulk') ? 'MB/s' : c === 'warm-connect' ? 'ms' : 'rt/s'} under the profiler (${fmt(units, 1)} ${unit}s)`)
  }
  await server.stop()
  const files: Record<string, string> = {}
  for (const f of readdirSync(dir)) files[f.replace(/\.cpuprofile$/, '')] = join(dir, f)
  return { units, unit, per, files, window }
}

console.log(`profiles of ${peer}, two processes, ${new Date().toISOString()}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`)
for (const c of cases) {
  const { units, unit, per, files, window } = await profileCase(c)
  const sums: Array<[string, Summary]> = []
  const clientFiles = Object.keys(files).filter((k) => k !== 'server').sort()
  // The cold clients: one column, their sum.
  const merged = (keys: string[]): Summary => {
    const all = keys.map((k) => summarise(files[k]!, window))
    const out: Summary = { ms: { ...all[0]!.ms }, total: all[0]!.total, top: all[0]!.top }
    for (const s of all.slice(1)) {
      for (const b of BUCKETS) out.ms[b] += s.ms[b]
      out.total += s.total
    }
    return out
  }
  if (files['server']) sums.push(['server', summarise(files['server'], window)])
  if (clientFiles.length) sums.push([c === 'cold' ? `client (${clientFiles.length} processes)` : 'client', merged(clientFiles)])
  const unitLabel = per === 1 ? `ms per ${unit}` : `µs per ${unit}`
  const rows = [['bucket', ...sums.flatMap(([n]) => [`${n} ${unitLabel}`, '%']), 'both', '%']]
  const busy = (s: Summary): number => s.total - s.ms.idle
  const bothBusy = sums.reduce((a, [, s]) => a + busy(s), 0)
  for (const b of BUCKETS) {
    if (b === 'idle') continue
    const both = sums.reduce((a, [, s]) => a + s.ms[b], 0)
    rows.push([b, ...sums.flatMap(([, s]) => [fmt((s.ms[b] * per) / units, per === 1 ? 2 : 1), `${fmt((100 * s.ms[b]) / busy(s), 0)}%`]), fmt((both * per) / units, per === 1 ? 2 : 1), `${fmt((100 * both) / bothBusy, 0)}%`])
  }
  rows.push(['busy total', ...sums.flatMap(([, s]) => [fmt((busy(s) * per) / units, per === 1 ? 2 : 1), '100%']), fmt((bothBusy * per) / units, per === 1 ? 2 : 1), '100%'])
  rows.push(['idle', ...sums.flatMap(([, s]) => [fmt((s.ms.idle * per) / units, per === 1 ? 2 : 1), '']), '', ''])
  console.log(`\n#### ${peer} ${c}: self time by bucket (${unitLabel})`)
  console.log(table(rows))
  if (showTop) {
    for (const [n, s] of sums) {
      console.log(`  top functions, ${n}:`)
      for (const b of BUCKETS) if (s.top[b].length) console.log(`    ${b}: ${s.top[b].map(([k, v]) => `${k} ${fmt(v, 0)}ms`).join('; ')}`)
    }
  }
}
console.log('\nbuckets:')
for (const b of BUCKETS) console.log(`  ${b}: ${BUCKET_NOTES[b]}`)
