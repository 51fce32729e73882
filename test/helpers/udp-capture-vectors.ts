/**
 * Captures reference messages from DJB's `curvecpmessage` (Debian package nacl-tools) through its
 * message pipes (fd 8 in, fd 9 out) and writes test/vectors/curvecp-message-curvecpmessage.json.
 * Run once by hand: `node --import tsx test/helpers/udp-capture-vectors.ts`. The vectors only hold
 * what the reference wrote and how it answered what we wrote; the codec test replays them.
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { decodeMessage, encodeMessage, EOF_SUCCESS } from '../../src/curvecp/message-layer.js'
import { ROOT } from './index.js'

interface Vector {
  description: string
  direction: 'from-curvecpmessage' | 'to-curvecpmessage'
  hex: string
  id: number
  acknowledging: number
  ranges: Array<[number, number]>
  eof: number
  offset: number
  dataHex: string
}

function vector(description: string, direction: Vector['direction'], m: Buffer): Vector {
  const d = decodeMessage(m)
  return {
    description,
    direction,
    hex: m.toString('hex'),
    id: d.id,
    acknowledging: d.acknowledging,
    ranges: d.ranges.map((r) => [r.start, r.end]),
    eof: d.eof,
    offset: d.offset,
    dataHex: Buffer.from(d.data).toString('hex')
  }
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

/** Runs curvecpmessage with `args`; `script` gets each message it writes and a way to answer. */
function run(args: string[], script: (m: Buffer, send: (m: Buffer) => void, done: () => void) => void, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('curvecpmessage', args, { stdio: ['ignore', 'ignore', 'inherit', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'pipe', 'pipe'] })
    const stdio = child.stdio as unknown as Array<NodeJS.ReadWriteStream | null>
    const to = stdio[8] as NodeJS.WritableStream
    const from = stdio[9] as NodeJS.ReadableStream
    to.on('error', () => {})
    from.on('error', () => {})
    let buf = Buffer.alloc(0)
    let finished = false
    const done = (): void => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      child.kill('SIGKILL')
      resolve()
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error('curvecpmessage capture timed out'))
    }, timeoutMs)
    from.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length > 0 && buf.length >= 1 + 16 * (buf[0] as number)) {
        const n = 16 * (buf[0] as number)
        const m = Buffer.from(buf.subarray(1, 1 + n))
        buf = buf.subarray(1 + n)
        if (!finished) script(m, (out) => to.write(Buffer.concat([Buffer.from([out.length / 16]), out])), done)
      }
    })
    child.on('error', reject)
  })
}

