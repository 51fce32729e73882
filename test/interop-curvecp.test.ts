/**
 * Interop with D. J. Bernstein's CurveCP tools (Debian package nacl-tools), on 127.0.0.1:
 * - our UDP client against `curvecpserver sname keydir ip port ext curvecpmessage cat` (echo);
 * - `curvecpclient -c keydir sname pk ip port ext curvecpmessage -c prog` against our server;
 * - server name and extension as the tools use them (a mismatch gets no session);
 * - our message stream against `curvecpmessage` through its message pipes (fds 8 and 9), with
 *   one-byte blocks sent out of order.
 * A few MiB each way, every byte checked. Under CI a missing tool fails the test; locally it
 * skips (run scripts/install-debian-deps.sh).
 *
 * Note on the echo: the reference's curvecpmessage processes no incoming message (not even an
 * acknowledgement) while its child has not taken the bytes already received; with `cat` as the
 * child, a sender that runs far ahead of the echo fills cat's pipes and its own send buffer and
 * the reference stalls for good. Our client application therefore keeps at most ECHO_AHEAD bytes
 * not yet echoed, as any client of a `cat` server over curvecpmessage must.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { randomBytes } from '../src/crypto/sodium.js'
import type { UdpChannel } from '../src/connections/udp-channel.js'
import { UdpChannels as UdpTransport } from '../src/connections/udp-channels.js'
import { MessageStream } from '../src/curvecp/message-stream.js'
import { tempDir, memoryIdentity, waitUntil, delay } from './helpers/index.js'
import { exited, freeUdpPort, identityFromKeyDir, makeKeyDir, requireTools, spawnTool, streamPattern } from './helpers/udp-curvecp-tools.js'
import { seededRandom } from './helpers/udp-virtual.js'

const MIB = 1024 * 1024
const BYTES = 4 * MIB
const ECHO_AHEAD = 96 * 1024
const SERVER_NAME = 'interop.mm-platform.test'

function hexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64')
}

function rate(bytes: number, ms: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB in ${(ms / 1000).toFixed(2)} s (${(bytes / 1e6 / (ms / 1000)).toFixed(2)} MB/s)`
}

/** Sends `data` on `channel` keeping at most `ahead` bytes not yet echoed; resolves with the echo. */
function echoThrough(channel: UdpChannel, data: Buffer, ahead: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let received = 0
    let sent = 0
    let ended = false
    const pump = (): void => {
      while (sent < data.length && sent - received < ahead) {
        const n = Math.min(16 * 1024, data.length - sent, ahead - (sent - received))
        const ok = channel.write(data.subarray(sent, sent + n))
        sent += n
        if (!ok) return
      }
      if (sent === data.length && !ended) {
        ended = true
        channel.end()
      }
    }
    channel.on('data', (d: Buffer) => {
      chunks.push(Buffer.from(d))
      received += d.length
      pump()
    })
    channel.on('drain', pump)
    channel.once('close', (err?: Error) => (err ? reject(err) : resolve(Buffer.concat(chunks))))
    channel.resume()
    pump()
  })
}

test('our UDP client against curvecpserver + curvecpmessage cat: 4 MiB each way, every byte', { timeout: 120_000 }, async (t) => {
  if (!requireTools(t)) return
  const dir = tempDir(t)
  const server = makeKeyDir(dir, 'server')
  const ext = randomBytes(16)
  const port = await freeUdpPort()
  const status = path.join(dir, 'curvecpmessage.status')
  const srv = spawnTool(t, 'curvecpserver', [SERVER_NAME, server.dir, '127.0.0.1', String(port), ext.toString('hex'), 'sh', '-c', `curvecpmessage cat; echo $? > ${status}`])
  const transport = new UdpTransport({ identity: memoryIdentity(), auth: 'none', timings: { helloRetryMs: 200 } })
  t.after(() => transport.close())

  const data = streamPattern(BYTES, 1)
  const started = performance.now()
  const channel = transport.dial('127.0.0.1', port, {
    remoteBoxId: hexToBase64(server.publicKeyHex),
    auth: 'none',
    domainName: SERVER_NAME,
    serverExtension: ext
  })
  let secureAt = 0
  channel.once('secure', () => (secureAt = performance.now() - started))
  const echo = await echoThrough(channel, data, ECHO_AHEAD)
  const ms = performance.now() - started
  assert.ok(secureAt > 0, 'the handshake completed')
  assert.equal(echo.length, data.length, 'echo length')
  assert.ok(echo.equals(data), 'every echoed byte equals what we sent')
  // The reference ends by itself once both EOFs are acknowledged: exit status 0.
  await waitUntil(() => fs.existsSync(status) && fs.readFileSync(status, 'utf8').trim() !== '', 10_000, 'curvecpmessage to exit')
  assert.equal(fs.readFileSync(status, 'utf8').trim(), '0', `curvecpmessage exit status; stderr: ${srv.stderrText()}`)
  t.diagnostic(`handshake ${secureAt.toFixed(1)} ms; client -> curvecpserver ${rate(data.length, ms)}; echo back ${rate(echo.length, ms)}`)
  t.diagnostic(`stream: ${JSON.stringify({ ...channel.stream.stats, dropped: undefined })}, rtt ${channel.rttMs.toFixed(2)} ms`)
})

