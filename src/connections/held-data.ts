/**
 * What a channel receives before its owner is ready for it. A channel starts paused: the
 * handshake can complete (and 0-RTT data arrive) before the connection layer has attached its
 * listeners, and nothing may be lost in between. Bounded: past `maxBytes` the caller closes.
 */
export class HeldData {
  private held: Buffer[] | undefined = []
  private bytes = 0
  private readonly maxBytes: number

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  /** True until release(): data must be held, not emitted. */
  get holding(): boolean {
    return this.held !== undefined
  }

  /** Holds `data`; false when that takes it past the bound (the peer sent too much too early). */
  hold(data: Buffer): boolean {
    if (!this.held) return true
    this.held.push(data)
    this.bytes += data.length
    return this.bytes <= this.maxBytes
  }

  /** Stops holding; hands what was held to `emit` in order, while `stillOpen()` says so. */
  release(emit: (data: Buffer) => void, stillOpen: () => boolean): void {
    const held = this.held
    if (!held) return
    this.held = undefined
    this.bytes = 0
    for (const data of held) {
      if (!stillOpen()) return
      emit(data)
    }
  }
}
