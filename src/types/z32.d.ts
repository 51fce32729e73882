// z32 ships no types; the two functions we use.
declare module 'z32' {
  export function encode(bytes: Uint8Array): string
  export function decode(text: string, out?: Uint8Array): Uint8Array
  const z32: { encode: typeof encode; decode: typeof decode }
  export default z32
}
