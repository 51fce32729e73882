// The one interface every benchmark case implements, and the tiny wire protocol that the harness
// speaks over it. A case is message-oriented: one `send(msg)` on one end arrives as exactly one
// `onMessage(msg)` call on the other end, same bytes, same order (length-delimited messages over
// whatever the transport is). The harness checks this (sizes, sequence numbers) while measuring.
//
// To add a case: implement `BenchCase` below in a module under bench/lib/ (see peers/plain-tcp.ts,
// the smallest example) and register it in bench/lib/cases.ts.
//
// Server side: the case accepts sessions and, for each one, creates
//   const onMsg = serveSession((msg) => <send msg back to this client>)
// and feeds every received message to `onMsg`. That is all a server does; the first message of a
// session (sent by the harness) tells it whether to echo or to sink, see `serveSession`.
//
// Ownership of bytes (both directions): after `send(msg)` the caller never mutates `msg`, so the
// case may keep a reference until it is written; a `msg` handed to an `onMessage` callback belongs
// to the receiver from then on (a case must not reuse that memory, e.g. must not decrypt the next
// message into the same buffer), since the echo server sends it straight back.

export interface BenchCase {
  /** Shown in the tables; goals refer to peers by these names (see cases.ts). */
  readonly name: string
  /** Start the listening side (once per section, before any measurement). */
  start(): Promise<BenchServer>
}

export interface BenchServer {
  /**
   * Open a fresh client session to this server: a new connection (and handshake) every call, never
   * a reused one. Resolve when the caller may `send` (a case may resolve before its handshake ends
   * if it queues sends; the `connect` measurement times open + first echo either way).
   */
  open(): Promise<BenchPair>
  /** Close the listener and every session still open on either side; release sockets and timers. */
  close(): Promise<void>
}

export interface BenchPair {
  /** Queue one message. `false` means: wait for `drained()` before sending more. */
  send(msg: Buffer): boolean
  /** Set the (single) handler for messages coming back from the server; replaces the previous one. */
  onMessage(cb: (msg: Buffer) => void): void
  /** Resolves once `send` may be called again after it returned false (at once if it may already). */
  drained(): Promise<void>
  /** Close this session (both ends eventually); resolves when this end is closed. */
  close(): Promise<void>
}

// ---- the harness protocol, spoken over a BenchPair ----

/** First message of a session: a single byte naming the server's behaviour for that session. */
export const HELLO_ECHO = Buffer.from('e')
export const HELLO_SINK = Buffer.from('s')
/** In sink mode the server acks each time at least this many bytes arrived since its last ack. */
export const ACK_EVERY = 1 << 20
/** An ack is an 8-byte message: the total bytes received in this session (after the hello), BE. */
export const ACK_BYTES = 8

export type Mode = 'echo' | 'sink'

/**
 * The server side of one session. `reply` sends a message back to the client. Returns the handler
 * for the session's incoming messages. In echo mode every message is sent back unchanged (clients
 * bound the data in flight, at most 64 KiB, so the echo server needs no back-pressure); in sink
 * mode bytes are counted and acked every ACK_EVERY bytes, so throughput is measured at the receiver.
 */
export function serveSession(reply: (msg: Buffer) => unknown): (msg: Buffer) => void {
  let mode: Mode | undefined
  let total = 0
  let unacked = 0
  return (msg: Buffer) => {
    if (mode === 'echo') {
      reply(msg)
      return
    }
    if (mode === 'sink') {
      total += msg.byteLength
      unacked += msg.byteLength
      if (unacked >= ACK_EVERY) {
        unacked = 0
        reply(encodeAck(total))
      }
      return
    }
    if (msg.byteLength === 1 && msg[0] === HELLO_ECHO[0]) mode = 'echo'
    else if (msg.byteLength === 1 && msg[0] === HELLO_SINK[0]) mode = 'sink'
    else throw new Error(`bench server: first message must be a hello, got ${msg.byteLength} bytes`)
  }
}

export function encodeAck(total: number): Buffer {
  const b = Buffer.alloc(ACK_BYTES)
  b.writeUIntBE(total, 2, 6)
  return b
}

export function decodeAck(msg: Buffer): number {
  if (msg.byteLength !== ACK_BYTES) throw new Error(`bench: expected an ${ACK_BYTES}-byte ack, got ${msg.byteLength} bytes`)
  return msg.readUIntBE(2, 6)
}

/** Open a session on `server` and send the hello for `mode`. */
export async function openSession(server: BenchServer, mode: Mode): Promise<BenchPair> {
  const pair = await server.open()
  pair.send(mode === 'echo' ? HELLO_ECHO : HELLO_SINK)
  return pair
}
