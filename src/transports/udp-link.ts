/**
 * One conversation on the UDP endpoint: a dial of ours, or a client we accepted. The endpoint
 * routes each datagram to its link (by client extension or by the client's short-term key);
 * the owner of the link (a channel, above) sets `onPacket` and `onClose`.
 */

import type { PacketKind } from '../curvecp/packets.js'

/** One conversation the endpoint routes packets to: a dial, or a client we accepted. */
export interface UdpLink {
  readonly role: 'client' | 'server'
  /** Where packets go (a server link follows the client's latest authenticated address). */
  address: string
  port: number
  /** Client links: the client extension this dial uses (16 bytes). */
  readonly clientExtension: Buffer
  /** Set by the owner: every datagram routed here, with its source and its kind (by its magic). */
  onPacket: (packet: Buffer, address: string, port: number, kind: PacketKind) => void
  /** Set by the owner: the endpoint closed under it. */
  onClose: (err: Error) => void
  send(packet: Buffer): void
  /** Stops routing to this link (idempotent). */
  release(): void
}

/** What a link needs of its endpoint. */
export interface LinkOwner {
  sendTo(packet: Buffer, port: number, address: string): void
  forget(link: UdpLinkImpl): void
}

/** @internal The endpoint's links. */
export class UdpLinkImpl implements UdpLink {
  onPacket: (packet: Buffer, address: string, port: number, kind: PacketKind) => void = () => {}
  onClose: (err: Error) => void = () => {}
  released = false
  constructor(
    private readonly endpoint: LinkOwner,
    readonly role: 'client' | 'server',
    readonly key: string,
    public address: string,
    public port: number,
    readonly clientExtension: Buffer,
    /** `key` as bytes: C' (server links) or the client extension (dials). */
    readonly keyBytes: Buffer
  ) {}

  send(packet: Buffer): void {
    if (!this.released) this.endpoint.sendTo(packet, this.port, this.address)
  }

  release(): void {
    if (this.released) return
    this.released = true
    this.endpoint.forget(this)
  }
}