/** A UDP server of ours under a key directory the tools can read, and a client key directory. */
async function ourServer(t: TestContext) {
  const dir = tempDir(t)
  const server = makeKeyDir(dir, 'server')
  const client = makeKeyDir(dir, 'client')
  const ext = randomBytes(16)
  const transport = new UdpTransport({ identity: identityFromKeyDir(server.dir), auth: 'none', domainName: SERVER_NAME, serverExtension: ext })
  t.after(() => transport.close())
  await transport.listen({ host: '127.0.0.1' })
  return { dir, server, client, ext, transport }
}

test('curvecpclient + curvecpmessage -c against our UDP server: 4 MiB each way, every byte', { timeout: 120_000 }, async (t) => {
  if (!requireTools(t)) return
  const { dir, server, client, ext, transport } = await ourServer(t)

  const data = streamPattern(BYTES, 2)
  const input = path.join(dir, 'in.bin')
  const output = path.join(dir, 'out.bin')
  fs.writeFileSync(input, data)
  const received: Buffer[] = []
  let accepted: UdpChannel | undefined
  let serverClosed: ((err?: Error) => void) | undefined
  const serverDone = new Promise<Error | undefined>((resolve) => (serverClosed = resolve))
  transport.onChannel((channel) => {
    accepted = channel
    // Echo everything back; the client's EOF ends our side too once the echo is out.
    channel.on('data', (d: Buffer) => {
      received.push(Buffer.from(d))
      channel.write(d)
    })
    channel.once('close', (err?: Error) => serverClosed?.(err))
    channel.resume()
  })

  // The client program: writes in.bin to fd 7 then closes it; reads fd 6 into out.bin.
  const prog = `cat '${input}' >&7 6<&- & exec 7>&-; cat <&6 > '${output}'; wait`
  const started = performance.now()
  const cli = spawnTool(t, 'curvecpclient', ['-c', client.dir, SERVER_NAME, server.publicKeyHex, '127.0.0.1', String(transport.port), ext.toString('hex'), 'curvecpmessage', '-c', 'sh', '-c', prog])
  const code = await exited(cli, 110_000)
  const ms = performance.now() - started
  assert.equal(code, 0, `curvecpclient exit status; stderr: ${cli.stderrText()}`)
  assert.equal(await serverDone, undefined, 'our server channel closed cleanly')
  assert.ok(accepted, 'our server accepted a channel')
  assert.equal(Buffer.from(accepted.remoteBoxId ?? '', 'base64').toString('hex'), client.publicKeyHex, "the client's long-term key is the one curvecpprintkey shows")
  const fromClient = Buffer.concat(received)
  assert.equal(fromClient.length, data.length)
  assert.ok(fromClient.equals(data), 'our server got every byte the client sent')
  const echoed = fs.readFileSync(output)
  assert.equal(echoed.length, data.length)
  assert.ok(echoed.equals(data), 'the client got every byte back')
  t.diagnostic(`curvecpclient -> our server ${rate(fromClient.length, ms)}; our server -> curvecpclient ${rate(echoed.length, ms)}`)
  t.diagnostic(`server stream: ${JSON.stringify({ ...accepted.stream.stats, dropped: undefined })}`)
})

const SESSIONS_IN_A_ROW = 5

