// Platform frame codec: the codec in use (src/connections/frames.ts, hand-written binary layout)
// against msgpackr, the fastest maintained MessagePack library for Node, as the msgpackr-based
// codec that frames.ts used for a while (kept as bench/lib/frames-msgpackr.ts, comparison only).
// Same message: a DATA frame with a 1 KiB payload and a short topic, encoded then decoded, 4-byte
// length and type byte included for every row. Same process, interleaved rounds (the order
// alternates), gc between measurements, median of the rounds.
//
//   node --import tsx --expose-gc bench/sections/15-frames.ts
//
// The question it answers (the issue's rule): a maintained library must be used unless the
// hand-written codec is clearly faster. "Clearly" is taken as at least CLEARLY_FASTER times
// msgpackr used the way it has to be to be safe (the verdict's row). Every run prints the ratio; a
// run under the threshold says so.
//
// Rows:
// - in use: hand-written. Encodes straight into one buffer of the frame's exact size; decodes to
//   views into the body (the id and a bytes payload alias it).
// - msgpackr, with the copies it needs to be safe: the frame is copied out of msgpackr's
//   process-wide shared pack buffer (else the next pack anywhere in the process overwrites a
//   queued frame), and the body is copied before decoding (so nothing decoded aliases it).
// - msgpackr, encode copy only: decoded bytes alias the body, as the hand-written codec's do; the
//   closest like-for-like on aliasing. Printed for information, not used by the verdict.
// - msgpackr without those copies: the frame is a view into the shared pack buffer. Not safe to
//   queue or to use after the next pack; the lower bound on what msgpackr could cost.
import { isNativeAccelerationEnabled } from 'msgpackr'
import { decodeFrame, encodeData, type DataFrame } from '../../dist/esm/connections/frames.js'
import * as mp from '../lib/frames-msgpackr.js'

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
  /** The decoded message, for the check that every row round trips. */
  decodeOnce: () => DataFrame
  bytes: number
  note: string
}

const score = (d: DataFrame): number => (d.payload as Buffer).length + d.topic.length

const handWritten: Case = {
  name: 'in use: hand-written (frames.ts)',
  roundTrip: () => score(decodeFrame(encodeData(message).subarray(4)) as DataFrame),
  decodeOnce: () => decodeFrame(encodeData(message).subarray(4)) as DataFrame,
  bytes: encodeData(message).length,
  note: 'one buffer per frame; decodes to views into the body'
}
const msgpackrSafe: Case = {
  name: 'msgpackr, with the copies it needs to be safe',
  roundTrip: () => score(mp.decodeFrame(mp.encodeData(message).subarray(4)) as DataFrame),
  decodeOnce: () => mp.decodeFrame(mp.encodeData(message).subarray(4)) as DataFrame,
  bytes: mp.encodeData(message).length,
  note: 'bench/lib/frames-msgpackr.ts: copy out of the shared buffer, copy before decode'
}
const msgpackrEncodeCopy: Case = {
  name: 'msgpackr, encode copy only',
  roundTrip: () => score(mp.decodeFrameNoCopy(mp.encodeData(message).subarray(4)) as DataFrame),
  decodeOnce: () => mp.decodeFrameNoCopy(mp.encodeData(message).subarray(4)) as DataFrame,
  bytes: mp.encodeData(message).length,
  note: 'decoded bytes alias the body, as the hand-written codec does'
}
const msgpackrNoCopy: Case = {
  name: 'msgpackr without those copies',
  roundTrip: () => score(mp.decodeFrameNoCopy(mp.encodeDataNoCopy(message).subarray(4)) as DataFrame),
  decodeOnce: () => mp.decodeFrameNoCopy(mp.encodeDataNoCopy(message).subarray(4)) as DataFrame,
  bytes: mp.encodeDataNoCopy(message).length,
  note: 'NOT safe: the frame is a view into the shared pack buffer'
}
const cases: Case[] = [handWritten, msgpackrSafe, msgpackrEncodeCopy, msgpackrNoCopy]

// Same result from every row before measuring anything.
for (const c of cases) {
  const decoded = c.decodeOnce()
  if (
    !decoded.id.equals(message.id) ||
    decoded.protocol !== message.protocol ||
    decoded.topic !== message.topic ||
    decoded.expiresAt !== message.expiresAt ||
    !Buffer.isBuffer(decoded.payload) ||
    !decoded.payload.equals(payload)
  ) {
    throw new Error(`${c.name}: did not round trip the message`)
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
const rate = (c: Case): number => med.get(c) as number

console.log(
  `DATA frame, 1 KiB payload, topic '${message.topic}', protocol '${message.protocol}', expiresAt set; encode + decode; ` +
    `median of ${ROUNDS} interleaved rounds of ${fmt(FRAMES_PER_ROUND)} frames (msgpackr native acceleration: ${isNativeAccelerationEnabled ? 'on' : 'off'})\n`
)
const width = Math.max(...cases.map((c) => c.name.length))
for (const c of cases) {
  const rs = rates.get(c) ?? []
  console.log(
    `  ${c.name.padEnd(width)}  ${fmt(rate(c)).padStart(10)} frames/s  (min ${fmt(Math.min(...rs))}, max ${fmt(Math.max(...rs))}; ${c.bytes} B; ${c.note})`
  )
}

const ratio = rate(handWritten) / rate(msgpackrSafe)
console.log('')
for (const c of [msgpackrSafe, msgpackrEncodeCopy, msgpackrNoCopy]) {
  const r = rate(handWritten) / rate(c)
  const label = `ratio hand-written / ${c.name}:`
  console.log(`  ${label.padEnd(width + 24)} ${r.toFixed(2)}x${r < CLEARLY_FASTER ? `  (under ${CLEARLY_FASTER}x)` : ''}`)
}
if (ratio >= CLEARLY_FASTER) {
  console.log(`  verdict: in use: hand-written; clearly faster than msgpackr: ${ratio.toFixed(2)}x (threshold ${CLEARLY_FASTER}x, msgpackr with the copies it needs).`)
} else {
  console.log(
    `  verdict: in use: hand-written; NOT clearly faster than msgpackr in this run: ${ratio.toFixed(2)}x, under the ${CLEARLY_FASTER}x threshold ` +
      `(msgpackr with the copies it needs). By the rule this run alone does not justify the hand-written codec; re-run, and weigh the end-to-end figures in frames.ts.`
  )
}
if (sink === 0) console.log('(unreachable)')
