// Tables and goal verdicts of the two-process section.
import { median } from '../util.js'

export const fmt = (x: number, digits: number): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '-'

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((cell, i) => (i > 0 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n')
}

export interface Row {
  label: string
  unit: string
  digits: number
  higherIsBetter: boolean
  /** Samples per peer (rounds, or processes); the median is shown. */
  samples: Map<string, number[]>
}

export const med = (row: Row, peer: string): number => {
  const s = row.samples.get(peer)
  return s && s.length ? median(s) : NaN
}

/** One table: a column per peer, then `ours / ref` for each ref. */
export function printTable(rows: Row[], peers: string[], ours: string, refs: string[]): void {
  const head = ['case (two processes)', ...peers, ...refs.map((r) => `${ours} / ${r}`)]
  const out = [head]
  for (const row of rows) {
    out.push([
      `${row.label} (${row.unit})`,
      ...peers.map((p) => fmt(med(row, p), row.digits)),
      ...refs.map((r) => {
        const x = med(row, ours) / med(row, r)
        return Number.isFinite(x) ? `${fmt(x, 2)}x` : '-'
      })
    ])
  }
  console.log(table(out))
  console.log('samples (rounds or processes, in run order):')
  for (const row of rows) {
    const parts = peers.map((p) => `${p} ${(row.samples.get(p) ?? []).map((x) => fmt(x, row.digits)).join('/') || 'failed'}`)
    console.log(`  ${row.label}: ${parts.join('; ')}`)
  }
}

export interface GoalSpec {
  text: string
  row: Row | undefined
  ours: string
  ref: string
  factor: number
}

/** Prints `text: ratio -> met / missed by ...`; whether it was met, undefined if not measured in this run. */
export function verdict(g: GoalSpec): boolean | undefined {
  if (!g.row) {
    console.log(`  ${g.text}: not run`)
    return undefined
  }
  const x = med(g.row, g.ours) / med(g.row, g.ref)
  if (!Number.isFinite(x)) {
    console.log(`  ${g.text}: no figure -> missed`)
    return false
  }
  const met = g.row.higherIsBetter ? x >= g.factor : x <= g.factor
  const by = g.row.higherIsBetter ? g.factor / x : x / g.factor
  console.log(`  ${g.text}: ${fmt(x, 2)}x -> ${met ? 'met' : `MISSED (${fmt(by, 2)}x short)`}`)
  return met
}