async function main(): Promise<void> {
  const vectors: Vector[] = []
  // Client mode: a ping first, then 512-byte blocks until a message arrives, then 1024.
  // Client mode: a ping block at once; data blocks only once a message has arrived.
  let phase = 'ping'
  let retransmitted = false
  let sawFull = false
  let lastBlock: Buffer | undefined
  await run(['-c', 'sh', '-c', 'cat /tmp/mm-vec-client >&7; exec 7>&-; cat <&6 >/dev/null'], (m, send, done) => {
    const d = decodeMessage(m)
    if (phase === 'ping' && d.id !== 0 && d.data.length === 0 && d.eof === 0) {
      vectors.push(vector('curvecpmessage -c: the first message, a ping block (no data, offset 0) sent at once', 'from-curvecpmessage', m))
      const first = encodeMessage({ id: 9, acknowledging: d.id, ranges: [], eof: 0, offset: 0, data: Buffer.from('A') })
      vectors.push(vector('to curvecpmessage: block id 9, one data byte at 0, acknowledging the ping by id', 'to-curvecpmessage', first))
      send(first)
      phase = 'ack9'
      return
    }
    if (phase === 'ack9' && d.id === 0 && d.acknowledging === 9) {
      vectors.push(vector('curvecpmessage: pure acknowledgement of message 9, range 1 = [0,1)', 'from-curvecpmessage', m))
      // An out-of-order block: bytes [5, 8) with EOF; the reference keeps it and acknowledges [0,1).
      const ooo = encodeMessage({ id: 10, acknowledging: 0, ranges: [], eof: EOF_SUCCESS, offset: 5, data: Buffer.from('xyz') })
      vectors.push(vector('to curvecpmessage: block id 10, bytes [5,8) and success EOF at 8', 'to-curvecpmessage', ooo))
      send(ooo)
      phase = 'ack10'
      return
    }
    if (phase === 'ack10' && d.id === 0 && d.acknowledging === 10) {
      vectors.push(vector('curvecpmessage: pure acknowledgement of message 10 (still only [0,1): no selective ranges)', 'from-curvecpmessage', m))
      const fill = encodeMessage({ id: 11, acknowledging: 0, ranges: [], eof: 0, offset: 1, data: Buffer.from('BCDE') })
      vectors.push(vector('to curvecpmessage: block id 11, bytes [1,5) filling the hole', 'to-curvecpmessage', fill))
      send(fill)
      phase = 'ack11'
      return
    }
    if (phase === 'ack11' && d.id === 0 && d.acknowledging === 11) {
      vectors.push(vector('curvecpmessage: pure acknowledgement of message 11: range 1 = [0,9), all 8 bytes plus the EOF', 'from-curvecpmessage', m))
      phase = 'data'
    }
    if (d.id !== 0 && d.data.length === 1024 && d.offset === 0 && !sawFull) {
      sawFull = true
      vectors.push(vector('curvecpmessage -c: a 1024-byte block once a message arrived (1088-byte message)', 'from-curvecpmessage', m))
      return
    }
    if (phase !== 'sack' && d.id !== 0 && d.eof === EOF_SUCCESS) lastBlock = m
    if (phase === 'data' && lastBlock) {
      const m2 = lastBlock
      const d2 = decodeMessage(m2)
      vectors.push(vector('curvecpmessage -c: the last block, 952 bytes at 2048, with the success EOF flag', 'from-curvecpmessage', m2))
      // Selective acknowledgement: [0,1024) and [2048,3000); only [1024,2048) must come again.
      const sack = encodeMessage({ id: 0, acknowledging: d2.id, ranges: [{ start: 0, end: 1024 }, { start: 2048, end: 3000 }], eof: 0, offset: 0, data: Buffer.alloc(0) })
      vectors.push(vector('to curvecpmessage: pure acknowledgement of [0,1024) and, as range 2, [2048,3000)', 'to-curvecpmessage', sack))
      send(sack)
      phase = 'sack'
      return
    }
    if (phase === 'sack' && d.id !== 0 && d.data.length > 0) {
      if (d.offset !== 1024 || d.data.length !== 1024) throw new Error(`after the selective ack the reference sent [${d.offset}, ${d.offset + d.data.length}) again`)
      if (!retransmitted) vectors.push(vector('curvecpmessage: after that, it sends only the unacknowledged block [1024,2048) again', 'from-curvecpmessage', m))
      retransmitted = true
      const all = encodeMessage({ id: 0, acknowledging: d.id, ranges: [{ start: 0, end: 3001 }], eof: 0, offset: 0, data: Buffer.alloc(0) })
      vectors.push(vector('to curvecpmessage: pure acknowledgement of all 3000 bytes and the EOF, range 1 = [0,3001)', 'to-curvecpmessage', all))
      send(all)
      done()
    }
  }, 30_000)
  const file = path.join(ROOT, 'test', 'vectors', 'curvecp-message-curvecpmessage.json')
  const doc = {
    source: 'DJB curvecpmessage (Debian package nacl-tools 20110221), captured through its fds 8 and 9 by test/helpers/udp-capture-vectors.ts',
    layout: 'curvecp.org/messages.html; little-endian',
    clientStreamPattern: 'byte i = (i * 31 + 7) & 0xff, 3000 bytes',
    vectors
  }
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n')
  console.log(`wrote ${vectors.length} vectors to ${file}`)
}

fs.writeFileSync('/tmp/mm-vec-client', pattern(3000, 7))
await main()
