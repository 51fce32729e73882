// snappyjs ships no types; only the decompressor src/storage uses is declared.
declare module 'snappyjs' {
  export function uncompress(compressed: Uint8Array): Uint8Array
  const snappy: { uncompress: typeof uncompress }
  export default snappy
}
