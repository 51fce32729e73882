// Bundles the child entry to plain ES modules under bench/.tmp/two-process/ (git-ignored, inside
// the package so `mm-platform` and node_modules resolve as they do for users). Packages stay
// external: the children load @hyperswarm/secret-stream, hyperdht and mm-platform (dist/) exactly
// as an application would; each peer is its own chunk, so a cold process loads only its peer.
import { build } from 'esbuild'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
export const OUT_DIR = join(here, '..', '..', '.tmp', 'two-process')

export async function buildChild(): Promise<string> {
  await build({
    entryPoints: { child: join(here, 'child.ts') },
    outdir: OUT_DIR,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning'
  })
  return join(OUT_DIR, 'child.mjs')
}
