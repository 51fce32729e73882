// The client-side interface each peer gives the measurements, and the server-side handle.
import { decodeJson, encodeJson, type ServerSetup } from './protocol.js'

export interface Conn {
  /** Queue one byte message; false: wait for drained() before more. */
  send(msg: Buffer): boolean
  /**
   * Only where the library itself reports delivery (mm-platform's `callback`): send one byte
   * message and call `cb` once the far end acknowledged it. Byte pipes leave this undefined; the
   * measurement then uses the session protocol's per-message acknowledgement ('a').
   */
  sendWithCallback?: (msg: Buffer, cb: (err: Error | null) => void) => void
  /** Send one JSON value (a byte pipe stringifies it; mm-platform sends it on `messaging`). */
  sendJson(value: unknown): void
  onBytes(cb: (msg: Buffer) => void): void
  onJson(cb: (value: unknown) => void): void
  /** Resolves when send may be called again (at once if it may already). */
  drained(): Promise<void>
  close(): Promise<void>
}

/** One client end in this process: keys made / platform ready; dial() makes a new session. */
export interface Client {
  dial(): Promise<Conn>
  close(): Promise<void>
}

export interface Server {
  setup: ServerSetup
  /** Sessions this server holds open now. */
  sessions(): number
  close(): Promise<void>
}

export interface Peer {
  serve(): Promise<Server>
  client(setup: ServerSetup): Promise<Client>
}

/** A message pipe (one write = one message) as a Conn, for the byte-pipe peers. */
export interface Pipe {
  write(msg: Buffer): boolean
  onMessage(cb: (msg: Buffer) => void): void
  drained(): Promise<void>
  close(): Promise<void>
}

export function pipeConn(p: Pipe): Conn {
  let bytes: (m: Buffer) => void = () => {}
  let json: ((v: unknown) => void) | undefined
  p.onMessage((m) => {
    if (json) json(decodeJson(m))
    else bytes(m)
  })
  return {
    send: (m) => p.write(m),
    sendJson: (v) => void p.write(encodeJson(v)),
    onBytes: (cb) => {
      json = undefined
      bytes = cb
    },
    onJson: (cb) => {
      json = cb
    },
    drained: () => p.drained(),
    close: () => p.close()
  }
}
