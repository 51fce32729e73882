/**
 * Our nodeInfo as a Pkarr record (pkarr.org): a DNS packet (RFC 1035 wire format) stored as the
 * value `v` of a BEP 44 mutable item whose key `k` is the node's signId key, signed by it, with
 * `seq` = the nodeInfo's timestamp in microseconds (Pkarr's convention), so that it rises with
 * every change. Pure: bytes in, bytes out, no clock, no socket.
 *
 * Records, names relative to the origin `<z32(signId)>` (Pkarr normalises names the same way):
 * - `_mm.<origin> TXT`: the signed nodeInfo less its signId (which is the key) as JSON, split in
 *   strings of at most 255 bytes: `{"boxId","connectionInfo","timestamp","signature"}`;
 * - `<origin> A`: each IPv4 address of the connectionInfo, for any Pkarr client.
 */
import dns from 'dns-packet'
import z32 from 'z32'
import { isIP } from 'node:net'
import { formatId } from '../../identity/ids.js'
import type { NodeInfo } from '../../platform/node-info.js'
import { joinTxt, splitTxt } from '../shared/txt.js'
import { MAX_NODE_INFO_BYTES } from '../shared/remote-node-info.js'

/** BEP 44: `v` must be at most 1000 bytes. */
export const MAX_VALUE_BYTES = 1000
export const RECORD_TTL_S = 7200
export const TXT_LABEL = '_mm'

/** The bytes a BEP 44 signature covers for an item without salt: bencoded `seq` and `v`. */
export function bep44SigningBytes(seq: number, v: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`3:seqi${seq}e1:v${v.length}:`), v])
}

/** The DNS packet (`v`) for a signed nodeInfo. Its length may exceed MAX_VALUE_BYTES: check. */
export function encodeRecord(nodeInfo: NodeInfo, signKey: Uint8Array): Buffer {
  const origin = z32.encode(signKey)
  const body = { boxId: nodeInfo.boxId, connectionInfo: nodeInfo.connectionInfo, timestamp: nodeInfo.timestamp, signature: nodeInfo.signature }
  const answers: dns.Answer[] = [{ name: `${TXT_LABEL}.${origin}`, type: 'TXT', ttl: RECORD_TTL_S, data: splitTxt(JSON.stringify(body)) }]
  const addresses = new Set<string>()
  for (const e of nodeInfo.connectionInfo) {
    const address = (e.transportInfo as { address?: unknown }).address
    if (typeof address === 'string' && isIP(address) === 4) addresses.add(address)
  }
  for (const address of addresses) answers.push({ name: origin, type: 'A', ttl: RECORD_TTL_S, data: address })
  return dns.encode({ type: 'response', id: 0, flags: dns.AUTHORITATIVE_ANSWER, answers })
}

/**
 * The candidate nodeInfo in a record fetched for `signKey`, still to be checked (signature,
 * freshness) by a NodeInfoGate; or the reason the packet is unusable.
 */
export function decodeRecord(v: Uint8Array, signKey: Uint8Array): { candidate: Record<string, unknown> } | { reason: string } {
  if (v.length > MAX_VALUE_BYTES) return { reason: 'value larger than 1000 bytes' }
  let packet: dns.Packet
  try {
    packet = dns.decode(Buffer.from(v))
  } catch {
    return { reason: 'not a DNS packet' }
  }
  const name = `${TXT_LABEL}.${z32.encode(signKey)}`
  const txt = (packet.answers ?? []).find((a) => a.type === 'TXT' && typeof a.name === 'string' && a.name.toLowerCase() === name)
  if (!txt) return { reason: `no ${name} TXT record` }
  const text = joinTxt((txt as { data?: unknown }).data, MAX_NODE_INFO_BYTES)
  if (text === undefined) return { reason: 'TXT record too large' }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return { reason: 'TXT record is not JSON' }
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { reason: 'TXT record is not a JSON object' }
  return { candidate: { ...(body as Record<string, unknown>), signId: formatId(signKey) } }
}
