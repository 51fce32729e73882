/**
 * An API object: the friendly face of one protocol. `messaging` (protocol `ms`, JSON payloads)
 * and `torrenting` (protocol `bt`, binary payloads) are two of them; add your own with
 * `new API({platform, protocol, encode, decode})`.
 *
 * Handlers get `(topic, sender, payload)` where topic is scoped: `self.`, `friends.` or `public.`
 * followed by the topic as sent. Local messages keep the payload object as given (no
 * serialisation); remote ones carry the encoded form on the wire and are decoded here. Local and
 * remote sends check the payload alike, before anything is delivered (see `check`).
 *
 * Payload types are declared per call: `api.on<Chat>(...)`, `api.send<Chat>(...)`; without them
 * payloads are `any`, as in the untyped seed examples.
 */
import { DecodeError, InvalidArgumentError } from '../errors.js'
import type { APIEndpoint, MessageLayer } from './layer.js'
import { MAX_TOPIC_LENGTH, type Message, type SendOptions } from './message.js'
import { TopicEmitter, type TopicHandler } from './topic-emitter.js'

/** Most scoped topic names one API object memoises per scope. */
const MAX_MEMOISED_TOPICS = 1024

export interface APIOptions {
  /** The layer below: the Platform, or a {@link Layer} chained over it. */
  platform: MessageLayer
  /** Protocol code carried by every message of this API, e.g. `'ms'`. */
  protocol: string
  /** Payload to wire form, for remote destinations. Default: JSON text. */
  // Method syntax on purpose: a codec written for its own types (`(b: Uint8Array) => ...`) is accepted.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  encode?(payload: any): string | Uint8Array
  /** Wire form back to a payload, for messages from remote nodes. Default: JSON.parse. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  decode?(raw: any): unknown
  /**
   * Throws (InvalidArgumentError) for a payload this protocol cannot carry; run on every send,
   * local or remote, before delivery. Default: the built-in codecs' cheap checks, else `encode`.
   */
  check?(payload: unknown): void
  /** Where a throwing handler or an undecodable payload is reported. */
  onError?(err: unknown, topic: string): void
}

export class API implements APIEndpoint {
  readonly protocol: string
  /** @internal See APIEndpoint.solo. */
  solo = false
  private readonly layer: MessageLayer
  private readonly encode: (payload: unknown) => string | Uint8Array
  private readonly decode: (raw: unknown) => unknown
  private readonly check: (payload: unknown) => void
  private readonly topics: TopicEmitter
  private readonly report: (err: unknown, topic: string) => void
  private readonly listener = (message: Message): void => this.receive(message)
  private attached = true
  private readonly scopedTopics = new Map<string, Map<string, string>>()
  /** Detaches from a layer with the fast path; undefined when listening to `message`. */
  private readonly unattach: (() => void) | undefined
  /** Local routes: topic -> scoped topic and the handlers it reaches, valid for one version. */
  private readonly localRoutes = new Map<string, { version: number; scoped: string; handlers: TopicHandler[]; once: boolean }>()

  constructor(options: APIOptions) {
    if (!options || typeof options.platform?.send !== 'function' || typeof options.platform.on !== 'function') {
      throw new InvalidArgumentError('API needs a platform (or a Layer) with send() and on()')
    }
    if (typeof options.protocol !== 'string' || options.protocol.length === 0) {
      throw new InvalidArgumentError('API needs a non-empty protocol code')
    }
    this.layer = options.platform
    this.protocol = options.protocol
    this.encode = options.encode ?? jsonEncode
    this.decode = options.decode ?? jsonDecode
    const encode = this.encode
    this.check =
      options.check ??
      (options.encode === undefined || options.encode === binaryCodec.encode
        ? options.encode === undefined
          ? jsonCheck
          : binaryCodec.check
        : (payload: unknown) => void encode(payload))
    this.report =
      options.onError ??
      this.layer.reportError?.bind(this.layer) ??
      ((err: unknown) => process.emitWarning(err instanceof Error ? err : new Error(String(err))))
    this.topics = new TopicEmitter(this.report)
    if (this.layer.attachAPI && this.layer.sendLocal) this.unattach = this.layer.attachAPI(this)
    else this.layer.on('message', this.listener)
  }

  /**
   * Subscribes to a scoped topic pattern (`self.test.*`, `public.chat.message`, ...). `P` declares
   * the payload type (unchecked: remote payloads are whatever the sender encoded).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on<P = any>(pattern: string, handler: TopicHandler<P>): this {
    this.topics.on(pattern, handler as TopicHandler)
    return this
  }

  /** Like {@link on}, for the first matching message only. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  once<P = any>(pattern: string, handler: TopicHandler<P>): this {
    this.topics.on(pattern, handler as TopicHandler, true)
    return this
  }

  /** Removes a subscription made with the same pattern and handler. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off<P = any>(pattern: string, handler: TopicHandler<P>): this {
    this.topics.off(pattern, handler as TopicHandler)
    return this
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  removeListener<P = any>(pattern: string, handler: TopicHandler<P>): this {
    return this.off(pattern, handler)
  }

  /** Number of subscriptions. */
  get subscriptions(): number {
    return this.topics.size
  }

