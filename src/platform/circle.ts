/**
 * A circle of trusted nodes, by signId. The platform scopes a received message `self` when its
 * sender is in the `devices` circle and `friends` when in the `friends` circle.
 */
import { InvalidArgumentError } from '../errors.js'
import { isId } from '../identity/ids.js'

/** Anything that answers "is this signId in the circle?" works as the `friends` / `devices` option. */
export interface CircleLike {
  inScope(signId: string): boolean
  /** Optional: replace the members (called for a local `friends.update` / `devices.update`). */
  update?(signIds: string[]): void
}

/** Most members a circle holds. */
export const MAX_CIRCLE_MEMBERS = 10_000

export class Circle implements CircleLike {
  readonly name: string
  private members: Set<string>

  constructor(name: string, signIds: Iterable<string> = []) {
    this.name = name
    this.members = checkMembers([...signIds])
  }

  inScope(signId: string): boolean {
    return this.members.has(signId)
  }

  /**
   * Replaces the members.
   * @throws InvalidArgumentError when the list is not an array of signIds (the circle is unchanged).
   */
  update(signIds: string[]): void {
    this.members = checkMembers(signIds)
  }

  getMembers(): string[] {
    return [...this.members]
  }

  get size(): number {
    return this.members.size
  }
}

function checkMembers(signIds: unknown): Set<string> {
  if (!Array.isArray(signIds)) throw new InvalidArgumentError('circle members must be an array of signIds')
  if (signIds.length > MAX_CIRCLE_MEMBERS) throw new InvalidArgumentError(`a circle holds at most ${MAX_CIRCLE_MEMBERS} members`)
  for (const id of signIds) {
    if (!isId(id)) throw new InvalidArgumentError(`not a signId (base64 of 32 bytes): ${JSON.stringify(id)?.slice(0, 60)}`)
  }
  return new Set(signIds as string[])
}

/** The circle for a `friends` / `devices` option: made from an array, or the caller's own object. */
export function toCircle(name: string, value: CircleLike | string[] | undefined): CircleLike {
  if (value === undefined) return new Circle(name)
  if (Array.isArray(value)) return new Circle(name, value)
  if (value && typeof value.inScope === 'function') return value
  throw new InvalidArgumentError(`the ${name} option must be an array of signIds or an object with inScope(signId)`)
}
