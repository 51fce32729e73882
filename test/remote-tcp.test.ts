// Issue 3 acceptance: two platforms in two separate processes, over real TCP sockets on loopback.
import { remoteSuite } from './helpers/remote-suite.js'

remoteSuite('tcp', { TCP: '1', UDP: '0' }, { tcp: { host: '127.0.0.1' }, udp: false })
