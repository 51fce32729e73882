/**
 * require('mm-platform') as the built package ships it: the package's code comes from one
 * CommonJS bundle (one file per module cost a fresh process ~18 ms of CPU more to load), the
 * services' code and packages load only on their own require(), and the entry and the services
 * share one copy of every class (instanceof holds across them).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ROOT, runNode, tempDir } from './helpers/index.js'

test('require(): the package loads from one bundle; services load on their own require and share its classes', async (t) => {
  const dir = tempDir(t)
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'mm-platform'))
  const file = path.join(dir, 'use.cjs')
  fs.writeFileSync(
    file,
    `const path = require('path')
const dist = ${JSON.stringify(path.join(fs.realpathSync(ROOT), 'dist'))} + path.sep
const ours = () => Object.keys(require.cache).filter((f) => f.startsWith(dist)).map((f) => path.relative(dist, f)).sort()
const loaded = (pkg) => Object.keys(require.cache).some((f) => f.includes(path.sep + pkg + path.sep))
const Platform = require('mm-platform')
const atStart = { files: ours(), mdnsPackage: loaded('multicast-dns'), kbucket: loaded('k-bucket') }
const { Kademlia } = require('mm-platform/services/kademlia')
let shared = false
try {
  new Kademlia({ platform: {} })
} catch (err) {
  shared = err instanceof Platform.InvalidArgumentError && err instanceof Platform.MMError
}
console.log(JSON.stringify({ atStart, shared, afterKademlia: { files: ours(), kbucket: loaded('k-bucket') } }))
`
  )
  const r = await runNode(file, { cwd: dir, timeoutMs: 30_000 })
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as {
    atStart: { files: string[]; mdnsPackage: boolean; kbucket: boolean }
    shared: boolean
    afterKademlia: { files: string[]; kbucket: boolean }
  }
  assert.deepEqual(out.atStart, { files: [path.join('cjs', 'bundle.js'), path.join('cjs', 'entry.cjs')], mdnsPackage: false, kbucket: false })
  assert.equal(out.shared, true, "an error a service throws is an instance of the entry's error classes")
  assert.deepEqual(out.afterKademlia, {
    files: [path.join('cjs', 'bundle.js'), path.join('cjs', 'entry.cjs'), path.join('cjs', 'services', 'kademlia', 'index.js')],
    kbucket: true
  })
})
