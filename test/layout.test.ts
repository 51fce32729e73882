/**
 * The shape of src/ that DESIGN.md promises: layers whose imports point only down, no import
 * cycle, and no file over about 400 lines unless its header says why. Imports are read from the
 * sources as text (type-only imports count: they couple files just the same).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src')

/** Bottom up. Files directly under src/ other than index.ts (errors, logger) sit below all. */
const LAYERS = ['crypto', 'storage', 'identity', 'curvecp', 'transports', 'connections', 'platform', 'services', 'cli']
const MAX_LINES = 400
/** Slack for "about 400": a file this close needs no reason. */
const MAX_LINES_SLACK = 10

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sourceFiles(p))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p)
  }
  return out
}

/** The layer rank of a file under src/: -1 for the shared base (errors, logger), Infinity for index.ts. */
function rank(file: string): number {
  const rel = path.relative(SRC, file).split(path.sep)
  if (rel.length === 1) return rel[0] === 'index.ts' ? Infinity : -1
  const layer = LAYERS.indexOf(rel[0] as string)
  assert.ok(layer >= 0, `${rel.join('/')} is in no known layer: add its folder to LAYERS in this test and to DESIGN's table`)
  return layer
}

/** Relative imports of a file, resolved to source paths. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8')
  const out: string[] = []
  const re = /(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g
  for (const m of text.matchAll(re)) {
    const spec = (m[1] ?? m[2]) as string
    out.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')))
  }
  return out
}

const files = sourceFiles(SRC)
const graph = new Map(files.map((f) => [f, importsOf(f).filter((target) => fs.existsSync(target))]))

test('imports point only down the layers', () => {
  const upward: string[] = []
  for (const [file, targets] of graph) {
    for (const target of targets) {
      if (rank(target) > rank(file)) upward.push(`${path.relative(SRC, file)} -> ${path.relative(SRC, target)}`)
    }
  }
  assert.deepEqual(upward, [], 'imports that point up a layer')
})

test('no import cycle between source files', () => {
  const state = new Map<string, 'visiting' | 'done'>()
  const cycles: string[] = []
  const visit = (file: string, stack: string[]): void => {
    const s = state.get(file)
    if (s === 'done') return
    if (s === 'visiting') {
      cycles.push([...stack.slice(stack.indexOf(file)), file].map((f) => path.relative(SRC, f)).join(' -> '))
      return
    }
    state.set(file, 'visiting')
    for (const target of graph.get(file) ?? []) visit(target, [...stack, file])
    state.set(file, 'done')
  }
  for (const file of files) visit(file, [])
  assert.deepEqual(cycles, [], 'import cycles')
})

test(`no file over about ${MAX_LINES} lines without a reason in its header`, () => {
  const long: string[] = []
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8')
    const lines = text.split('\n').length
    if (lines <= MAX_LINES + MAX_LINES_SLACK) continue
    // The header (the leading comment) must say why, naming the size.
    const header = /^\/\*\*[\s\S]*?\*\//.exec(text)?.[0] ?? ''
    if (!/\b(over|more than|longer than)\s+(about\s+)?400\s+lines\b/i.test(header)) long.push(`${path.relative(SRC, file)} (${lines} lines)`)
  }
  assert.deepEqual(long, [], 'files over the size bound with no reason in their header')
})
