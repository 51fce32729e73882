/**
 * The CurveCP handshake (curvecp.org/packets.html), both sides, as explicit state machines.
 *
 *   client                                   server
 *   new ──Hello(C', Box[0](C'→S))──────────▶  (no state kept)
 *   hello-sent ◀──Cookie(Box[S',K](S→C'))──   K = secretbox[C',s'](minute key)
 *   initiate-sent ──Initiate(C',K,Box[C,V,N,M](C'→S'))─▶  opens K, marks it used, checks V, auth
 *   established ◀──Message(Box[M](S'→C'))──   established
 *
 * mm-platform's authentication extension (`auth: 'signid'`): the Initiate's message begins with
 * version(1) || signId(32) || Ed25519 signature(64) over
 * "mm-platform/curvecp/initiate/v1" || C' || S' || S. The server checks the signature and that
 * ed2curve(signId) is the client's long-term key C (already proven by the vouch), so a node cannot
 * claim another's signId. With `auth: 'none'` the handshake is plain CurveCP (for DJB's tools).
 *
 * The code lives in one file per concern; this module gathers what other layers import:
 * - client-handshake.ts: {@link ClientHandshake};
 * - server-handshake.ts: {@link ServerHandshake} and what an accepted Initiate yields;
 * - minute-keys.ts: the minute keys (rotated on a timer) and the cookies already used;
 * - handshake-common.ts: the auth extension's constants, domain names, small helpers.
 */
export { AUTH_BYTES, AUTH_VERSION, encodeDomainName, type AuthMode } from './handshake-common.js'
export { ClientHandshake, type ClientHandshakeOptions, type ClientState } from './client-handshake.js'
export { ServerHandshake, type AcceptedInitiate, type ServerDropReason, type ServerHandshakeOptions } from './server-handshake.js'
