/**
 * Which session a peer uses when a new one comes up while another is open. A pure function: no
 * channel, no clock, no I/O, so both sides of a crossing dial can be checked to agree.
 *
 * - No session yet: the new one becomes active.
 * - Crossing dials (each side dialled the other): both sides keep the one dialled by the node
 *   with the smaller signId, so both keep the same one and close the other.
 * - Both dialled by the same node: only that node chooses (it may have dialled several
 *   addresses at once, and the others may complete here in any order). The dialler keeps the
 *   newest and closes the one before; the other side uses the newest and keeps the rest as spares,
 *   falling back to them as they close, so the two sides never close each other's choice.
 *   Bounded: beyond `maxChannels` open sessions the oldest goes.
 */

/** What the choice needs to know of one session. */
export interface SessionEnds {
  /** True when we dialled it. */
  initiator: boolean
  /** The peer's signId. */
  remoteSignId: string
}

export interface SessionChoiceInput {
  /** Our signId. */
  us: string
  /** The peer's active session, if any. */
  current: SessionEnds | undefined
  /** The session that just came up. */
  fresh: SessionEnds
  /** Open sessions with the peer, the fresh one included. */
  open: number
  /** Most open sessions kept per peer. */
  maxChannels: number
}

/**
 * - `activate`: the first session: it becomes active (the peer is connected).
 * - `replace`: the fresh one becomes active; close the current one.
 * - `refuse`: keep the current one; close the fresh one.
 * - `activate-keep-spare`: the fresh one becomes active; the current one stays open as a spare.
 * - `activate-drop-oldest`: as `activate-keep-spare`, and close the oldest open session (too many).
 */
export type SessionChoice = 'activate' | 'replace' | 'refuse' | 'activate-keep-spare' | 'activate-drop-oldest'

/** The signId of the node that dialled a session. */
export function dialledBy(us: string, session: SessionEnds): string {
  return session.initiator ? us : session.remoteSignId
}

/** Decides what a new session does to a peer's sessions (see the module header). */
export function chooseSession(input: SessionChoiceInput): SessionChoice {
  const { us, current, fresh } = input
  if (!current) return 'activate'
  const a = dialledBy(us, current)
  const b = dialledBy(us, fresh)
  if (a !== b) return b < a ? 'replace' : 'refuse'
  if (fresh.initiator) return 'replace'
  return input.open > input.maxChannels ? 'activate-drop-oldest' : 'activate-keep-spare'
}
