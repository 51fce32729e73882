// In-process: both ends of every session in this one process (the two-process mode, which the
// goals of issue 12 are judged on, is 25-two-process).
// Remote transport over UDP, side by side with HyperDHT (UDX + Noise + secret-stream) on a private
// loopback testnet, plus our cases registered in bench/lib/cases.ts (`mmUdpCases`).
import { HYPERDHT, mmUdpCases, udpCases } from '../lib/cases.js'
import { measureCases } from '../lib/measure.js'
import { exitCodeFor, printReport } from '../lib/report.js'
import { exitWatchdog } from '../lib/util.js'
import { throughputWithLoss } from '../lib/udp-loss.js'

const results = await measureCases(udpCases)

console.log(`IN-PROCESS (both ends of every session in this one process; the two-process figures the goals are judged on are in 25-two-process)\nUDP transports on loopback; medians of 3 rounds (connect: of 50 connections); MB = 10^6 bytes; ratios are to ${HYPERDHT}\n`)
printReport({
  results,
  refs: { bulk: HYPERDHT, pipelined: HYPERDHT, pingpong: HYPERDHT, connect: HYPERDHT },
  goals: [
    { metric: 'bulk', ref: HYPERDHT, factor: 1.5 },
    { metric: 'pipelined', ref: HYPERDHT, factor: 1 },
  ],
  ours: mmUdpCases.map((c) => c.name),
})

console.log('\nloss tolerance (mm-platform UDP stream, 8 MiB one way, seeded loss each way through an in-process lossy socket; no netem here):')
let lossFailed = false
for (const loss of [0, 0.01, 0.05]) {
  try {
    console.log(`  ${(loss * 100).toFixed(0).padStart(2)}% loss: ${(await throughputWithLoss(loss)).toFixed(1)} MB/s`)
  } catch (err) {
    lossFailed = true
    console.log(`  ${(loss * 100).toFixed(0).padStart(2)}% loss: failed: ${err instanceof Error ? err.message : String(err)}`)
  }
}

process.exitCode = lossFailed ? 1 : exitCodeFor(results)
exitWatchdog()
