/**
 * One logger for the whole library. Any pino-compatible object works (pino itself, or
 * `console`-like objects with these methods); the user replaces it with the `logger` option.
 */
export interface Logger {
  trace(obj: unknown, msg?: string): void
  debug(obj: unknown, msg?: string): void
  info(obj: unknown, msg?: string): void
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
}

const noop = (): void => {}

/** Quiet by default: the library says nothing unless the user gives it a logger. */
export const silentLogger: Logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop }

/** A line-per-record logger to stderr, for the command line tool. */
export function createConsoleLogger(level: 'debug' | 'info' | 'warn' = 'info'): Logger {
  const order = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 } as const
  const min = order[level]
  const write = (name: keyof typeof order) => (obj: unknown, msg?: string): void => {
    if (order[name] < min) return
    const detail = typeof obj === 'string' ? obj : safeJson(obj)
    process.stderr.write(`${new Date().toISOString()} ${name.toUpperCase()} ${msg ?? ''}${msg ? ' ' : ''}${detail}\n`)
  }
  return { trace: write('trace'), debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}

function safeJson(obj: unknown): string {
  if (obj instanceof Error) return `${obj.name}: ${obj.message}`
  try {
    return JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? `${v.name}: ${v.message}` : v))
  } catch {
    return String(obj)
  }
}
