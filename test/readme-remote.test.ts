// The README's remote example runs as written (ESM, the package by name, real TCP on this host).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'
import { FIXTURES, tempDir } from './helpers/index.js'

test("the README's remote example delivers and reports delivery", async (t) => {
  const cwd = tempDir(t)
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(FIXTURES, 'readme-remote.mjs')], { cwd, timeout: 30_000 })
  const alice = /alice (\S+)/.exec(stdout)?.[1]
  assert.ok(alice, stdout)
  assert.match(stdout, new RegExp(`^${alice.replace(/[+/]/g, (c) => '\\' + c)} says hi Bob$`, 'm'))
  assert.match(stdout, /^delivered$/m)
})
