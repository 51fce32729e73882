/**
 * The services as users load them from the built package: `mm-platform/services/{mdns,kademlia,mainline}`
 * with require() and with import, each usable (Mainline loads its ESM-only DHT library from CJS too).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ROOT, runNode, tempDir } from './helpers/index.js'

const body = (load: string): string => `
${load}
const platform = new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false })
;(async () => {
  await platform.ready()
  const dht = new Kademlia({ platform })
  const mainline = new Mainline({ platform, bootstrap: ['127.0.0.1:9'], host: '127.0.0.1' })
  const { port } = await mainline.address()
  console.log(JSON.stringify({ mdns: typeof MulticastDNS, kad: dht.contacts().length, port: port > 0 }))
  await mainline.close(); await dht.close(); await platform.close()
})()
`

test('require() and import of each service entry point from the built package', async (t) => {
  const dir = tempDir(t)
  const cjs = path.join(dir, 'use.cjs')
  fs.writeFileSync(cjs, body(`const Platform = require('mm-platform'); const { MemoryStore } = Platform
const { MulticastDNS } = require('mm-platform/services/mdns')
const { Kademlia } = require('mm-platform/services/kademlia')
const { Mainline } = require('mm-platform/services/mainline')`))
  const esm = path.join(dir, 'use.mjs')
  fs.writeFileSync(esm, body(`import Platform, { MemoryStore } from 'mm-platform'
import MulticastDNS from 'mm-platform/services/mdns'
import { Kademlia } from 'mm-platform/services/kademlia'
import { Mainline } from 'mm-platform/services/mainline'`))
  // Resolve 'mm-platform' to this package: link it into the temp dir's node_modules.
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'mm-platform'))
  for (const file of [cjs, esm]) {
    const r = await runNode(file, { cwd: dir, timeoutMs: 30_000 })
    assert.equal(r.code, 0, `${path.basename(file)}: ${r.stderr}`)
    assert.deepEqual(JSON.parse(r.stdout), { mdns: 'function', kad: 0, port: true })
  }
})
