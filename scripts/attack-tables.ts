/**
 * Full-scale run of the peer-table attack (issue 8; the test suite runs it with lowered limits):
 * 10,500 throwaway identities each open a TCP session to a victim with the default limits (but
 * the per-address handshake rate and concurrency raised, since every attacker here comes from 127.0.0.1), send
 * one message and stay connected. A friend of the victim echoes through it every second.
 * Prints traffic, the victim's peak memory, its stats, and whether the friend got through.
 *
 *   npm run build --silent && node --import tsx scripts/attack-tables.ts [identities] [parallel]
 */
import { randomBytes } from 'node:crypto'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { encodeData } from '../src/connections/frames.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { dialTcp } from '../src/transports/tcp.js'
import { memoryIdentity } from '../test/helpers/index.js'
import { Friend, MiB, Victim } from '../test/helpers/victim.js'

const IDENTITIES = Number(process.argv[2] ?? 10_500)
const PARALLEL = Number(process.argv[3] ?? 32)

const friend = new Friend()
const victim = await Victim.start([await friend.ready()], { admission: { ratePerAddress: 100_000, perAddress: 256 } })
friend.learn(victim)
await friend.roundTrip(victim)
const before = await victim.memory()
await victim.resetPeak()

const channels: TcpChannel[] = []
let sent = 0
let failed = 0
let next = 0
const started = Date.now()
async function worker(): Promise<void> {
  while (next < IDENTITIES) {
    next++
    try {
      const socket = await dialTcp('127.0.0.1', victim.port('tcp'), 10_000)
      const ch = TcpChannel.client(socket, { identity: memoryIdentity(), remoteSignId: victim.signId, remoteBoxId: victim.boxId, limits: STREAM_LIMITS })
      ch.on('close', () => undefined)
      await new Promise<void>((resolve, reject) => {
        ch.once('secure', () => resolve())
        ch.once('close', (err?: Error) => reject(err ?? new Error('closed')))
      })
      ch.resume()
      const frame = encodeData({ id: randomBytes(16), protocol: 'x', topic: 'hi', payload: Buffer.alloc(16) })
      ch.write(frame)
      sent += frame.length + 1000 // + the handshake, roughly
      channels.push(ch)
    } catch {
      failed++
    }
  }
}
let attacking = true
const attack = Promise.all(Array.from({ length: PARALLEL }, worker)).finally(() => (attacking = false))
let trips = 0
let tripFailures = 0
while (attacking) {
  try {
    await friend.roundTrip(victim, 10_000)
    trips++
  } catch {
    tripFailures++
  }
  await new Promise((r) => setTimeout(r, 1_000))
}
await attack
await friend.platform.disconnect(victim.signId)
let rejoined = true
try {
  await friend.roundTrip(victim, 10_000)
} catch {
  rejoined = false
}
const after = await victim.memory()
const open = channels.filter((c) => c.state === 'open').length
const mb = (n: number): string => (n / MiB).toFixed(1)
console.log(`identities ${IDENTITIES} in ${((Date.now() - started) / 1000).toFixed(1)} s (${failed} dials failed); attacker sent ~${mb(sent)} MiB`)
console.log(`victim RSS ${mb(before.rss)} -> peak ${mb(after.peakRss)} MiB; heap+external peak ${mb(after.peakHeap)} MiB; alive ${victim.alive}`)
console.log(`victim peers ${after.stats.peers}, strangers ${after.stats.strangers}; attacker channels still open ${open}`)
console.log(`refused: ${JSON.stringify(Object.fromEntries(Object.entries(after.stats.refused).filter(([, v]) => v > 0)))}`)
console.log(`friend: ${trips} round trips during the attack, ${tripFailures} failed; reconnected after it: ${rejoined}`)
const ok = rejoined && tripFailures === 0 && victim.alive
await Promise.all(channels.map((c) => c.close()))
await friend.close()
await victim.close()
process.exit(ok ? 0 : 1)
