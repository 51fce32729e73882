// bittorrent-dht ships no types; the part of its API we use.
declare module 'bittorrent-dht' {
  import { EventEmitter } from 'node:events'
  namespace DHT {
    interface Node {
      host: string
      port: number
    }
    interface Options {
      bootstrap?: false | Array<string | Node>
      host?: string | false
      verify?: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean
      maxValues?: number
      maxTables?: number
      timeBucketOutdated?: number
      concurrency?: number
    }
    interface PutOptions {
      k: Buffer
      v: Buffer
      seq: number
      sig?: Buffer
      sign?: (data: Buffer) => Buffer
      cas?: number
      salt?: Buffer
    }
    interface GetResult {
      id?: Buffer
      k?: Buffer
      v: Buffer
      sig?: Buffer
      seq?: number
    }
  }
  class DHT extends EventEmitter {
    constructor(options?: DHT.Options)
    readonly nodeId: Buffer
    readonly listening: boolean
    /** The routing table (a k-bucket). */
    readonly nodes: { count(): number }
    readonly destroyed: boolean
    listen(port?: number, host?: string, cb?: () => void): void
    address(): { address: string; family: string; port: number }
    addNode(node: DHT.Node): void
    put(options: DHT.PutOptions, cb?: (err: Error | null, hash: Buffer, n: number) => void): Buffer
    get(hash: Buffer, options: { verify?: DHT.Options['verify']; cache?: boolean; salt?: Buffer }, cb: (err: Error | null, res: DHT.GetResult | null) => void): void
    get(hash: Buffer, cb: (err: Error | null, res: DHT.GetResult | null) => void): void
    toJSON(): { nodes: DHT.Node[]; values: Record<string, unknown> }
    destroy(cb?: () => void): void
  }
  export = DHT
}
