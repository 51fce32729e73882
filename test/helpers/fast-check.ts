/**
 * fast-check with a reproducible seed: every property in a test file runs from FC_SEED when it is
 * set, otherwise from a fresh seed printed once per file (stderr). A failing property's report
 * names the seed and the shrunk counterexample path (fast-check's own message, verbose), so
 * `FC_SEED=<seed> node --import tsx --test test/<file>` replays it.
 * Import `fc` from here, not from 'fast-check', so that no property draws an unprinted seed.
 */
import fc from 'fast-check'

function seedFromEnv(): number | undefined {
  const raw = process.env.FC_SEED
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isInteger(n)) throw new Error(`FC_SEED must be an integer, got ${JSON.stringify(raw)}`)
  return n | 0
}

/** The seed every property of this process starts from. */
export const FC_SEED: number = seedFromEnv() ?? (Math.random() * 0x1_0000_0000) | 0

fc.configureGlobal({ seed: FC_SEED, verbose: 1 })
process.stderr.write(`fast-check seed ${FC_SEED} (replay with FC_SEED=${FC_SEED})\n`)

export { fc }
export default fc
