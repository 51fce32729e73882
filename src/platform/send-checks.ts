/**
 * The checks every send passes, local or remote, API or raw, before anything is delivered: so a
 * refused send delivered nothing (a corrected retry cannot duplicate it), and local and remote
 * sends refuse the same things. Also: delivery failures as DeliveryErrors.
 */
import { DeliveryError, InvalidArgumentError, MMError } from '../errors.js'
import { MAX_PROTOCOL_LENGTH, MAX_TOPIC_LENGTH, type OutgoingMessage, type SendOptions } from './message.js'

export function checkTopic(topic: unknown): void {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new InvalidArgumentError(`topic must be a non-empty string of at most ${MAX_TOPIC_LENGTH} characters`)
  }
}

/** The message checks of every send, local or remote. */
export function checkMessage(message: OutgoingMessage): void {
  if (!message || typeof message !== 'object') throw new InvalidArgumentError('a message must be an object')
  const { destination, topic, protocol, payload } = message
  if (typeof destination !== 'string' || destination.length === 0) throw new InvalidArgumentError("destination must be 'local' or a signId")
  checkTopic(topic)
  if (typeof protocol !== 'string' || protocol.length === 0 || protocol.length > MAX_PROTOCOL_LENGTH) {
    throw new InvalidArgumentError(`protocol must be a non-empty string of at most ${MAX_PROTOCOL_LENGTH} characters`)
  }
  if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) {
    throw new InvalidArgumentError('a payload given to platform.send() must be a string or bytes, its wire form (API objects encode for you)')
  }
}

/** The option checks of every send, local or remote, done before anything is delivered. */
export function checkOptions(options: SendOptions): void {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options must be an object')
  const { callback, expireAfter, realtime } = options
  if (callback !== undefined && typeof callback !== 'function') throw new InvalidArgumentError('options.callback must be a function')
  if (expireAfter !== undefined && (typeof expireAfter !== 'number' || !Number.isFinite(expireAfter) || expireAfter <= 0)) {
    throw new InvalidArgumentError('expireAfter must be a positive, finite number of milliseconds')
  }
  if (realtime !== undefined && typeof realtime !== 'boolean') throw new InvalidArgumentError('options.realtime must be a boolean')
  if (options.accepted !== undefined && typeof options.accepted !== 'function') throw new InvalidArgumentError('options.accepted must be a function')
}

/** A delivery failure as the DeliveryError the README promises (null stays null). */
export function asDeliveryError(err: Error | null): Error | null {
  if (err === null || err instanceof DeliveryError) return err
  const code = err instanceof MMError ? err.code : 'ERR_UNREACHABLE'
  return new DeliveryError(code, err.message, { cause: err })
}
