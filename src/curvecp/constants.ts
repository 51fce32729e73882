/**
 * CurveCP constants. Specification values follow curvecp.org (packets.html, nonces.html);
 * implementation values are ours and say so.
 */

// ---- Specification: packet identifiers (8 bytes each) ----
export const HELLO_MAGIC = Buffer.from('QvnQ5XlH', 'latin1')
export const COOKIE_MAGIC = Buffer.from('RL3aNMXK', 'latin1')
export const INITIATE_MAGIC = Buffer.from('QvnQ5XlI', 'latin1')
export const SERVER_MESSAGE_MAGIC = Buffer.from('RL3aNMXM', 'latin1')
export const CLIENT_MESSAGE_MAGIC = Buffer.from('QvnQ5XlM', 'latin1')

// ---- Specification: nonce prefixes ----
/** 16-byte prefixes of the 24-byte nonces that carry an 8-byte little-endian counter. */
export const NONCE_CLIENT_HELLO = Buffer.from('CurveCP-client-H', 'latin1')
export const NONCE_CLIENT_INITIATE = Buffer.from('CurveCP-client-I', 'latin1')
export const NONCE_CLIENT_MESSAGE = Buffer.from('CurveCP-client-M', 'latin1')
export const NONCE_SERVER_MESSAGE = Buffer.from('CurveCP-server-M', 'latin1')
/** 8-byte prefixes of the nonces that carry 16 random bytes. */
export const NONCE_COOKIE = Buffer.from('CurveCPK', 'latin1')
export const NONCE_VOUCH = Buffer.from('CurveCPV', 'latin1')
export const NONCE_MINUTE_KEY = Buffer.from('minute-k', 'latin1')

// ---- Specification: sizes in bytes ----
export const MAGIC_BYTES = 8
export const EXTENSION_BYTES = 16
export const KEY_BYTES = 32
export const SHORT_NONCE_BYTES = 8
export const LONG_NONCE_BYTES = 16
export const BOX_OVERHEAD_BYTES = 16
export const COOKIE_BYTES = 96
export const DOMAIN_NAME_BYTES = 256
export const HELLO_BYTES = 224
export const COOKIE_PACKET_BYTES = 200
/** Initiate without its message: 544 bytes. */
export const INITIATE_BASE_BYTES = 544
/** Client Message without its message: 96 bytes. */
export const CLIENT_MESSAGE_BASE_BYTES = 96
/** Server Message without its message: 64 bytes. */
export const SERVER_MESSAGE_BASE_BYTES = 64
/** Largest message in a Client/Server Message packet on UDP (multiple of 16). */
export const UDP_MAX_MESSAGE_BYTES = 1088
/** Largest message in an Initiate packet on UDP (544 + 640 = 1184, the client packet limit). */
export const UDP_MAX_INITIATE_MESSAGE_BYTES = 640

// ---- Implementation ----
/**
 * Largest message in one Message packet on a stream transport (TCP). The spec's 1088-byte limit
 * exists to fit a UDP datagram; TCP already segments, and one large box costs far less per byte
 * than many 1 KiB ones (secretbox: ~1.3 GB/s at 64 KiB, ~0.4 GB/s at 1 KiB here). 128 KiB so that
 * a frame with a 64 KiB payload fits whole in one packet (no copy to stitch it back together).
 */
export const STREAM_MAX_MESSAGE_BYTES = 131_072
/** Largest message in an Initiate on a stream transport. */
export const STREAM_MAX_INITIATE_MESSAGE_BYTES = 4_096
/** The minute key rotates this often; the previous one is still accepted (spec: "minute key"). */
export const MINUTE_KEY_ROTATION_MS = 60_000
/** Cookies accepted in the last two rotations are remembered to refuse a replayed Initiate. */
export const MAX_REMEMBERED_COOKIES = 100_000