test(`${SESSIONS_IN_A_ROW} sessions in a row of our UDP client on one long-running curvecpserver (64-bit nonces)`, { timeout: 120_000 }, async (t) => {
  // curvecpserver starts a freed client slot at a random 64-bit server nonce: from the second
  // session on, the counters are almost surely above 2^53 and must be read and compared exactly.
  if (!requireTools(t)) return
  const dir = tempDir(t)
  const server = makeKeyDir(dir, 'server')
  const ext = randomBytes(16)
  const port = await freeUdpPort()
  const status = path.join(dir, 'statuses')
  const srv = spawnTool(t, 'curvecpserver', [SERVER_NAME, server.dir, '127.0.0.1', String(port), ext.toString('hex'), 'sh', '-c', `curvecpmessage cat; echo $? >> ${status}`])
  const transport = new UdpTransport({ identity: memoryIdentity(), auth: 'none', timings: { helloRetryMs: 200 } })
  t.after(() => transport.close())
  const statuses = (): string[] => (fs.existsSync(status) ? fs.readFileSync(status, 'utf8').split('\n').filter((l) => l.trim() !== '') : [])
  for (let i = 0; i < SESSIONS_IN_A_ROW; i++) {
    const data = streamPattern(64 * 1024 + i, 10 + i)
    const channel = transport.dial('127.0.0.1', port, { remoteBoxId: hexToBase64(server.publicKeyHex), auth: 'none', domainName: SERVER_NAME, serverExtension: ext })
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    const echo = await Promise.race([
      echoThrough(channel, data, ECHO_AHEAD),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`session ${i + 1} hung: ${JSON.stringify({ ...channel.stream.stats, dropped: undefined })}`)), 15_000)
      })
    ]).finally(() => clearTimeout(timer))
    assert.ok(echo.equals(data), `session ${i + 1}: every byte echoed`)
    await waitUntil(() => statuses().length === i + 1, 15_000, `curvecpmessage of session ${i + 1} to exit`)
    assert.equal(statuses()[i], '0', `session ${i + 1}: curvecpmessage exit status; stderr: ${srv.stderrText()}`)
    t.diagnostic(`session ${i + 1}: 64 KiB echoed in ${(performance.now() - started).toFixed(0)} ms`)
  }
})

test(`${SESSIONS_IN_A_ROW} sessions in a row of curvecpclient on one long-running server of ours`, { timeout: 120_000 }, async (t) => {
  if (!requireTools(t)) return
  const { dir, server, client, ext, transport } = await ourServer(t)
  let accepted = 0
  transport.onChannel((channel) => {
    accepted++
    channel.on('data', (d: Buffer) => channel.write(d))
    channel.resume()
  })
  for (let i = 0; i < SESSIONS_IN_A_ROW; i++) {
    const data = streamPattern(64 * 1024 + i, 20 + i)
    const input = path.join(dir, `in${i}.bin`)
    const output = path.join(dir, `out${i}.bin`)
    fs.writeFileSync(input, data)
    const prog = `cat '${input}' >&7 6<&- & exec 7>&-; cat <&6 > '${output}'; wait`
    const cli = spawnTool(t, 'curvecpclient', ['-c', client.dir, SERVER_NAME, server.publicKeyHex, '127.0.0.1', String(transport.port), ext.toString('hex'), 'curvecpmessage', '-c', 'sh', '-c', prog])
    const code = await exited(cli, 20_000)
    assert.equal(code, 0, `session ${i + 1}: curvecpclient exit status; stderr: ${cli.stderrText()}`)
    assert.ok(fs.readFileSync(output).equals(data), `session ${i + 1}: the client got every byte back`)
    assert.equal(accepted, i + 1, `session ${i + 1} is a session of its own`)
  }
})

