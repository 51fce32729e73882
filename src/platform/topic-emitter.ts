/**
 * Topic subscriptions with the original's (ak-eventemitter) wildcard rules, segments split by `.`:
 * - `a.b.c` matches only `a.b.c`;
 * - `*` in the middle matches exactly one segment: `self.*.ping` matches `self.x.ping`;
 * - `*` at the end matches one or more remaining segments: `self.*` matches `self.a` and
 *   `self.a.b`, not `self`.
 *
 * Exact topics are one Map lookup (the hot path); only wildcard patterns are scanned. A handler
 * that throws is reported through `onError` and the others still run.
 */
import { InvalidArgumentError, MMError } from '../errors.js'

/**
 * A subscriber: `(scopedTopic, sender, payload)`. `P` says what the payload is; the default,
 * `any`, keeps the untyped style (`payload.text`) compiling. Declare it per subscription:
 * `api.on<{ text: string }>('public.chat.message', (t, s, payload) => payload.text)`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
/** `id`: the message's id for remote messages (see Message.id); undefined for local ones. */
export type TopicHandler<P = any> = (topic: string, sender: string, payload: P, id?: string) => void

/** Default bound on subscriptions of one emitter. */
export const MAX_SUBSCRIPTIONS = 10_000

/** Most topics whose split segments one emitter memoises. */
const MAX_CACHED_TOPICS = 1024

interface WildcardEntry {
  pattern: string
  segments: string[]
  handler: TopicHandler
  once: boolean
}

interface ExactEntry {
  handler: TopicHandler
  once: boolean
}

export class TopicEmitter {
  private readonly exact = new Map<string, ExactEntry[]>()
  private wildcards: WildcardEntry[] = []
  private readonly segmentCache = new Map<string, readonly string[]>()
  private count = 0
  /** Bumped on every change of subscriptions: routes computed before it are stale. */
  version = 0
  private readonly maxSubscriptions: number
  private readonly onError: (err: unknown, topic: string) => void

  constructor(onError: (err: unknown, topic: string) => void, maxSubscriptions = MAX_SUBSCRIPTIONS) {
    this.onError = onError
    this.maxSubscriptions = maxSubscriptions
  }

  on(pattern: string, handler: TopicHandler, once = false): void {
    checkPattern(pattern)
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler must be a function')
    if (this.count >= this.maxSubscriptions) {
      throw new MMError('ERR_LIMIT_REACHED', `too many subscriptions (at most ${this.maxSubscriptions})`)
    }
    this.count++
    this.version++
    if (pattern.includes('*')) {
      this.wildcards = [...this.wildcards, { pattern, segments: pattern.split('.'), handler, once }]
    } else {
      // Copy on write, so a handler that subscribes or unsubscribes does not disturb a dispatch.
      this.exact.set(pattern, [...(this.exact.get(pattern) ?? []), { handler, once }])
    }
  }

  off(pattern: string, handler: TopicHandler): void {
    const entry = pattern.includes('*')
      ? this.wildcards.find((w) => w.pattern === pattern && w.handler === handler)
      : this.exact.get(pattern)?.find((e) => e.handler === handler)
    if (entry) this.remove(pattern, entry)
  }

  /** Removes this very entry (not just one with the same handler); false if already gone. */
  private remove(pattern: string, entry: ExactEntry | WildcardEntry): boolean {
    if (pattern.includes('*')) {
      const i = this.wildcards.indexOf(entry as WildcardEntry)
      if (i < 0) return false
      this.wildcards = this.wildcards.filter((_, j) => j !== i)
    } else {
      const list = this.exact.get(pattern)
      const i = list ? list.indexOf(entry) : -1
      if (!list || i < 0) return false
      const rest = list.filter((_, j) => j !== i)
      if (rest.length) this.exact.set(pattern, rest)
      else this.exact.delete(pattern)
    }
    this.count--
    this.version++
    return true
  }

  removeAll(): void {
    this.version++
    this.exact.clear()
    this.wildcards = []
    this.count = 0
  }

  get size(): number {
    return this.count
  }

  /** `topic.split('.')`, memoised (bounded): splitting every message was most of a wildcard dispatch. */
  private segmentsOf(topic: string): readonly string[] {
    let segments = this.segmentCache.get(topic)
    if (segments === undefined) {
      segments = topic.split('.')
      if (this.segmentCache.size >= MAX_CACHED_TOPICS) this.segmentCache.clear()
      this.segmentCache.set(topic, segments)
    }
    return segments
  }

  /**
   * The handlers that `topic` reaches now, in dispatch order, for callers that cache routes
   * (valid while `version` is unchanged). `once` is true if any of them is a once-subscription,
   * which a cached route must not be used for.
   */
  route(topic: string): { handlers: TopicHandler[]; once: boolean } {
    const handlers: TopicHandler[] = []
    let once = false
    for (const e of this.exact.get(topic) ?? []) {
      handlers.push(e.handler)
      once ||= e.once
    }
    if (this.wildcards.length) {
      const segments = this.segmentsOf(topic)
      for (const w of this.wildcards) {
        if (!matches(w.segments, segments)) continue
        handlers.push(w.handler)
        once ||= w.once
      }
    }
    return { handlers, once }
  }

  /** Calls every handler whose pattern matches `topic`; returns how many were called. */
  emit(topic: string, sender: string, payload: unknown, id?: string): number {
    let called = 0
    const list = this.exact.get(topic)
    if (list !== undefined) {
      for (const entry of list) {
        if (entry.once && !this.remove(topic, entry)) continue // already used by a nested dispatch
        called++
        try {
          if (id === undefined) entry.handler(topic, sender, payload)
          else entry.handler(topic, sender, payload, id)
        } catch (err) {
          this.onError(err, topic)
        }
      }
    }
    const wildcards = this.wildcards
    if (wildcards.length !== 0) {
      const segments = this.segmentsOf(topic)
      for (const w of wildcards) {
        if (!matches(w.segments, segments)) continue
        if (w.once && !this.remove(w.pattern, w)) continue
        called++
        try {
          if (id === undefined) w.handler(topic, sender, payload)
          else w.handler(topic, sender, payload, id)
        } catch (err) {
          this.onError(err, topic)
        }
      }
    }
    return called
  }
}

/** True when the pattern's segments match the topic's, by the rules at the top of this file. */
export function matches(pattern: readonly string[], topic: readonly string[]): boolean {
  const last = pattern.length - 1
  for (let i = 0; i <= last; i++) {
    const p = pattern[i]
    if (p === '*' && i === last) return topic.length > i
    if (i >= topic.length) return false
    if (p !== '*' && p !== topic[i]) return false
  }
  return topic.length === pattern.length
}

function checkPattern(pattern: unknown): asserts pattern is string {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new InvalidArgumentError('a topic must be a non-empty string')
}
