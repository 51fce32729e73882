// snappyjs and crc-32's CRC32C module ship no types for what src/storage uses; declared here.
declare module 'snappyjs' {
  export function uncompress(compressed: Uint8Array): Uint8Array
  const snappy: { uncompress: typeof uncompress }
  export default snappy
}

declare module 'crc-32/crc32c.js' {
  /** CRC32C of `data`, continuing from `seed` (a previous result) when given; signed 32-bit. */
  export function buf(data: Uint8Array, seed?: number): number
  const crc32c: { buf: typeof buf }
  export default crc32c
}
