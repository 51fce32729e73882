/**
 * Acceptance, as users run it: `mm-platform start` processes in a private network namespace.
 * - A and B (mDNS and Kademlia on, as `npm start`) find each other by mDNS with no nodeInfo handed
 *   over, and exchange messages (CLI `send` / `sub` through their control sockets);
 * - C (no mDNS, Kademlia bootstrapped from A's nodeInfo only) reaches B through Kademlia;
 * - D (no mDNS, no Kademlia) reaches B through a private Mainline DHT swarm, where B publishes.
 * Also measures the LAN discovery latency: B's start to its first message delivered to A.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { CLI, ROOT, runNode, tempDir } from './helpers/index.js'
import { canUseNetns, netns } from './helpers/discovery.js'

const ID = /^signId {2}(\S+)$/m

/** Everything each child printed so far (waitForOutput only sees what comes after it is called). */
const printed = new WeakMap<ChildProcess, { out: string; err: string }>()

function inNs(ns: string, args: string[]): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const seen = { out: '', err: '' }
  printed.set(child, seen)
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (seen.out += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (seen.err += d))
  return child
}

/** The first match of `pattern` in all that `child` printed, waiting up to `ms`. */
async function output(child: ChildProcess, pattern: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
  const seen = printed.get(child) as { out: string; err: string }
  const end = Date.now() + ms
  for (;;) {
    const m = seen.out.match(pattern)
    if (m) return m
    if (Date.now() > end || child.exitCode !== null) throw new Error(`no ${pattern} within ${ms} ms; stdout: ${seen.out}; stderr: ${seen.err}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

function startNode(ns: string, dataDir: string, extra: string[] = []): ChildProcess {
  return inNs(ns, [CLI, 'start', '--data-dir', dataDir, '--log-level', 'warn', ...extra])
}

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runNode(CLI, { args, timeoutMs: 30_000 })
  assert.equal(r.timedOut, false, `mm-platform ${args.join(' ')} did not finish`)
  return r
}

/** A `sub` client (outside the namespace: the control socket is a file) collecting JSON lines. */
function subscribe(dataDir: string, pattern: string): { lines: Array<Record<string, unknown>>; child: ChildProcess; ready: Promise<unknown> } {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT
  const child = spawn(process.execPath, [CLI, 'sub', pattern, '--json', '--data-dir', dataDir], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: Array<Record<string, unknown>> = []
  let buf = ''
  let onFirst: (v: unknown) => void = () => {}
  const ready = new Promise((r) => (onFirst = r))
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>
      buf = buf.slice(nl + 1)
      if (line.ok === true && line.pattern === pattern) onFirst(true) // the subscription is active
      else lines.push(line)
    }
  })
  return { lines, child, ready }
}

function withTimeout<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  return Promise.race([p, new Promise<T>((_r, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms).unref())])
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

test('mDNS, then Kademlia only, then Mainline only: four processes in a network namespace', { skip: !canUseNetns() && 'needs root and ip(8) for a network namespace', timeout: 300_000 }, async (t) => {
  const ns = netns()
  const children: ChildProcess[] = []
  t.after(() => {
    for (const c of children) c.kill('SIGKILL')
    ns.remove()
  })
  // A private Mainline swarm inside the namespace.
  const swarm = inNs(ns.name, ['--import', 'tsx', 'scripts/mainline-swarm.ts', '8'])
  children.push(swarm)
  const [, swarmLine] = await output(swarm, /^(\{.*\})$/m, 30_000)
  const mainlineBootstrap = (JSON.parse(swarmLine as string) as { bootstrap: string[] }).bootstrap

  const [dirA, dirB, dirC, dirD] = [tempDir(t), tempDir(t), tempDir(t), tempDir(t)]
  const a = startNode(ns.name, dirA)
  children.push(a)
  const [, signA] = await output(a, ID, 30_000)
  const subA = subscribe(dirA as string, 'public.test.*')
  children.push(subA.child)
  await withTimeout(subA.ready, 'sub on A')

  // B starts; from here to its first message delivered to A is the LAN discovery latency.
  const bStarted = Date.now()
  const b = startNode(ns.name, dirB, ['--mainline-bootstrap', ...mainlineBootstrap.slice(0, 1)])
  children.push(b)
  const [, signB] = await output(b, ID, 30_000)
  await output(b, new RegExp(`found {3}${(signA as string).replace(/[+/=]/g, '\\$&')} via mdns`), 30_000)
  const foundMs = Date.now() - bStarted
  const sentB = await cli(['send', signA as string, 'test.fromB', '{"n":1}', '--data-dir', dirB as string])
  assert.equal(sentB.code, 0, sentB.stderr)
  await until(() => subA.lines.some((l) => l.topic === 'public.test.fromB'), 10_000, 'A receives from B')
  const deliveredMs = Date.now() - bStarted
  console.log(`# mDNS discovery: B found A ${foundMs} ms after B's start; first message delivered ${deliveredMs} ms after (CLI send process included)`)
  assert.deepEqual(subA.lines.find((l) => l.topic === 'public.test.fromB'), { topic: 'public.test.fromB', sender: signB, payload: { n: 1 } })
  // And back: A to B, both found with no nodeInfo handed over.
  const subB = subscribe(dirB as string, 'public.test.*')
  children.push(subB.child)
  await withTimeout(subB.ready, 'sub on B')
  const sentA = await cli(['send', signB as string, 'test.fromA', '"hello B"', '--data-dir', dirA as string])
  assert.equal(sentA.code, 0, sentA.stderr)
  await until(() => subB.lines.some((l) => l.topic === 'public.test.fromA' && l.payload === 'hello B'), 10_000, 'B receives from A')
  const peersA = await cli(['peers', '--json', '--data-dir', dirA as string])
  const listed = peersA.stdout.trim().split('\n').map((l) => JSON.parse(l) as { signId: string; connected: boolean; via: string[] })
  assert.ok(listed.some((p) => p.signId === signB && p.connected && p.via.includes('mdns')), peersA.stdout)

  // C: Kademlia only, started from A's nodeInfo; it has never heard of B.
  const nodeInfoA = (await cli(['nodeinfo', '--data-dir', dirA as string])).stdout.trim()
  const c = startNode(ns.name, dirC, ['--no-mdns', '--bootstrap', nodeInfoA])
  children.push(c)
  const [, signC] = await output(c, ID, 30_000)
  let sentC = await cli(['send', signB as string, 'test.fromC', '3', '--data-dir', dirC as string])
  for (let i = 0; sentC.code !== 0 && i < 5; i++) {
    // C's DHT may still be joining when it is asked: ask again.
    await new Promise((r) => setTimeout(r, 500))
    sentC = await cli(['send', signB as string, 'test.fromC', '3', '--data-dir', dirC as string])
  }
  assert.equal(sentC.code, 0, sentC.stderr)
  await until(() => subB.lines.some((l) => l.topic === 'public.test.fromC' && l.sender === signC), 10_000, 'B receives from C')

  // D: Mainline only, through the private swarm, where B published its record.
  await output(b, /published on mainline/, 30_000)
  const d = startNode(ns.name, dirD, ['--no-mdns', '--no-kademlia', '--mainline-bootstrap', ...mainlineBootstrap.slice(1, 2)])
  children.push(d)
  const [, signD] = await output(d, ID, 30_000)
  const sentD = await cli(['send', signB as string, 'test.fromD', '4', '--data-dir', dirD as string])
  assert.equal(sentD.code, 0, sentD.stderr)
  await until(() => subB.lines.some((l) => l.topic === 'public.test.fromD' && l.sender === signD), 10_000, 'B receives from D')

  for (const child of [subA.child, subB.child, a, b, c, d]) child.kill('SIGINT')
})
