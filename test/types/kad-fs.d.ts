// Types for the kad-fs package (it ships none), as much as the tests use.
declare module 'kad-fs' {
  import type { Readable } from 'node:stream'
  interface KadFSAdapter {
    readonly datadir: string
    get(key: string, callback: (err: Error | null, value?: string) => void): void
    put(key: string, value: string, callback: (err?: Error | null) => void): void
    del(key: string, callback: (err?: Error | null) => void): void
    createReadStream(): Readable
  }
  function kadfs(datadir: string): KadFSAdapter
  export = kadfs
}
