// In-process: both ends of every session in this one process (the two-process mode, which the
// goals of issue 12 are judged on, is 25-two-process).
// Remote transport over TCP, side by side with its peers: plain loopback TCP (the physical limit),
// @hyperswarm/secret-stream over TCP, and libp2p (TCP + Noise + Yamux), plus our cases registered
// in bench/lib/cases.ts (`mmTcpCases`). Then memory per idle session, shown on plain TCP sockets.
import { PLAIN_TCP, SECRET_STREAM, mmTcpCases, plainTcp, tcpCases } from '../lib/cases.js'
import { measureCases } from '../lib/measure.js'
import { formatMemory, memoryPerSession, openIdleSessions } from '../lib/memory.js'
import type { MemoryPerSession } from '../lib/memory.js'
import { exitCodeFor, printReport } from '../lib/report.js'
import { mmMemoryPerSession } from '../lib/mm.js'
import { exitWatchdog } from '../lib/util.js'

const IDLE_SESSIONS = 1000

// Memory first, in a fresh heap: 1000 idle loopback TCP connections (both ends in this process).
let memory: MemoryPerSession | undefined
let memoryError: unknown
{
  const server = await plainTcp.start()
  try {
    memory = await memoryPerSession(IDLE_SESSIONS, (n) => openIdleSessions(server, n))
  } catch (err) {
    memoryError = err
  } finally {
    await server.close()
  }
}

let mmMemory: MemoryPerSession | undefined
try {
  mmMemory = await mmMemoryPerSession(IDLE_SESSIONS)
} catch (err) {
  memoryError ??= err
}

const results = await measureCases(tcpCases)

console.log(`IN-PROCESS (both ends of every session in this one process; the two-process figures the goals are judged on are in 25-two-process)\nTCP transports on loopback; medians of 3 rounds (connect: of 50 connections); MB = 10^6 bytes; ratios are to each goal's reference\n`)
printReport({
  results,
  refs: { bulk: SECRET_STREAM, pipelined: SECRET_STREAM, pingpong: PLAIN_TCP, connect: SECRET_STREAM },
  goals: [
    { metric: 'bulk', ref: SECRET_STREAM, factor: 1.3 },
    { metric: 'pipelined', ref: SECRET_STREAM, factor: 1.2 },
    { metric: 'pingpong', ref: PLAIN_TCP, factor: 0.9 },
    { metric: 'connect', ref: SECRET_STREAM, factor: 0.5 },
  ],
  ours: mmTcpCases.map((c) => c.name),
})

console.log('\nmemory per idle session:')
if (memory) console.log(`  ${formatMemory(PLAIN_TCP, memory)}`)
else console.log(`  ${PLAIN_TCP}: failed: ${memoryError instanceof Error ? memoryError.message : String(memoryError)}`)
if (mmMemory) {
  console.log(`  ${formatMemory('mm-platform', mmMemory)}`)
  const kib = mmMemory.total / 1024
  console.log(`  goal: mm-platform <= 50 KiB per idle session (heap + external): ${kib.toFixed(1)} KiB, ${kib <= 50 ? 'met' : 'NOT met'}`)
} else if (mmTcpCases.length === 0) console.log('  mm-platform case not registered')

process.exitCode = memory ? exitCodeFor(results) : 1
exitWatchdog()