test('server name and extension as the tools use them: a mismatch gets no session', { timeout: 60_000 }, async (t) => {
  if (!requireTools(t)) return
  const dir = tempDir(t)
  const server = makeKeyDir(dir, 'server')
  const ext = randomBytes(16)
  const port = await freeUdpPort()
  spawnTool(t, 'curvecpserver', [SERVER_NAME, server.dir, '127.0.0.1', String(port), ext.toString('hex'), 'curvecpmessage', 'cat'])
  const transport = new UdpTransport({ identity: memoryIdentity(), auth: 'none', timings: { helloRetryMs: 100, handshakeTimeoutMs: 1500 } })
  t.after(() => transport.close())
  const attempt = async (domainName: string, serverExtension: Buffer): Promise<string | undefined> => {
    const channel = transport.dial('127.0.0.1', port, { remoteBoxId: hexToBase64(server.publicKeyHex), auth: 'none', domainName, serverExtension })
    channel.write(Buffer.from('ping'))
    return new Promise((resolve) => {
      channel.once('secure', () => {
        resolve('secure')
        channel.close()
      })
      channel.once('close', (err?: Error & { code?: string }) => resolve(err?.code))
    })
  }
  assert.equal(await attempt('wrong.name.test', ext), 'ERR_HANDSHAKE', 'curvecpserver drops an Initiate naming another server')
  assert.equal(await attempt(SERVER_NAME, randomBytes(16)), 'ERR_HANDSHAKE', 'curvecpserver ignores a Hello for another extension')
  assert.equal(await attempt(SERVER_NAME, ext), 'secure', 'the right name and extension get a session')

  // And the other way: our server requires its name from curvecpclient.
  const oursIdentity = memoryIdentity()
  const ours = new UdpTransport({ identity: oursIdentity, auth: 'none', domainName: SERVER_NAME, serverExtension: ext })
  t.after(() => ours.close())
  await ours.listen({ host: '127.0.0.1' })
  let accepted = 0
  ours.onChannel(() => accepted++)
  const pk = Buffer.from(oursIdentity.getBoxId(), 'base64').toString('hex')
  const cli = spawnTool(t, 'curvecpclient', ['other.name.test', pk, '127.0.0.1', String(ours.port), ext.toString('hex'), 'curvecpmessage', '-c', 'sh', '-c', 'echo hi >&7; cat <&6'])
  await waitUntil(() => ours.endpoint.drops['wrong-name'] > 0, 10_000, 'our server to drop the Initiate naming another server')
  assert.equal(accepted, 0)
  assert.equal(ours.endpoint.sessionCount, 0)
  cli.kill('SIGKILL')
})

test('our message stream against curvecpmessage through fds 8 and 9: one-byte blocks, out of order', { timeout: 60_000 }, async (t) => {
  if (!requireTools(t)) return
  const dir = tempDir(t)
  const status = path.join(dir, 'status')
  // curvecpmessage (server mode) runs cat on its stdin/stdout: an echo of the stream.
  const child = spawn('sh', ['-c', `curvecpmessage cat; echo $? > ${status}`], { stdio: ['ignore', 'ignore', 'pipe', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const pipes = child.stdio as unknown as Array<NodeJS.ReadWriteStream | null>
  const toTool = pipes[8] as NodeJS.WritableStream
  const fromTool = pipes[9] as NodeJS.ReadableStream
  toTool.on('error', () => {})
  fromTool.on('error', () => {})

  // Our outgoing messages leave in a shuffled order (windows of up to 8): the reference and we
  // must both cope; our one-byte blocks are the case the original implementation died on.
  const random = seededRandom(99)
  let pending: Buffer[] = []
  const flush = (): void => {
    const batch = pending
    pending = []
    for (let i = batch.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[batch[i], batch[j]] = [batch[j] as Buffer, batch[i] as Buffer]
    }
    for (const m of batch) toTool.write(Buffer.concat([Buffer.from([m.length / 16]), m]))
  }
  const received: Buffer[] = []
  let ended = false
  let finished = false
  const stream = new MessageStream({
    maxBlockBytes: 1,
    transmit: (m) => {
      pending.push(m)
      if (pending.length >= 8) flush()
      else setImmediate(flush)
    },
    onData: (d) => received.push(Buffer.from(d)),
    onEnd: () => (ended = true),
    onFinish: () => (finished = true)
  })
  t.after(() => stream.destroy())
  let buf = Buffer.alloc(0)
  fromTool.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    while (buf.length > 0 && buf.length >= 1 + 16 * (buf[0] as number)) {
      const n = 16 * (buf[0] as number)
      stream.receive(Buffer.from(buf.subarray(1, 1 + n)))
      buf = buf.subarray(1 + n)
    }
  })
  const data = streamPattern(3000, 3)
  const started = performance.now()
  stream.write(data)
  stream.end()
  await waitUntil(() => ended && finished, 50_000, 'both EOFs')
  const echo = Buffer.concat(received)
  assert.ok(echo.equals(data), 'every byte came back, in order')
  assert.ok(stream.stats.blocksSent >= 3000, 'sent as one-byte blocks')
  await waitUntil(() => fs.existsSync(status) && fs.readFileSync(status, 'utf8').trim() !== '', 10_000, 'curvecpmessage to exit')
  assert.equal(fs.readFileSync(status, 'utf8').trim(), '0')
  t.diagnostic(`3000 one-byte blocks shuffled, echoed in ${(performance.now() - started).toFixed(0)} ms; ${JSON.stringify({ ...stream.stats, dropped: undefined })}`)
  await delay(10)
})
