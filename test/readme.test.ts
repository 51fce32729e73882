/**
 * Every `js` and `ts` code block of README.md, extracted (never copied), type-checked and run in
 * both module systems against the built package, so the README and the code cannot drift apart.
 *
 * - A block is written in one module system; the other is made by swapping its `mm-platform`
 *   import or require lines, and (for CommonJS) wrapping a body with top-level `await` in an async
 *   function. `ts` blocks become `.mts` and `.cts`, `js` blocks `.mjs` and `.cjs`.
 * - The files go under `.tmp/` in the package, so `'mm-platform'` resolves to this package by its
 *   own name (Node's and TypeScript's self-reference), as it does for a user who installed it.
 * - Each is type-checked (`checkJs` for JavaScript) with strict settings, then run in a scratch
 *   working directory with its own data directory. It must exit by itself, with code 0 and nothing
 *   on stderr, and print what its `// ...` comments say it prints (the expectations below).
 * - `sh` blocks are command lines (`npm start`, `npm test`, the CLI), run by CI and the CLI tests,
 *   not here. A js/ts block that must not run is marked with `<!-- not run: why -->` right before
 *   its fence; the test then only type-checks it (there is none today).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import ts from 'typescript'
import { ROOT, runNode, tempDir } from './helpers/index.js'

interface Block {
  lang: 'js' | 'ts'
  code: string
  line: number
  heading: string
  run: boolean
}

/** The js/ts blocks of a Markdown text, with the heading above each and its not-run marker. */
export function extractBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  let heading = ''
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    if (line.startsWith('#')) heading = line.replace(/^#+\s*/, '')
    const open = /^```(\w+)\s*$/.exec(line)
    if (!open) continue
    const end = lines.indexOf('```', i + 1)
    assert.ok(end > i, `README.md line ${i + 1}: unclosed code block`)
    const lang = open[1]
    if (lang === 'js' || lang === 'ts') {
      let before = i - 1
      while (before >= 0 && (lines[before] as string).trim() === '') before--
      const run = !/^<!--\s*not run:/.test(lines[before] ?? '')
      blocks.push({ lang, code: lines.slice(i + 1, end).join('\n') + '\n', line: i + 1, heading, run })
    } else {
      assert.ok(lang === 'sh', `README.md line ${i + 1}: a \`${lang}\` block: this test knows js, ts and sh`)
    }
    i = end
  }
  return blocks
}

const IMPORT = /^import\s+(?:(\w+)\s*,?\s*)?(?:\{([^}]*)\})?\s*from\s+'mm-platform'\s*$/
const REQUIRE_DEFAULT = /^const\s+(\w+)\s*=\s*require\('mm-platform'\)\s*(\/\/.*)?$/
const REQUIRE_NAMED = /^const\s+\{([^}]*)\}\s*=\s*require\('mm-platform'\)\s*(\/\/.*)?$/

/** The block as an ES module and as a CommonJS module, in its own language. */
export function bothSystems(code: string, lang: 'js' | 'ts'): { esm: string; cjs: string } {
  let defaultName: string | undefined
  const named: string[] = []
  const body: string[] = []
  for (const line of code.split('\n')) {
    const imp = IMPORT.exec(line)
    const reqDefault = REQUIRE_DEFAULT.exec(line)
    const reqNamed = REQUIRE_NAMED.exec(line)
    if (imp) {
      defaultName = imp[1] ?? defaultName
      if (imp[2]) named.push(...imp[2].split(',').map((n) => n.trim()).filter(Boolean))
    } else if (reqDefault) {
      defaultName = reqDefault[1]
    } else if (reqNamed) {
      named.push(...(reqNamed[1] as string).split(',').map((n) => n.trim()).filter(Boolean))
    } else {
      assert.doesNotMatch(line, /'mm-platform'/, `an import of mm-platform this test cannot convert: ${line}`)
      body.push(line)
    }
  }
  const text = body.join('\n')
  const list = named.length ? `{ ${named.join(', ')} }` : undefined
  const esmHead = defaultName !== undefined || list ? `import ${[defaultName, list].filter(Boolean).join(', ')} from 'mm-platform'` : ''
  const cjsHead =
    lang === 'ts'
      ? [defaultName !== undefined ? `import ${defaultName} = require('mm-platform')` : '', list ? `import ${list} from 'mm-platform'` : '']
      : [defaultName !== undefined ? `const ${defaultName} = require('mm-platform')` : '', list ? `const ${list} = require('mm-platform')` : '']
  // CommonJS has no top-level await: the body runs in an async function.
  const cjsBody = /(^|[^\w.])await\s/m.test(text)
    ? `void (async () => {\n${text}\n})().catch((err${lang === 'ts' ? ': unknown' : ''}) => {\n  console.error(err)\n  process.exitCode = 1\n})\n`
    : text
  return { esm: [esmHead, text].join('\n'), cjs: [...cjsHead, cjsBody].join('\n') }
}

