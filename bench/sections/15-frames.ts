// Platform frame codec: our hand-written DATA frame codec (src/connections/frames.ts) against
// msgpackr, the fastest maintained MessagePack library for Node, on the same message: a DATA frame
// with a 1 KiB payload and a short topic, encoded then decoded. Same process, interleaved rounds
// (the order alternates), gc between measurements, median of the rounds.
//
//   node --import tsx --expose-gc bench/sections/15-frames.ts
//
// The question it answers (the rule): a maintained library must be used unless the
// hand-written codec is clearly faster. "Clearly" is taken as at least CLEARLY_FASTER times the
// best msgpackr variant measured. The msgpackr cases get no length prefix (ours includes its 4-byte
// header), which favours msgpackr.
import { Packr, isNativeAccelerationEnabled, pack, unpack } from 'msgpackr'
import { decodeFrame, encodeData, type DataFrame } from '../../src/connections/frames.js'

const FRAMES_PER_ROUND = 100_000
const ROUNDS = 9
const CLEARLY_FASTER = 1.5

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {})
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

const payload = Buffer.alloc(1024)
for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff
const message = {
  id: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
  protocol: 'mm/1',
  topic: 'chat.room',
  expiresAt: 1_700_000_000_000 + 7 * 24 * 3600 * 1000,
  payload
}

interface Case {
  name: string
  /** Encodes then decodes one message; returns something derived from the result (kept live). */
  roundTrip: () => number
  bytes: number
  note: string
}

const records = new Packr({ useRecords: true })

const cases: Case[] = [
  {
    name: 'hand-written (frames.ts)',
    roundTrip: () => {
      const frame = encodeData(message)
      const d = decodeFrame(frame.subarray(4)) as DataFrame
      return (d.payload as Buffer).length + d.topic.length
    },
    bytes: encodeData(message).length,
    note: 'with its 4-byte length'
  },
  {
    name: 'msgpackr pack/unpack',
    roundTrip: () => {
      const d = unpack(pack(message)) as typeof message
      return d.payload.length + d.topic.length
    },
    bytes: pack(message).length,
    note: 'map, no length prefix'
  },
  {
    name: 'msgpackr Packr (records)',
    roundTrip: () => {
      const d = records.unpack(records.pack(message)) as typeof message
      return d.payload.length + d.topic.length
    },
    bytes: records.pack(message).length,
    note: 'record extension, no length prefix'
  }
]

// Same result from every case before measuring anything.
{
  const ours = decodeFrame(encodeData(message).subarray(4)) as DataFrame
  for (const decoded of [ours, unpack(pack(message)) as typeof message, records.unpack(records.pack(message)) as typeof message]) {
    if (
      !Buffer.from(decoded.id).equals(message.id) ||
      decoded.protocol !== message.protocol ||
      decoded.topic !== message.topic ||
      decoded.expiresAt !== message.expiresAt ||
      !Buffer.from(decoded.payload as Uint8Array).equals(payload)
    ) {
      throw new Error('a codec did not round trip the message')
    }
  }
}

let sink = 0
function measure(c: Case): number {
  gc()
  const t0 = performance.now()
  for (let i = 0; i < FRAMES_PER_ROUND; i++) sink += c.roundTrip()
  return FRAMES_PER_ROUND / ((performance.now() - t0) / 1000)
}

// Warm-up: every case, twice.
for (let w = 0; w < 2; w++) for (const c of cases) measure(c)

const rates = new Map<Case, number[]>(cases.map((c) => [c, []]))
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? cases : [...cases].reverse()
  for (const c of order) rates.get(c)?.push(measure(c))
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')
const med = new Map(cases.map((c) => [c, median(rates.get(c) ?? [])]))
const ours = med.get(cases[0] as Case) as number
const plain = med.get(cases[1] as Case) as number
const best = Math.max(plain, med.get(cases[2] as Case) as number)

console.log(
  `DATA frame, 1 KiB payload, topic '${message.topic}', protocol '${message.protocol}', expiresAt set; encode + decode; ` +
    `median of ${ROUNDS} interleaved rounds of ${fmt(FRAMES_PER_ROUND)} frames (msgpackr native acceleration: ${isNativeAccelerationEnabled ? 'on' : 'off'})\n`
)
const width = Math.max(...cases.map((c) => c.name.length))
for (const c of cases) {
  const rs = rates.get(c) ?? []
  console.log(
    `  ${c.name.padEnd(width)}  ${fmt(med.get(c) as number).padStart(10)} frames/s  (min ${fmt(Math.min(...rs))}, max ${fmt(Math.max(...rs))}; ${c.bytes} B, ${c.note})`
  )
}
const ratioPlain = ours / plain
const ratioBest = ours / best
console.log(`\n  ratio hand-written / msgpackr pack/unpack: ${ratioPlain.toFixed(2)}x`)
console.log(`  ratio hand-written / best msgpackr:        ${ratioBest.toFixed(2)}x`)
if (ratioBest >= CLEARLY_FASTER) {
  console.log(`  verdict: KEEP the hand-written codec: it is ${ratioBest.toFixed(2)}x the best msgpackr variant (threshold ${CLEARLY_FASTER}x).`)
} else if (ratioBest >= 1) {
  console.log(`  verdict: USE msgpackr: the hand-written codec is only ${ratioBest.toFixed(2)}x the best msgpackr variant, not clearly faster (threshold ${CLEARLY_FASTER}x).`)
} else {
  console.log(`  verdict: USE msgpackr: it is faster (${(1 / ratioBest).toFixed(2)}x the hand-written codec).`)
}
if (sink === 0) console.log('(unreachable)')
