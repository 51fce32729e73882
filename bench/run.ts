// `npm run bench`: runs every bench/sections/*.ts in its own process, in name order, so one
// section's heap and sockets cannot skew the next. A section prints its own table and ratios.
// `npm run bench -- tcp` runs only the sections whose file name contains "tcp".
// Our cases import the built package (dist/, built by `npm run bench` first): what users run, as
// plain JavaScript like the peers, not the sources through tsx (whose keep-names wrappers cost).
import { readdirSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const filter = process.argv[2]
const sections = readdirSync(join(here, 'sections'))
  .filter((f) => f.endsWith('.ts') && (!filter || f.includes(filter)))
  .sort()
let failed = 0
for (const file of sections) {
  console.log(`\n## ${file.replace(/\.ts$/, '')}`)
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', join(here, 'sections', file)], { stdio: 'inherit' })
  if (r.status !== 0) {
    failed++
    console.log(`(section ${file} failed with exit code ${r.status})`)
  }
}
process.exitCode = failed ? 1 : 0
