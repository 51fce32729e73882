/**
 * Gives a promise-returning store method the kad-fs callback form too: with a callback the
 * result goes there (on a later tick), without one the promise is returned.
 */
export function settle<T>(promise: Promise<T>, callback?: (err: Error | null, value?: T) => void): Promise<T> | undefined {
  if (!callback) return promise
  promise.then(
    (value) => callback(null, value),
    (err: Error) => callback(err)
  )
  return undefined
}
