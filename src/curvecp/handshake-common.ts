/**
 * What both sides of the CurveCP handshake share: mm-platform's authentication extension
 * (`auth: 'signid'`), the 256-byte domain name form, and small nonce/key helpers.
 * See handshake.ts for the exchange as a whole.
 */
import type { IdentityLike } from '../identity/identity.js'
import { InvalidArgumentError } from '../errors.js'
import { DOMAIN_NAME_BYTES, EXTENSION_BYTES } from './constants.js'

/** `'signid'`: the Initiate carries our signed signId (see handshake.ts); `'none'`: plain CurveCP. */
export type AuthMode = 'signid' | 'none'

export const AUTH_VERSION = 1
/** version(1) + signId(32) + signature(64). */
export const AUTH_BYTES = 97
const AUTH_CONTEXT = Buffer.from('mm-platform/curvecp/initiate/v1', 'latin1')
export const ZERO_EXTENSION = Buffer.alloc(EXTENSION_BYTES)
export const ZERO_64 = Buffer.alloc(64)

/** The bytes the auth extension's signature covers: context || C' || S' || S. */
export function authMessage(clientShortTerm: Uint8Array, serverShortTerm: Uint8Array, serverLongTerm: Uint8Array): Buffer {
  return Buffer.concat([AUTH_CONTEXT, clientShortTerm, serverShortTerm, serverLongTerm])
}

/** A DNS name in CurveCP's 256-byte form (length-prefixed labels, zero padded). */
export function encodeDomainName(name: string): Buffer {
  const out = Buffer.alloc(DOMAIN_NAME_BYTES)
  let at = 0
  for (const label of name.split('.').filter((l) => l.length > 0)) {
    const bytes = Buffer.from(label, 'latin1')
    if (bytes.length > 63 || at + 1 + bytes.length >= DOMAIN_NAME_BYTES) throw new InvalidArgumentError(`domain name too long: ${name}`)
    out[at++] = bytes.length
    bytes.copy(out, at)
    at += bytes.length
  }
  return out
}

/** Pads to a positive multiple of 16 bytes (UDP packets carry such messages only). */
export function padTo16(m: Buffer): Buffer {
  const len = Math.max(16, Math.ceil(m.length / 16) * 16)
  if (len === m.length) return m
  const out = Buffer.alloc(len)
  m.copy(out)
  return out
}

/** beforenm with a peer's long-term key, cached by the identity when it can. */
export function longTermKey(identity: IdentityLike, theirs: Uint8Array): Buffer | null {
  return identity.longTermSharedKey ? identity.longTermSharedKey(theirs) : identity.boxBeforeNm(theirs)
}

/** prefix (16 bytes) || the 8 counter bytes as carried in a packet. */
export function shortTermNonceOf(prefix: Buffer, counterBytes: Buffer): Buffer {
  const n = Buffer.allocUnsafe(24)
  prefix.copy(n, 0, 0, 16)
  counterBytes.copy(n, 16, 0, 8)
  return n
}
