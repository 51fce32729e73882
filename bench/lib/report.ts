// Printing a section's results: one table (each case's figure per metric and its ratio to that
// metric's reference case), the raw samples, then each goal for each of our cases, met or not.
import type { CaseResult, Metric } from './measure.js'
import { METRICS } from './measure.js'

/**
 * A goal for our case: `ours / ref >= factor` for a higher-is-better metric, `ours / ref <= factor`
 * for a lower-is-better one (connect time).
 */
export interface Goal {
  metric: Metric
  ref: string
  factor: number
}

export interface ReportSpec {
  results: CaseResult[]
  /** The reference case of each metric's ratio column (the one its goal names). */
  refs: Record<Metric, string>
  goals: Goal[]
  /** Names of our (mm-platform) cases; empty until one is registered in cases.ts. */
  ours: string[]
}

const fmt = (x: number, digits: number): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '-'

function table(rows: string[][], rightAlignFrom = 1): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows
    .map((r) => r.map((cell, i) => (i >= rightAlignFrom ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n')
}

function ratio(results: CaseResult[], name: string, metric: Metric, ref: string): number {
  const a = results.find((r) => r.name === name)?.stats[metric]?.median
  const b = results.find((r) => r.name === ref)?.stats[metric]?.median
  return a !== undefined && b !== undefined ? a / b : NaN
}

export function printReport(spec: ReportSpec): void {
  const { results, refs, goals, ours } = spec
  const metrics = (Object.keys(METRICS) as Metric[]).filter((m) => results.some((r) => r.stats[m]))
  const head = ['case']
  for (const m of metrics) head.push(`${METRICS[m].label} ${METRICS[m].unit}`, `x ${refs[m]}`)
  const rows = [head]
  for (const r of results) {
    const row = [ours.includes(r.name) ? `${r.name} (mm)` : r.name]
    for (const m of metrics) {
      const s = r.stats[m]
      const x = s ? ratio(results, r.name, m, refs[m]) : NaN
      row.push(s ? fmt(s.median, METRICS[m].digits) : '-', Number.isNaN(x) ? '-' : `${fmt(x, 2)}x`)
    }
    rows.push(row)
  }
  console.log(table(rows))
  console.log('\nmedians; samples (rounds, or connects: min-max):')
  for (const r of results) {
    const parts = metrics
      .map((m) => {
        const s = r.stats[m]
        if (!s) return undefined
        const d = METRICS[m].digits
        const body = m === 'connect' ? `${fmt(s.min, d)}-${fmt(s.max, d)} (n=${s.samples.length})` : s.samples.map((x) => fmt(x, d)).join(' / ')
        return `${m} ${body}`
      })
      .filter(Boolean)
    console.log(`  ${r.name}: ${[...parts, ...(r.error ? [`ERROR ${r.error}`] : [])].join('; ')}`)
  }

  console.log('\ngoals:')
  if (ours.length === 0) {
    for (const g of goals) console.log(`  mm ${describe(g)}: -`)
    console.log('  mm-platform case not registered (bench/lib/cases.ts): peers\' figures only')
    return
  }
  for (const name of ours) {
    for (const g of goals) {
      const x = ratio(results, name, g.metric, g.ref)
      const higher = METRICS[g.metric].higherIsBetter
      const verdict = Number.isNaN(x) ? 'no figure' : (higher ? x >= g.factor : x <= g.factor) ? 'met' : 'NOT met'
      console.log(`  ${name} ${describe(g)}: ${Number.isNaN(x) ? '-' : `${fmt(x, 2)}x`} -> ${verdict}`)
    }
  }
}

function describe(g: Goal): string {
  const m = METRICS[g.metric]
  return `${m.label} ${m.higherIsBetter ? '>=' : '<='} ${g.factor}x ${g.ref}${m.higherIsBetter ? '' : "'s time"}`
}

/** Exit code for a section: non-zero if any case failed (goals not met do not fail a section). */
export function exitCodeFor(results: CaseResult[]): number {
  return results.some((r) => r.error) ? 1 : 0
}