/** The lines each block prints, from its `// ...` comments where they give output. */
const EXPECTED: Record<string, (stdout: string) => void> = {
  TypeScript: (out) => assert.deepEqual(lines(out), ['self.chat.message: HELLO', 'true']),
  'Local messages#1': (out) => assert.deepEqual(lines(out), ['self.test.testMessage', 'local', "{ test: 'Test String' }"]),
  'Local messages#2': (out) => assert.deepEqual(lines(out), ['test local self ms "test"', 'test local self ms {"n":1}']),
  'Local messages#3': (out) => assert.deepEqual(lines(out), ['self.hello hi']),
  'Remote messages': (out) => assert.deepEqual(lines(out), ['Alice says hi Bob', 'delivered']),
  // Marked not run (it would join the public BitTorrent DHT and multicast on the LAN): type-checked only.
  'Finding peers: mDNS, Kademlia and the Mainline DHT': () => assert.fail('a block marked not run was run')
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.length > 0)
}

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const blocks = extractBlocks(README)

test('README: every js/ts block is known to this test, and the runnable ones have expectations', () => {
  assert.ok(blocks.length >= 5, `found ${blocks.length} blocks`)
  const keys = keyed(blocks).map(([key]) => key)
  assert.deepEqual(keys.filter((k) => !(k in EXPECTED)), [], 'blocks without an expectation here')
  assert.deepEqual(Object.keys(EXPECTED).filter((k) => !keys.includes(k)), [], 'expectations for blocks that are gone')
})

function keyed(list: Block[]): Array<[string, Block]> {
  const count = new Map<string, number>()
  return list.map((b) => {
    const n = (count.get(b.heading) ?? 0) + 1
    count.set(b.heading, n)
    const several = list.filter((o) => o.heading === b.heading).length > 1
    return [several ? `${b.heading}#${n}` : b.heading, b]
  })
}

test('README: every js/ts block type-checks and runs, as ESM and as CommonJS', async (t) => {
  const work = path.join(ROOT, '.tmp', `readme-${process.pid}`)
  fs.rmSync(work, { recursive: true, force: true })
  fs.mkdirSync(work, { recursive: true })
  t.after(() => fs.rmSync(work, { recursive: true, force: true }))
  const files: Array<{ key: string; file: string; run: boolean }> = []
  for (const [i, [key, block]] of keyed(blocks).entries()) {
    const { esm, cjs } = bothSystems(block.code, block.lang)
    const ext = block.lang === 'ts' ? ['mts', 'cts'] : ['mjs', 'cjs']
    for (const [system, text] of [
      [ext[0], esm],
      [ext[1], cjs]
    ] as const) {
      const file = path.join(work, `block${i + 1}.${system}`)
      fs.writeFileSync(file, `// README.md line ${block.line} (${key})\n${text}`)
      files.push({ key, file, run: block.run })
    }
  }
  // Type-check them all at once, strictly, as a user's project would.
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    allowJs: true,
    checkJs: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    esModuleInterop: true,
    skipLibCheck: true,
    types: ['node']
  }
  const program = ts.createProgram(
    files.map((f) => f.file),
    options
  )
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file === undefined || d.file.fileName.startsWith(work))
  const report = ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => work, getNewLine: () => '\n' })
  assert.equal(diagnostics.length, 0, `README blocks do not type-check:\n${report}`)

  // Run them: TypeScript is compiled the way tsc would for each module system.
  for (const { key, file, run } of files) {
    if (!run) continue
    let target = file
    if (file.endsWith('ts')) {
      const out = ts.transpileModule(fs.readFileSync(file, 'utf8'), { fileName: file, compilerOptions: { ...options, noEmit: false } })
      target = file.replace(/\.mts$/, '.mjs').replace(/\.cts$/, '.cjs')
      fs.writeFileSync(target, out.outputText)
    }
    const cwd = tempDir(t, 'mm-platform-readme-')
    const r = await runNode(target, { cwd, env: { MM_PLATFORM_DATA: path.join(cwd, 'data') }, timeoutMs: 30_000 })
    const where = `${key} (${path.basename(target)})`
    assert.equal(r.timedOut, false, `${where} did not exit by itself; stdout: ${r.stdout}`)
    assert.equal(r.code, 0, `${where}: ${r.stderr}`)
    assert.equal(r.stderr, '', `${where} wrote to stderr`)
    ;(EXPECTED[key] as (stdout: string) => void)(r.stdout)
  }
})
