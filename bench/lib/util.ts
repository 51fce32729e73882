// Small helpers shared by the harness and the cases.
import { setImmediate as immediate } from 'node:timers/promises'

export const now = (): number => performance.now()

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Reject with a clear error if `p` takes longer than `ms`; the timer never outlives the race. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([p, t])
  } finally {
    clearTimeout(timer)
  }
}

export const yieldToIo = (): Promise<void> => immediate()

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Wait for an EventEmitter-style event once, or reject on 'error'/'close' before it. */
export function once(
  em: { once(ev: string, f: (...a: any[]) => void): unknown; off(ev: string, f: (...a: any[]) => void): unknown },
  event: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = (): void => {
      cleanup()
      resolve()
    }
    const fail = (err?: unknown): void => {
      cleanup()
      reject(err instanceof Error ? err : new Error(`closed before '${event}'`))
    }
    const closed = (): void => fail()
    const cleanup = (): void => {
      em.off(event, ok)
      em.off('error', fail)
      em.off('close', closed)
    }
    em.once(event, ok)
    em.once('error', fail)
    if (event !== 'close') em.once('close', closed)
  })
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/**
 * Call at the end of a section: if the process has not exited by itself `ms` later (a socket or
 * timer left open), name what keeps it alive and exit with code 2. The timer itself is unref'd.
 */
export function exitWatchdog(ms = 10_000): void {
  setTimeout(() => {
    console.error(`LEAK: section still running ${ms} ms after it finished; open resources: ${process.getActiveResourcesInfo().join(', ')}`)
    process.exit(2)
  }, ms).unref()
}
