/**
 * Every error mm-platform raises is an {@link MMError}: a stable `name`, a stable `code` to
 * branch on, and the underlying `cause` when there is one.
 */
export type ErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_NOT_READY'
  | 'ERR_CLOSED'
  | 'ERR_STORAGE_NOT_FOUND'
  | 'ERR_STORAGE_LOCKED'
  | 'ERR_STORAGE_CORRUPT'
  | 'ERR_STORAGE_LOST'
  | 'ERR_STORAGE_UNAVAILABLE'
  | 'ERR_STORAGE_BAD_KEY'
  | 'ERR_IDENTITY_CORRUPT'
  | 'ERR_IDENTITY_MISSING'
  | 'ERR_PASSPHRASE_REQUIRED'
  | 'ERR_BAD_PASSPHRASE'
  | 'ERR_HANDLER_THREW'
  | 'ERR_DECODE'
  | 'ERR_TIMEOUT'
  | 'ERR_NOT_FOUND'
  | 'ERR_UNREACHABLE'
  | 'ERR_EXPIRED'
  | 'ERR_QUEUE_FULL'
  | 'ERR_CANCELLED'
  | 'ERR_PROTOCOL'
  | 'ERR_HANDSHAKE'
  | 'ERR_FRAME_TOO_LARGE'
  | 'ERR_LIMIT_REACHED'
  | 'ERR_TRANSPORT'

/** Base class: `code` is stable across releases, `message` is for people. */
export class MMError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** The local caller passed something we cannot use. */
export class InvalidArgumentError extends MMError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_ARGUMENT', message, options)
  }
}

/** The storage backend failed: missing key, locked, corrupt or unreachable. */
export class StorageError extends MMError {}

/** The node's identity cannot be loaded as stored (never silently replaced). */
export class IdentityError extends MMError {}

/** The platform is not started yet, or already closed. */
export class StateError extends MMError {}

/** A subscriber's handler threw; carries the topic and the thrown value as `cause`. */
export class HandlerError extends MMError {
  readonly topic: string
  constructor(topic: string, cause: unknown) {
    super('ERR_HANDLER_THREW', `handler for '${topic}' threw: ${describe(cause)}`, { cause })
    this.topic = topic
  }
}

/** A message could not be delivered (no route, timeout, expiry, full queue). */
export class DeliveryError extends MMError {}

/** Bytes from the network or from storage that do not decode. */
export class DecodeError extends MMError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DECODE', message, options)
  }
}

/** The remote side broke the protocol (handshake, frames); closes that session only. */
export class ProtocolError extends MMError {}

/** A socket failed: connect refused or timed out, listen failed, connection lost. */
export class TransportError extends MMError {}

/** A lookup (directory, nodeInfo) found nothing in time. */
export class LookupError extends MMError {}

/** Short text for an unknown thrown value. */
export function describe(value: unknown): string {
  if (value instanceof Error) return value.message
  try {
    return String(value)
  } catch {
    return 'unprintable value'
  }
}
