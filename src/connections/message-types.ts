/**
 * The shapes of messages, shared from the connection layer up: the connection layer carries and
 * delivers them, the platform and its API objects build and receive them (and re-export these
 * types from platform/message.ts).
 */

/** Who may have sent a message: our own devices, our friends, or anyone. */
export type Scope = 'self' | 'friends' | 'public'

/** What `platform.on('message')` listeners receive. */
export interface Message {
  /** `'local'` for messages from this node, else the sender's signId (base64). */
  sender: string
  protocol: string
  topic: string
  scope: Scope
  payload: unknown
  /**
   * The message's id, `<stream>-<seq>` (16 + decimal digits) for remote messages: unique across
   * the sender's restarts for non-realtime messages (from its outbox), per process for realtime
   * ones. Absent for local messages.
   */
  id?: string
}

/** What `platform.send()` takes. */
export interface OutgoingMessage {
  /** `'local'`, our own signId, or a remote node's signId. */
  destination: string
  topic: string
  protocol: string
  payload: unknown
}

export interface SendOptions {
  /** Best effort, now or never: no outbox, fails fast when the peer is not reachable now. */
  realtime?: boolean
  /** Milliseconds after which an undelivered message is dropped (default 7 days). */
  expireAfter?: number
  /** Called once with null on delivery, or with the error that stopped it. */
  callback?: (err: Error | null) => void
  /**
   * Non-realtime remote sends: called once the message is stored in the outbox (it now survives
   * a crash), with its id: the id of the `delivered` / `failed` events and of `outbox.cancel()`.
   */
  accepted?: (id: string) => void
}
