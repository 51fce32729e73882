/** The platform's message shapes (defined one layer down, for the connection layer) and limits. */

export type { Scope, Message, OutgoingMessage, SendOptions } from '../connections/message-types.js'

/** Destination name of the local bus. */
export const LOCAL = 'local'

/** Longest topic and protocol names accepted, in characters. */
export const MAX_TOPIC_LENGTH = 1024
export const MAX_PROTOCOL_LENGTH = 64
