/**
 * The low-level messaging contract that the Platform implements and that API objects consume.
 * A {@link Layer} sits between the two and passes everything through, so a user can chain one
 * (logging, buffering, filtering) by overriding `send` or `receive`, as the seed README describes.
 * Payloads pass through a Layer in wire form (a string or bytes), local and remote alike: the API
 * objects above it encode what they send and decode what they receive.
 */
import { EventEmitter } from 'node:events'
import type { Message, OutgoingMessage, SendOptions } from './message.js'

export interface MessageLayer {
  send(message: OutgoingMessage, options?: SendOptions): boolean | void
  on(event: 'message', listener: (message: Message) => void): unknown
  removeListener(event: 'message', listener: (message: Message) => void): unknown
  /** True when `destination` is this node (delivered in-process, payload not serialised). */
  isLocal?(destination: string): boolean
  /** Where API objects report a throwing handler or an undecodable payload. */
  reportError?(err: unknown, topic: string): void
  /**
   * Optional fast path (the Platform has it): API objects attached directly register here instead
   * of listening to `message`, and local sends skip building message objects. Returns a detacher.
   */
  attachAPI?(api: APIEndpoint): () => void
  sendLocal?(api: APIEndpoint, topic: string, payload: unknown, options?: SendOptions): boolean
}

/** What a layer with the fast path calls on an API object. */
export interface APIEndpoint {
  readonly protocol: string
  /**
   * Set by the layer: true while this API may deliver its local sends itself (it is the only API
   * of its protocol, nobody listens to raw `message` events, the layer is open).
   */
  solo: boolean
  receive(message: Message): void
  dispatchLocal(topic: string, payload: unknown): void
  /** The payload's wire form, as a raw `message` listener sees it. @throws InvalidArgumentError */
  toWire(topic: string, payload: unknown): string | Uint8Array
}

export class Layer extends EventEmitter implements MessageLayer {
  protected readonly lower: MessageLayer
  private readonly forward = (message: Message): void => this.receive(message)

  constructor(lower: MessageLayer) {
    super()
    this.lower = lower
    lower.on('message', this.forward)
  }

  /** Passes an outgoing message down; override to change or hold it. */
  send(message: OutgoingMessage, options?: SendOptions): boolean | void {
    return this.lower.send(message, options)
  }

  /** Passes an incoming message up; override to change or drop it. */
  protected receive(message: Message): void {
    this.emit('message', message)
  }

  isLocal(destination: string): boolean {
    return this.lower.isLocal?.(destination) ?? destination === 'local'
  }

  reportError(err: unknown, topic: string): void {
    if (this.lower.reportError) this.lower.reportError(err, topic)
    else process.emitWarning(err instanceof Error ? err : new Error(String(err)))
  }

  /** Stops listening to the layer below. */
  detach(): void {
    this.lower.removeListener('message', this.forward)
  }
}
