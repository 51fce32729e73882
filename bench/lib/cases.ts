// The cases each section measures. Peers first; our implementation's cases are registered below.
import type { BenchCase } from './pair.js'
import { PLAIN_TCP, plainTcp } from './peers/plain-tcp.js'
import { SECRET_STREAM, secretStream } from './peers/secret-stream.js'
import { LIBP2P, libp2p } from './peers/libp2p.js'
import { HYPERDHT, hyperdht } from './peers/hyperdht.js'

export { PLAIN_TCP, SECRET_STREAM, LIBP2P, HYPERDHT, plainTcp, secretStream, libp2p, hyperdht }

// =================================================================================================
// mm-platform: REGISTER OUR CASES HERE.
// Implement `BenchCase` (bench/lib/pair.ts) in e.g. bench/lib/mm.ts, then:
//   import { mmTcp, mmUdp } from './mm.js'
//   export const mmTcpCases: BenchCase[] = [mmTcp]   // measured by bench/sections/20-tcp.ts
//   export const mmUdpCases: BenchCase[] = [mmUdp]   // measured by bench/sections/30-udp.ts
// Every case listed here is "ours": the sections print the goals' verdicts for each of them.
// =================================================================================================
import { mmTcp, mmUdp } from './mm.js'
export const mmTcpCases: BenchCase[] = [mmTcp]
export const mmUdpCases: BenchCase[] = [mmUdp]

export const tcpPeers: BenchCase[] = [plainTcp, secretStream, libp2p]
export const udpPeers: BenchCase[] = [hyperdht]

export const tcpCases: BenchCase[] = [...tcpPeers, ...mmTcpCases]
export const udpCases: BenchCase[] = [...udpPeers, ...mmUdpCases]
