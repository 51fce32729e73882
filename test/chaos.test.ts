// Issue 10 acceptance, the chaos test: two processes, 10,000 non-realtime messages; sender and
// receiver each killed with SIGKILL at random moments several times and started again on the
// same storage (and so the same ports). At the end every message reached the receiver's handlers,
// in order; the duplicates are counted and within what the README allows: a message handed over
// again only after a receiver kill (killed between its handler and its record of the id).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fork, type ChildProcess } from 'node:child_process'
import { FIXTURES, delay, tempDir, waitUntil } from './helpers/index.js'
import { DEFAULT_DELIVERY_WINDOW } from '../src/connections/delivery.js'

const FIXTURE = path.join(FIXTURES, 'chaos-peer.ts')
const TOTAL = 10_000
const KILLS_EACH = Number(process.env.CHAOS_KILLS ?? 4)
/** Messages the fixture's sender sends per turn (chaos-peer.ts). */
const APP_BATCH = 25

interface Child {
  proc: ChildProcess
  ready: Promise<{ signId: string; nodeInfo: unknown }>
  allAccepted: boolean
}

function start(env: Record<string, string>): Child {
  const proc = fork(FIXTURE, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const child: Child = { proc, allAccepted: false, ready: Promise.resolve({ signId: '', nodeInfo: null }) }
  child.ready = new Promise((resolve, reject) => {
    proc.on('message', (m: { event: string; signId: string; nodeInfo: unknown; error?: string }) => {
      if (m.event === 'ready') resolve(m)
      if (m.event === 'failed') reject(new Error(`${env.ROLE} failed to start: ${m.error}`))
      if (m.event === 'allAccepted') child.allAccepted = true
    })
    proc.on('exit', (code, signal) => reject(new Error(`${env.ROLE} exited before ready (${code ?? signal})`)))
    // A start that never ends is a failure to see, not a hang of the suite.
    const timer = setTimeout(() => reject(new Error(`${env.ROLE} (pid ${proc.pid}) not ready within 30 s`)), 30_000)
    timer.unref()
  })
  return child
}

function kill(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.proc.once('exit', () => resolve())
    child.proc.kill('SIGKILL')
  })
}

test(`chaos: ${TOTAL} messages, sender and receiver each SIGKILLed ${KILLS_EACH} times at random moments`, { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t)
  const log = path.join(dir, 'received.log')
  const recvEnv = { ROLE: 'receiver', DATA_DIR: path.join(dir, 'r'), LOG: log }
  let receiver = start(recvEnv)
  const r = await receiver.ready
  const sendEnv = { ROLE: 'sender', DATA_DIR: path.join(dir, 's'), DEST: r.signId, TOTAL: String(TOTAL), PROGRESS: path.join(dir, 'progress') }
  let sender = start({ ...sendEnv, NODEINFO: JSON.stringify(r.nodeInfo) })
  t.after(() => Promise.all([kill(sender), kill(receiver)]))
  await sender.ready
  const started = Date.now()
  const lines = (): string[] => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [])
  // Kills alternate at random moments, each side restarted after a short random pause.
  const kills = { sender: 0, receiver: 0 }
  const receivedAtKill: number[] = []
  for (let k = 0; k < 2 * KILLS_EACH; k++) {
    await delay(300 + Math.random() * 900)
    receivedAtKill.push(lines().length)
    if (k % 2 === 0) {
      await kill(sender)
      kills.sender++
      await delay(Math.random() * 300)
      sender = start(sendEnv) // no NODEINFO: it has only what it stored
      await sender.ready
    } else {
      await kill(receiver)
      kills.receiver++
      await delay(Math.random() * 300)
      receiver = start(recvEnv) // the same data directory, so the same port
      await receiver.ready
    }
  }
  const distinct = (): number => new Set(lines().map((l) => l.split(' ')[0])).size
  await waitUntil(() => distinct() === TOTAL, 60_000, `all ${TOTAL} messages at the receiver (have ${distinct()})`)
  const seconds = (Date.now() - started) / 1000

  const entries = lines().map((l) => {
    const [i, id, pid] = l.split(' ') as [string, string, string]
    return { i: Number(i), id, pid, seq: Number(id.split('-')[1]), stream: id.split('-')[0] }
  })
  const seenIds = new Map<string, string>()
  let sameIdDuplicates = 0
  let lastSeq = -1
  let stream = ''
  const idsOfIndex = new Map<number, Set<string>>()
  for (const e of entries) {
    if (!idsOfIndex.has(e.i)) idsOfIndex.set(e.i, new Set())
    ;(idsOfIndex.get(e.i) as Set<string>).add(e.id)
    const firstPid = seenIds.get(e.id)
    if (firstPid !== undefined) {
      // Handed over again: only a receiver kill can cause it, so never within one receiver process.
      assert.notEqual(e.pid, firstPid, `${e.id} handed over twice by the same receiver process`)
      sameIdDuplicates++
      continue
    }
    seenIds.set(e.id, e.pid)
    stream ||= e.stream as string
    assert.equal(e.stream, stream, 'one sender store, one id stream across its restarts')
    assert.ok(e.seq > lastSeq, `in order: id ${e.id} after seq ${lastSeq}`)
    lastSeq = e.seq
  }
  for (let i = 0; i < TOTAL; i++) assert.ok(idsOfIndex.has(i), `message ${i} reached the handlers`)
  // The app's own resends: accepted by the outbox, killed before its progress file said so.
  const appResends = [...idsOfIndex.values()].filter((s) => s.size > 1).length
  t.diagnostic(
    `sent ${TOTAL} (outbox ids ${seenIds.size}), handed over ${entries.length}, same-id duplicates ${sameIdDuplicates}, ` +
      `app resends after a sender kill ${appResends}, kills: sender ${kills.sender}, receiver ${kills.receiver}; ` +
      `lines at each kill ${receivedAtKill.join(',')}; ${seconds.toFixed(1)} s`
  )
  assert.ok(kills.sender >= Math.min(3, KILLS_EACH) && kills.receiver >= Math.min(3, KILLS_EACH))
  if (KILLS_EACH) assert.ok(receivedAtKill.some((n) => n > 0 && n < TOTAL), 'kills happened while messages were flowing')
  // README: a receiver killed between its handler and the write of its record sees those messages
  // once more; at most what one window of messages in flight holds, per receiver kill.
  assert.ok(sameIdDuplicates <= kills.receiver * DEFAULT_DELIVERY_WINDOW, `${sameIdDuplicates} duplicates for ${kills.receiver} receiver kills`)
  // A sender killed after the outbox wrote a batch and before the app heard `accepted` sends those
  // again (new ids: the app's own resend, not the platform's): at most one batch of the app's.
  assert.ok(appResends <= kills.sender * APP_BATCH, `${appResends} app resends for ${kills.sender} sender kills`)
})
