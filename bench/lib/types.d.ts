// Minimal types for the untyped bench peers: only what the cases use.

declare module '@hyperswarm/secret-stream' {
  import type { Duplex } from 'node:stream'

  interface KeyPair {
    publicKey: Buffer
    secretKey: Buffer
  }

  // A streamx Duplex; only the members the bench uses.
  class NoiseSecretStream {
    constructor(isInitiator: boolean, rawStream?: Duplex | null, opts?: { keyPair?: KeyPair; remotePublicKey?: Buffer })
    static keyPair(seed?: Buffer): KeyPair
    readonly opened: Promise<boolean>
    readonly destroyed: boolean
    readonly rawStream: unknown
    readonly publicKey: Buffer | null
    readonly remotePublicKey: Buffer | null
    write(data: Buffer): boolean
    end(): this
    destroy(err?: Error): void
    setKeepAlive(ms: number): void
    on(event: string, listener: (...args: any[]) => void): this
    once(event: string, listener: (...args: any[]) => void): this
    off(event: string, listener: (...args: any[]) => void): this
  }
  export default NoiseSecretStream
}

declare module 'hyperdht' {
  import type NoiseSecretStream from '@hyperswarm/secret-stream'

  interface KeyPair {
    publicKey: Buffer
    secretKey: Buffer
  }

  interface HyperDHTServer {
    listen(keyPair?: KeyPair): Promise<void>
    close(): Promise<void>
    readonly publicKey: Buffer
    on(event: 'connection', listener: (socket: NoiseSecretStream) => void): this
  }

  class HyperDHT {
    constructor(opts?: { bootstrap?: Array<string | { host: string; port: number }>; host?: string; ephemeral?: boolean; connectionKeepAlive?: number | false })
    static keyPair(seed?: Buffer): KeyPair
    createServer(onconnection?: (socket: NoiseSecretStream) => void): HyperDHTServer
    createServer(opts: object, onconnection?: (socket: NoiseSecretStream) => void): HyperDHTServer
    connect(remotePublicKey: Buffer, opts?: { keyPair?: KeyPair }): NoiseSecretStream
    destroy(opts?: { force?: boolean }): Promise<void>
    ready(): Promise<void>
    fullyBootstrapped(): Promise<void>
  }
  export default HyperDHT
}

declare module 'hyperdht/testnet' {
  import type HyperDHT from 'hyperdht'

  interface Testnet extends Iterable<HyperDHT> {
    nodes: HyperDHT[]
    bootstrap: Array<{ host: string; port: number }>
    createNode(opts?: object): HyperDHT
    destroy(): Promise<void>
  }
  function createTestnet(size?: number, opts?: { host?: string; port?: number; bootstrap?: Array<{ host: string; port: number }> }): Promise<Testnet>
  export default createTestnet
}
