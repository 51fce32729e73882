// Builds dist/esm (tsc: JS + declarations) and dist/cjs (esbuild per file, same layout), then
// the CommonJS entry that makes `require('mm-platform')` the Platform class itself.
import { execFileSync } from 'node:child_process'
import { rmSync, mkdirSync, writeFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'

rmSync('dist', { recursive: true, force: true })
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' })

const files = []
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p)
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) files.push(p)
  }
}
walk('src')
await build({ entryPoints: files, outdir: 'dist/cjs', outbase: 'src', format: 'cjs', platform: 'node', target: 'node20', sourcemap: true, logLevel: 'warning' })
mkdirSync('dist/cjs', { recursive: true })
writeFileSync('dist/cjs/package.json', JSON.stringify({ type: 'commonjs' }) + '\n')
writeFileSync(
  'dist/cjs/entry.cjs',
  `'use strict'
// require('mm-platform') is the Platform class, with .default and every named export on it.
const lib = require('./index.js')
const Platform = lib.default
for (const key of Object.keys(lib)) if (!(key in Platform)) Platform[key] = lib[key]
Object.defineProperty(Platform, '__esModule', { value: true })
module.exports = Platform
`
)
writeFileSync(
  'dist/cjs/index.d.ts',
  `// Types for require('mm-platform'): the Platform class, with the named exports beside it.
import Platform = require('./types.cjs')
export = Platform
`
)
writeFileSync(
  'dist/cjs/types.d.cts',
  `import type * as lib from '../esm/index.js' with { 'resolution-mode': 'import' }
declare const Platform: typeof lib.Platform & Omit<typeof lib, 'default'> & { default: typeof lib.Platform }
type Platform = lib.Platform
export = Platform
`
)
console.log('built dist/esm and dist/cjs')
