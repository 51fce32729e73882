// Builds dist/esm (tsc: JS + declarations), dist/bundle (what `import` of the package loads: one
// ESM file per entry point plus shared chunks, esbuild), dist/cjs (what `require` loads: one
// CommonJS bundle, small files at the entry points that take their part of it, and the
// declarations in the layout of dist/esm), then the CommonJS entry that makes
// `require('mm-platform')` the Platform class itself, and its declarations (entry.d.cts) that give
// CommonJS TypeScript projects that value and every type the ESM entry exports. Run by
// `npm run build`, `prepare` (clone, git URL, npm pack) and `pretest`.
import { execFileSync } from 'node:child_process'
import { rmSync, mkdirSync, writeFileSync, readdirSync, statSync, copyFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { build } from 'esbuild'
import ts from 'typescript'

rmSync('dist', { recursive: true, force: true })
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' })

const walk = (dir, keep, out = []) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p, keep, out)
    else if (keep(p)) out.push(p)
  }
  return out
}

// Both bundles without their whitespace, and with esbuild's shorter syntax: importing the ESM
// bundle (250 KB as written out) cost a fresh process 18.3 ms of CPU, now 17.0 (paired runs).
// Names stay as written (no renaming): error names (`new.target.name`), stack traces and
// profiles keep them; the source maps give files and lines (node --enable-source-maps).
// Renaming too (with keepNames, which error names need) was no faster to import.
const MINIFY = { minifyWhitespace: true, minifySyntax: true }

// The package's ESM entry points, bundled: loading some 75 small modules (resolve, open, compile,
// link each) cost about 25 ms of a fresh process's start, one file per entry does not. The entries
// share chunks, so `mm-platform` and `mm-platform/services/*` in one process share one copy of
// every class (instanceof holds across them); dynamic imports stay separate chunks, loaded only
// when used (the LevelDB check, classic-level). The per-file dist/esm stays for the declarations
// and for the repo's own benches, which import modules inside it.
await build({
  entryPoints: {
    index: 'src/index.ts',
    'services/mdns': 'src/services/mdns/index.ts',
    'services/kademlia': 'src/services/kademlia/index.ts',
    'services/mainline': 'src/services/mainline/index.ts'
  },
  outdir: 'dist/bundle',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  ...MINIFY,
  logLevel: 'warning'
})

// The CommonJS build, bundled too: require() has no chunks, and one file per module (about 75)
// cost some 18 ms of CPU more than the ESM bundle to load here. So one bundle, dist/cjs/bundle.js,
// holds the entry and the services; each service is wrapped by esbuild to run on its first
// require() only (its own packages load then), and shares the one copy of every class with the
// entry (instanceof holds across them, as in the ESM bundle). The files at the entry points
// (index.js, services/*/index.js) hand out their part of it. Dynamic imports inside (the UDP
// stream, the LevelDB check) stay lazy; packages stay external (bittorrent-dht, ESM-only, is
// still loaded by import()). import.meta.url is the file's URL in ESM; here __filename
// (createRequire, the one use, takes a path as well as a URL).
const SERVICES = ['mdns', 'kademlia', 'mainline']
await build({
  stdin: {
    contents:
      "import * as main from './index.js'\nexport { main }\n" +
      SERVICES.map((s) => `export const ${s} = () => require('./services/${s}/index.js')\n`).join(''),
    resolveDir: 'src',
    sourcefile: 'cjs-bundle.ts',
    loader: 'ts'
  },
  outfile: 'dist/cjs/bundle.js',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  ...MINIFY,
  define: { 'import.meta.url': '__filename' },
  logLevel: 'warning'
})
mkdirSync('dist/cjs', { recursive: true })
writeFileSync('dist/cjs/package.json', JSON.stringify({ type: 'commonjs' }) + '\n')
writeFileSync('dist/cjs/index.js', `'use strict'\n// The package's entry module (types: index.d.ts); the code is in the bundle.\nmodule.exports = require('./bundle.js').main\n`)
for (const s of SERVICES) {
  mkdirSync(`dist/cjs/services/${s}`, { recursive: true })
  writeFileSync(`dist/cjs/services/${s}/index.js`, `'use strict'\n// require('mm-platform/services/${s}'): its part of the bundle, evaluated on the first require.\nmodule.exports = require('../../bundle.js').${s}()\n`)
}

// The same declarations beside the CommonJS files: inside dist/cjs (type commonjs) TypeScript reads
// them as describing CommonJS modules, which is what they are there.
for (const file of walk('dist/esm', (p) => p.endsWith('.d.ts'))) {
  const target = join('dist/cjs', relative('dist/esm', file))
  mkdirSync(dirname(target), { recursive: true })
  copyFileSync(file, target)
}

writeFileSync(
  'dist/cjs/entry.cjs',
  `'use strict'
// require('mm-platform') is the Platform class, with .default and every named export on it.
const lib = require('./bundle.js').main
const Platform = lib.default
for (const key of Object.keys(lib)) if (!(key in Platform)) Platform[key] = lib[key]
Object.defineProperty(Platform, '__esModule', { value: true })
module.exports = Platform
`
)

// entry.d.cts: \`export =\` of a class merged with a namespace that re-exports every export of the
// entry, values and types alike (an \`export =\` of a plain value would lose the types). The names
// come from the compiler, so a new export cannot be forgotten here.
const program = ts.createProgram(['dist/cjs/index.d.ts'], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'], skipLibCheck: true })
const checker = program.getTypeChecker()
const entry = program.getSourceFile('dist/cjs/index.d.ts')
const exported = checker.getExportsOfModule(checker.getSymbolAtLocation(entry)).filter((s) => s.getName() !== 'default')
const names = exported.map((s) => s.getName())
if (!names.includes('Platform') || !names.includes('Message')) throw new Error(`unexpected exports of the entry: ${names.join(', ')}`)
/** `export import` for what carries a value; a type alias (with its type parameters) for type-only exports. */
const member = (symbol) => {
  const name = symbol.getName()
  const spec = symbol.declarations?.find((d) => ts.isExportSpecifier(d))
  const typeOnly = spec !== undefined && (spec.isTypeOnly || spec.parent.parent.isTypeOnly)
  if (!typeOnly) return `  export import ${name} = lib.${name}`
  const target = checker.getAliasedSymbol(symbol)
  const decl = target.declarations?.find((d) => ts.isInterfaceDeclaration(d) || ts.isTypeAliasDeclaration(d) || ts.isClassDeclaration(d))
  const params = decl?.typeParameters ?? []
  if (params.length === 0) return `  export type ${name} = lib.${name}`
  const text = params.map((p) => p.getText(decl.getSourceFile())).join(', ')
  return `  export type ${name}<${text}> = lib.${name}<${params.map((p) => p.name.text).join(', ')}>`
}
const members = exported.sort((a, b) => (a.getName() < b.getName() ? -1 : 1)).map(member)
writeFileSync(
  'dist/cjs/entry.d.cts',
  `// Types for require('mm-platform'): the Platform class, with every named export of the package
// (classes, functions, interfaces and types) on it, and .default for the class again.
import lib = require('./index.js')

declare class Platform<D extends lib.DirectoryLike = lib.Directory> extends lib.Platform<D> {
  /** The Platform class again, as \`require('mm-platform').default\`. */
  static readonly default: typeof lib.Platform
}

declare namespace Platform {
${members.join('\n')}
}

export = Platform
`
)
console.log('built dist/esm and dist/cjs')
