/**
 * The adversarial suite, continued: several throwaway identities flood the victim (a node in its
 * own process, test/fixtures/victim-process.ts) with small ordinary DATA frames (not durable: the
 * realtime path) as fast as they can, and never read what it sends back. Each such channel must
 * be closed, the friend served throughout, and the victim's memory must stay within the budget
 * the README promises (README "Resource budget", docs/wire.md).
 */
import assert from 'node:assert/strict'
import type net from 'node:net'
import { test } from 'node:test'
import type { TcpChannel } from '../src/connections/tcp-channel.js'
import { MiB } from './helpers/victim.js'
import { assertFloodBudget, floodReport, floodSetup, floodTeardown, floodUntilClosed, friendDuring, tcpSession, tinyFrames } from './helpers/adversarial-flood.js'

const IDENTITIES = 6
/**
 * What the README promises (docs/wire.md, "Resource budget") per stranger channel: one frame
 * (1 MiB), 1 MiB held before resume, its held ACK ids (65,536 x 16 bytes = 1 MiB) and our
 * outgoing buffer (ACKs are held from 1 MiB on: 1 MiB and a packet): 4 MiB.
 */
const PER_CHANNEL = 4 * MiB
/**
 * The victim's young generation is kept at its smallest (1 MiB semi-spaces): under any traffic at
 * full rate it grows to 2 x 16 MiB, the runtime's and not the attack's (six strangers that do read,
 * sending the same frames at the same rate, grew RSS by 45 to 55 MiB with it, 27 MiB without),
 * and would hide what the attack makes the node hold.
 */
const VICTIM_NODE_OPTIONS = '--max-semi-space-size=1'
/**
 * What the runtime has not collected yet at a peak, mostly socket reads promoted while their
 * frames were handled: those six strangers that read grew heap+external by ~24 MiB (old space
 * garbage waits for a full collection).
 */
const RUNTIME = 24 * MiB
/** For RSS and for heap+external: 48 MiB, half the suite's 96 MiB for any attack (README). */
const BUDGET = RUNTIME + IDENTITIES * PER_CHANNEL
const FLOOD_MS = 20_000

test(`${IDENTITIES} identities flooding small non-durable frames without reading: each is closed, memory within budget`, { timeout: 90_000 }, async (t) => {
  const s = await floodSetup({}, VICTIM_NODE_OPTIONS)
  t.after(() => floodTeardown(s))
  const chunk = tinyFrames(2000)
  const channels: TcpChannel[] = []
  t.after(() => Promise.all(channels.map((c) => c.close())))
  let sent = 0
  const attack = (async () => {
    const floods: Array<Promise<number>> = []
    // One after another (within the per-address admission: at most 8 under way), each flooding
    // from the moment it is in, all at once.
    for (let i = 0; i < IDENTITIES; i++) {
      const channel = await tcpSession(s.victim)
      // Never read: the victim's ACKs pile up on its side.
      ;(channel.socket as unknown as { socket: net.Socket }).socket.pause()
      channels.push(channel)
      floods.push(floodUntilClosed(channel, chunk, FLOOD_MS).then((n) => (sent += n)))
    }
    await Promise.all(floods)
  })()
  const trips = await friendDuring(s, attack)
  const after = await s.victim.memory()
  t.diagnostic(floodReport(`${IDENTITIES} identities, non-durable flood`, s, after, sent, trips))
  assert.equal(channels.filter((c) => c.state !== 'closed').length, 0, 'every flooding channel was closed')
  assert.ok((after.stats.refused.notReading ?? 0) >= IDENTITIES, `each counted as notReading (${after.stats.refused.notReading ?? 0})`)
  assertFloodBudget(s, after, BUDGET, BUDGET)
})
