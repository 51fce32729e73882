// Issue 4 acceptance: the same two-process tests as over TCP, with UDP alone (CurveCP as specified,
// with the curvecpmessage stream), on loopback.
import { remoteSuite } from './helpers/remote-suite.js'

remoteSuite('udp', { TCP: '0', UDP: '1' }, { tcp: false, udp: { host: '127.0.0.1' } })
