// What the two-process bench says between its processes, and the session protocol its ends speak.
//
// Setup (keys, ports, nodeInfo, commands, results) goes between the parent (the section) and each
// child over Node's IPC channel (child_process.fork), never over the channel being measured.
//
// On the measured channel, a session carries messages (one send = one message at the other end).
// A 1-byte message is a command to the serving end; any longer message is data, handled by the
// mode the last command chose:
//   'j'  JSON echo: parse the message, stringify it back (what a user of a byte pipe must do)
//   's'  sink, acknowledge with an 8-byte total every ACK_EVERY bytes (bulk without callbacks)
//   'a'  sink, acknowledge every message with an 8-byte total (a byte pipe's delivery callback)
//   'n'  sink, no acknowledgement (mm-platform's own delivery callback does that job)
//   'f'  flush: answer at once with the total received since the last mode command, as a 9-byte
//        message (the 8-byte total and 'f'), so it cannot be mistaken for an acknowledgement
// mm-platform speaks it on `bt` (torrenting); its JSON echo goes over `messaging` instead, where
// the platform encodes and decodes the JSON itself.

export type PeerName = 'plain-tcp' | 'secret-stream' | 'mm-platform' | 'hyperdht' | 'mm-platform-udp'

export const ACK_EVERY = 1 << 20
export const ACK_BYTES = 8
export const BULK_MESSAGE = 64 * 1024
export const TOPIC = 'bench'

export type Mode = 'j' | 's' | 'a' | 'n'

export const command = (c: Mode | 'f'): Buffer => Buffer.from(c, 'latin1')

export function encodeTotal(total: number): Buffer {
  const b = Buffer.alloc(ACK_BYTES)
  b.writeUIntBE(total, 2, 6)
  return b
}

export function decodeTotal(msg: Buffer): number {
  if (msg.byteLength !== ACK_BYTES && msg.byteLength !== ACK_BYTES + 1) throw new Error(`expected an ${ACK_BYTES}-byte total, got ${msg.byteLength} bytes`)
  return msg.readUIntBE(2, 6)
}

const fillers = new Map<number, string>()

/** A JSON object whose text is 1 KiB (1024 bytes) for sequence numbers below 10^15. */
export function jsonMessage(seq: number): { seq: number; text: string } {
  const digits = String(seq).length
  let text = fillers.get(digits)
  if (text === undefined) {
    text = 'x'.repeat(1024 - JSON.stringify({ seq, text: '' }).length)
    fillers.set(digits, text)
  }
  return { seq, text }
}

/** What a byte-pipe user does to send JSON (named, so that profiles put it under JSON). */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value))
}

export function decodeJson(msg: Buffer): unknown {
  return JSON.parse(msg.toString('utf8'))
}

/**
 * The serving end of one session. `reply` sends bytes back; returns the handler for incoming
 * byte messages. Hostile input is not a concern here (both ends are ours).
 */
export function serveBytes(reply: (msg: Buffer) => unknown): (msg: Buffer) => void {
  let mode: Mode = 'j'
  let total = 0
  let unacked = 0
  return (msg: Buffer) => {
    if (msg.byteLength === 1) {
      const c = String.fromCharCode(msg[0]!)
      if (c === 'f') reply(Buffer.concat([encodeTotal(total), msg]))
      else {
        mode = c as Mode
        total = 0
        unacked = 0
      }
      return
    }
    if (mode === 'j') {
      reply(encodeJson(decodeJson(msg)))
      return
    }
    total += msg.byteLength
    if (mode === 'a') reply(encodeTotal(total))
    else if (mode === 's') {
      unacked += msg.byteLength
      if (unacked >= ACK_EVERY) {
        unacked = 0
        reply(encodeTotal(total))
      }
    }
  }
}

// ---- IPC between the section (parent) and the children ----

/** What a server child tells the parent once it listens: everything a client needs to dial. */
export interface ServerSetup {
  peer: PeerName
  /** Peer-specific: port, public key (hex), nodeInfo, DHT bootstrap. JSON only. */
  [k: string]: unknown
}

export type Case = 'bulk-cb' | 'bulk' | 'echo64' | 'echo1' | 'warm-connect'

export interface RunCommand {
  type: 'run'
  case: Case
  seconds: number
  /** warm-connect: how many connections. */
  count?: number
}

export interface RunResult {
  type: 'result'
  case: Case
  /** bulk: MB/s (10^6 B/s); echo: round trips/s; warm-connect: ms per connect + first echo (median). */
  value: number
  /** Bytes or round trips completed, and the seconds they took (for profiles' per-unit figures). */
  units: number
  elapsed: number
  /**
   * The measured span in µs of the system's monotonic clock (process.hrtime), the clock V8's
   * CPU profiles are stamped with; the profile summary counts only samples inside it.
   */
  window?: [number, number]
}

export interface ColdResult {
  type: 'cold'
  /** ms from process start (performance.timeOrigin) to the first echo answered. */
  sinceStart: number
  /** ms from just before the dial to the first echo answered (modules already loaded). */
  connect: number
  /** ms from process start to the library being loaded and keys/platform ready. */
  ready: number
}

export interface MemoryReport {
  type: 'memory'
  rss: number
  heapUsed: number
  external: number
  sessions: number
}