  /**
   * Sends `payload` under `topic` to `destination`: `'local'`, our own signId, or a peer's signId.
   * @throws InvalidArgumentError for a bad topic or destination, or a payload that cannot be encoded.
   */
  send<P = unknown>(topic: string, destination: string, payload: P, options?: SendOptions): boolean {
    if (this.solo && destination === 'local' && typeof topic === 'string' && topic.length !== 0 && topic.length <= MAX_TOPIC_LENGTH && options === undefined) {
      this.check(payload)
      this.dispatchLocal(topic, payload)
      return true
    }
    if (this.unattach && (destination === 'local' || (this.layer.isLocal ? this.layer.isLocal(destination) : false))) {
      this.check(payload)
      return (this.layer.sendLocal as NonNullable<MessageLayer['sendLocal']>)(this, topic, payload, options)
    }
    // Through a Layer, or to a remote node: the wire form, checked and decoded like any other.
    return this.layer.send({ destination, topic, protocol: this.protocol, payload: this.toWire(topic, payload) }, options) !== false
  }

  /** @internal The payload's wire form. @throws InvalidArgumentError when it cannot be encoded. */
  toWire(topic: string, payload: unknown): string | Uint8Array {
    try {
      return this.encode(payload)
    } catch (err) {
      throw new InvalidArgumentError(`payload for '${topic}' cannot be encoded for protocol '${this.protocol}'`, { cause: err })
    }
  }

  /** Stops receiving from the layer below and drops every subscription. */
  detach(): void {
    if (!this.attached) return
    this.attached = false
    if (this.unattach) this.unattach()
    else this.layer.removeListener('message', this.listener)
    this.topics.removeAll()
    this.localRoutes.clear()
  }

  /**
   * `scope + '.' + topic`, memoised: a freshly concatenated string has to be flattened and hashed
   * on every Map lookup in the topic emitter, which was most of the local dispatch time; the
   * memoised one keeps its hash. Bounded: cleared when full.
   */
  private scopedTopic(scope: string, topic: string): string {
    let byTopic = this.scopedTopics.get(scope)
    if (byTopic === undefined) {
      byTopic = new Map()
      this.scopedTopics.set(scope, byTopic)
    }
    let scoped = byTopic.get(topic)
    if (scoped === undefined) {
      scoped = scope + '.' + topic
      if (byTopic.size >= MAX_MEMOISED_TOPICS) byTopic.clear()
      byTopic.set(topic, scoped)
    }
    return scoped
  }

  /**
   * Local fast path (called by the layer): delivers `self.<topic>` from 'local' through a cached
   * route, so a message costs one Map lookup and the handler calls.
   * @internal
   */
  dispatchLocal(topic: string, payload: unknown): void {
    let route = this.localRoutes.get(topic)
    if (route === undefined || route.version !== this.topics.version) {
      const scoped = 'self.' + topic
      route = { version: this.topics.version, scoped, ...this.topics.route(scoped) }
      if (this.localRoutes.size >= MAX_MEMOISED_TOPICS) this.localRoutes.clear()
      this.localRoutes.set(topic, route)
    }
    if (route.once) {
      this.topics.emit(route.scoped, 'local', payload)
      return
    }
    const handlers = route.handlers
    const scoped = route.scoped
    for (let i = 0; i < handlers.length; i++) {
      try {
        ;(handlers[i] as TopicHandler)(scoped, 'local', payload)
      } catch (err) {
        this.report(err, scoped)
      }
    }
  }

  /** @internal Called by the layer for every message of any protocol. */
  receive(message: Message): void {
    if (message.protocol !== this.protocol) return
    const topic = this.scopedTopic(message.scope, message.topic)
    // Messages reach here in wire form (remote ones, raw platform.send(), sends through a Layer);
    // local API sends on the platform's fast path go to dispatchLocal with the value itself.
    let payload: unknown
    try {
      payload = this.decode(message.payload)
    } catch (err) {
      this.report(new DecodeError(`dropped a '${this.protocol}' message on '${topic}' from ${message.sender}: payload does not decode`, { cause: err }), topic)
      return
    }
    this.topics.emit(topic, message.sender, payload, message.id)
  }
}

function jsonEncode(payload: unknown): string {
  const text = JSON.stringify(payload)
  if (text === undefined) throw new InvalidArgumentError('payload is not JSON-serialisable')
  return text
}

/**
 * The cheap part of JSON's rules, for local sends that are not serialised: values JSON cannot
 * carry at all are refused (a nested one is only caught by a remote send's encoding).
 */
function jsonCheck(payload: unknown): void {
  const type = typeof payload
  if (type === 'undefined' || type === 'function' || type === 'symbol' || type === 'bigint') {
    throw new InvalidArgumentError(`an 'ms' payload must be a JSON value, not ${type === 'undefined' ? 'undefined' : 'a ' + type}`)
  }
}

function jsonDecode(raw: unknown): unknown {
  if (typeof raw === 'string') return JSON.parse(raw)
  if (raw instanceof Uint8Array) return JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'))
  throw new DecodeError('an ms payload must be JSON text')
}

/** Codec of the `bt` protocol: payloads are bytes (a string is taken as UTF-8). */
export const binaryCodec = {
  encode(payload: unknown): Uint8Array {
    if (payload instanceof Uint8Array) return payload
    if (typeof payload === 'string') return Buffer.from(payload, 'utf8')
    throw new InvalidArgumentError('a bt payload must be a Buffer, a Uint8Array or a string')
  },
  check(payload: unknown): void {
    if (!(payload instanceof Uint8Array) && typeof payload !== 'string') {
      throw new InvalidArgumentError('a bt payload must be a Buffer, a Uint8Array or a string')
    }
  },
  decode(raw: unknown): Buffer {
    if (Buffer.isBuffer(raw)) return raw
    if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
    if (typeof raw === 'string') return Buffer.from(raw, 'utf8')
    throw new DecodeError('a bt payload must be bytes')
  }
}
