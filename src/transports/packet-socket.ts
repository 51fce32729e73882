/**
 * The one interface between CurveCP and the wire: something that carries whole packets to one
 * remote endpoint. TCP implements it with length prefixes; tests use an in-memory pair.
 */
export interface PacketSocket {
  /** Sends one packet; false means the caller should wait for `onDrain` before sending more. */
  send(packet: Buffer): boolean
  /**
   * Optional: bytes of framing the socket writes before each packet (TCP's length prefix). A
   * caller that leaves that much room at the start of a buffer sends it with sendFramed().
   */
  readonly headroom?: number
  /** Sends the packet that starts `headroom` bytes into `buffer` (the socket fills them): one write, no copy. */
  sendFramed?(buffer: Buffer): boolean
  /** Optional: hold writes until uncork(), so many packets leave in one system call. */
  cork?(): void
  uncork?(): void
  /** Optional: the largest packet accepted from now on (small before authentication). */
  setMaxPacketBytes?(bytes: number): void
  onPacket(listener: (packet: Buffer) => void): void
  onDrain(listener: () => void): void
  /** Called once, when the socket is gone (with the cause when it failed). */
  onClose(listener: (err?: Error) => void): void
  /**
   * Closes gracefully after queued packets are written; `err` says why (for logs). Idempotent:
   * every caller gets the same promise, resolved once the socket is gone.
   */
  close(err?: Error): Promise<void>
  /** Bytes accepted by send() but not yet written to the OS. */
  readonly bufferedBytes: number
  readonly remote: string
}

interface MemorySocket extends PacketSocket {
  peer: MemorySocket | undefined
  deliver(packet: Buffer): void
  end(err?: Error): void
  closing: Promise<void> | undefined
}

/** Two connected in-memory PacketSockets, for tests of everything above the wire. */
export function memorySocketPair(): [PacketSocket, PacketSocket] {
  const make = (name: string): MemorySocket => {
    const packetListeners: Array<(p: Buffer) => void> = []
    const closeListeners: Array<(err?: Error) => void> = []
    let closed = false
    const s: MemorySocket = {
      peer: undefined,
      closing: undefined,
      remote: name,
      bufferedBytes: 0,
      send(packet: Buffer): boolean {
        if (closed) return false
        const peer = s.peer
        const copy = Buffer.from(packet)
        queueMicrotask(() => peer?.deliver(copy))
        return true
      },
      deliver(p: Buffer): void {
        if (!closed) for (const l of packetListeners) l(p)
      },
      onPacket(l: (p: Buffer) => void): void {
        packetListeners.push(l)
      },
      onDrain(): void {},
      onClose(l: (err?: Error) => void): void {
        closeListeners.push(l)
      },
      end(err?: Error): void {
        if (closed) return
        closed = true
        for (const l of closeListeners) l(err)
      },
      close(err?: Error): Promise<void> {
        if (s.closing) return s.closing
        const peer = s.peer
        queueMicrotask(() => peer?.end())
        s.end(err)
        s.closing = Promise.resolve()
        return s.closing
      }
    }
    return s
  }
  const a = make('memory:a')
  const b = make('memory:b')
  a.peer = b
  b.peer = a
  return [a, b]
}
