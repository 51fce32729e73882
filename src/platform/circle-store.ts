/** The circles' members kept in the platform's storage, under `circle.<name>`. */
import type { Logger } from '../logger.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { Circle, type CircleLike } from './circle.js'

const CIRCLE_KEY_PREFIX = 'circle.'

/** Adds the stored members of `name` to `circle` (our own Circle only; a custom one keeps itself). */
export async function loadCircle(storage: PlatformStorage, logger: Logger, name: string, circle: CircleLike): Promise<void> {
  if (!(circle instanceof Circle)) return
  const stored = await storage.get(CIRCLE_KEY_PREFIX + name)
  if (stored === undefined) return
  try {
    circle.update(JSON.parse(stored) as string[])
  } catch (err) {
    logger.warn({ err, circle: name }, `the stored ${name} circle does not parse: its stored members are lost, the circle keeps only those given in the options`)
  }
}

/** Stores the members of `circle`; a failure is logged (the circle in memory stays as updated). */
export function saveCircle(storage: PlatformStorage, logger: Logger, name: string, circle: Circle): void {
  storage.put(CIRCLE_KEY_PREFIX + name, JSON.stringify(circle.getMembers())).catch((err: unknown) => {
    logger.error({ err, circle: name }, 'could not persist the circle')
  })
}
