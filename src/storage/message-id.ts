/**
 * Durable message ids: `<stream>-<seq>`, where `stream` is 16 hex digits (8 random bytes) chosen
 * once per sender store and kept in it, and `seq` a decimal counter that only grows, across
 * restarts too (its high-water mark is written with every batch that appends). So an id is
 * unique across restarts, and a store that is lost and made anew starts a new stream.
 *
 * Why this shape: a receiver can record the ids it has seen compactly, per sender and stream as
 * the highest `seq` handled and a bitmap of the window below it (see seen-ids.ts), because a
 * sender sends each destination's messages in `seq` order. Pure: no I/O, no clock.
 */
// libsodium's CSPRNG, not node:crypto's: loading node:crypto costs a fresh process ~6 ms.
import { randomBytes } from '../crypto/sodium.js'

/** A parsed id. */
export interface MessageIdParts {
  stream: string
  seq: number
}

/** Longest id text: 16 + 1 + 16 digits. */
export const MAX_MESSAGE_ID_LENGTH = 33

const STREAM_RE = /^[0-9a-f]{16}$/
const ID_RE = /^([0-9a-f]{16})-(0|[1-9][0-9]{0,15})$/

/** A new random stream id. */
export function newStreamId(): string {
  return randomBytes(8).toString('hex')
}

export function isStreamId(value: unknown): value is string {
  return typeof value === 'string' && STREAM_RE.test(value)
}

/** `<stream>-<seq>`. */
export function formatMessageId(stream: string, seq: number): string {
  return `${stream}-${seq}`
}

/** The parts of an id, or null when it is not one of ours (then it cannot be deduplicated). */
export function parseMessageId(id: unknown): MessageIdParts | null {
  if (typeof id !== 'string' || id.length > MAX_MESSAGE_ID_LENGTH) return null
  const m = ID_RE.exec(id)
  if (!m) return null
  const seq = Number(m[2])
  if (!Number.isSafeInteger(seq)) return null
  return { stream: m[1] as string, seq }
}
