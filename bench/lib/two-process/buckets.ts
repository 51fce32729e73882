// Groups the self time of a V8 .cpuprofile (node --cpu-prof) into the buckets issue 12 asks
// about. A function goes to the first bucket whose rule matches its name or file; the rules are
// by what the code does, so they follow code that moves between files.
import { existsSync, readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber?: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export const BUCKETS = [
  'crypto',
  'syscalls',
  'copies',
  'framing',
  'acknowledgements',
  'JSON',
  'dispatch',
  'timers',
  'socket plumbing',
  'module loading',
  'GC',
  'native other',
  'harness',
  'other JS',
  'idle'
] as const
export type Bucket = (typeof BUCKETS)[number]

export const BUCKET_NOTES: Record<Bucket, string> = {
  crypto: 'libsodium / noble calls, our crypto wrappers (seal, open, X25519, Ed25519) and the handshake code',
  syscalls: "native socket calls made from JS: writev, writeBuffer, dgram's doSend and udx-native's _writev (the native send is folded into them), connect, close",
  copies: 'Buffer alloc/concat/copy/subarray/from and typed-array set/slice',
  framing: 'frame and packet encode/decode, length prefix, CurveCP packet layout, stream reassembly',
  acknowledgements: 'functions about acks, resends, delivery callbacks and dedupe of ids',
  JSON: "JSON.parse/stringify and UTF-8 text <-> bytes (node:buffer's string write and utf8 slice)",
  dispatch: 'platform/API/topic routing, EventEmitter emit, queues of the connection manager',
  timers: 'setTimeout/setImmediate/nextTick/microtask machinery and our timer handling',
  'socket plumbing': "Node's net/dgram/stream JS around the socket and our transports/ (not the syscall itself)",
  'module loading': 'process start: resolving, reading and compiling modules (matters for cold start)',
  GC: 'garbage collector',
  'native other': "'(program)': native work outside JS frames (libuv polling and reads, V8 compile)",
  harness: 'the bench child itself (bench/.tmp), IPC',
  'other JS': 'everything else',
  idle: 'waiting for I/O (not counted in the per-unit figures)'
}

const test = (re: RegExp, s: string): boolean => re.test(s)

/** The bucket of one call frame. */
export function bucketOf(f: CallFrame): Bucket {
  const name = f.functionName
  const url = f.url
  if (name === '(idle)') return 'idle'
  if (name === '(garbage collector)') return 'GC'
  if (name === '(program)' || name === '(root)') return 'native other'
  if (test(/^(encodeJson|decodeJson)$/, name)) return 'JSON'
  if (test(/\/bench\/\.tmp\/|node:internal\/child_process|serialization|node:internal\/process\/per_thread/, url)) return 'harness'
  if (test(/sodium|noble|\/crypto\/|handshake|curvecp\/session|hypercore-crypto|noise/, url) || test(/^crypto_/, name)) return 'crypto'
  if (test(/node:internal\/modules\/|node:internal\/vm|cjs-module-lexer|node:internal\/bootstrap|node:internal\/fs|node:fs|node:path/, url) || test(/^(compileSourceTextModule|wrapSafe|compileFunction|internalModuleStat|fstat|stat|lstat|open|openFileHandle|read|readFileUtf8|realpath)$/, name)) return 'module loading'
  if (test(/^ack|Ack|acknowledge|[rR]esend|[rR]etransmit|[dD]edupe|[dD]elivered|firstSight|[sS]een[A-Z]?/, name)) return 'acknowledgements'
  // dgram's doSend calls the native send, which the profile folds into doSend's self time.
  if (url === 'node:dgram' && name === 'doSend') return 'syscalls'
  // Likewise udx-native's stream writes (hyperdht): the native send is inside them.
  if (test(/udx-native/, url) && test(/^(_writev|_write|send|trySend|_send)$/, name)) return 'syscalls'
  if (url === '' && test(/^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeAsciiString|send|sendto|connect|close|shutdown|bind|readStart|readStop|setNoDelay|ref|unref|getsockname|getpeername)$/, name)) return 'syscalls'
  if (url === '' && test(/^(parse|stringify)$/, name)) return 'JSON'
  if (test(/utf8Slice|utf8Write|toString|byteLengthUtf8|jsonEncode|jsonDecode/, name)) return 'JSON'
  if (url === 'node:buffer' && test(/^(write|slice)$/, name)) return 'JSON'
  if (test(/timers|node:internal\/timers|task_queues|fixed_queue/, url) || test(/^(setTimeout|clearTimeout|setImmediate|clearImmediate|processImmediate|listOnTimeout|processTimers|refresh|nextTick|runMicrotasks|processTicksAndRejections|queueMicrotask)$|[tT]imer/, name)) return 'timers'
  if (test(/frames|length-prefix|packets|message-layer|message-stream|packet-socket|held-data|framing|@hyperswarm\/secret-stream|sodium-secretstream/, url)) return 'framing'
  if (test(/^(concat|copy|_copy|_copyActual|alloc|allocUnsafe|allocUnsafeSlow|allocate|from|fromArrayBuffer|fromString|fromStringFast|subarray|slice|set|fill|Buffer|Uint8Array|FastBuffer|createUnsafeBuffer|copyImpl|TypedArrayPrototypeSet|TypedArrayPrototypeSubarray)$/, name) || test(/^node:buffer$/, url)) return 'copies'
  if (url === '' && test(/^(Uint8Array|ArrayBuffer|DataView)/, name)) return 'copies'
  if (test(/node:net|node:internal\/streams|stream_base_commons|node:internal\/net|node:dgram|node:internal\/dgram|udx|streamx|node:stream|\/transports\//, url) || test(/^(onStreamRead|afterWriteDispatched|writeGeneric|writevGeneric)$/, name)) return 'socket plumbing'
  if (test(/platform\/|connections\/|node:events|events\.js|topic|api/, url) || test(/^(emit|emitMessage|dispatch|receive|route)/, name)) return 'dispatch'
  return 'other JS'
}

export interface Summary {
  /** Self time per bucket, ms. */
  ms: Record<Bucket, number>
  /** ms of all samples. */
  total: number
  /** Top functions (self ms) per bucket, for checking the rules. */
  top: Record<Bucket, Array<[string, number]>>
}

const sourceMaps = new Map<string, SourceMap | null>()

/**
 * The frame with the url of its source file, for frames in the package's bundled files
 * (dist/bundle, one file per entry): the rules above go by src/ paths, which the bundle's source
 * map gives back.
 */
function unbundled(f: CallFrame): CallFrame {
  if (!f.url.includes('/dist/bundle/') || f.columnNumber === undefined) return f
  let map = sourceMaps.get(f.url)
  if (map === undefined) {
    const file = fileURLToPath(f.url) + '.map'
    map = existsSync(file) ? new SourceMap(JSON.parse(readFileSync(file, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]) : null
    sourceMaps.set(f.url, map)
  }
  const entry = map?.findEntry(f.lineNumber, f.columnNumber) as { originalSource?: string; originalLine?: number } | undefined
  if (!entry?.originalSource) return f
  return { ...f, url: new URL(entry.originalSource, f.url).href, lineNumber: entry.originalLine ?? f.lineNumber }
}

/** `window`: count only samples inside [from, to] (µs, the profile's monotonic clock). */
export function summarise(path: string, window?: [number, number]): Summary {
  const prof = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  let t = prof.startTime
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0
    if (window && (t < window[0] || t > window[1])) continue
    const dt = prof.timeDeltas[i + 1] ?? 0
    const id = prof.samples[i]!
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt)
  }
  const ms = Object.fromEntries(BUCKETS.map((b) => [b, 0])) as Record<Bucket, number>
  const fns = new Map<string, { bucket: Bucket; ms: number }>()
  let total = 0
  for (const [id, us] of selfUs) {
    const f = unbundled(byId.get(id)!.callFrame)
    const b = bucketOf(f)
    ms[b] += us / 1000
    total += us / 1000
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(src|dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}`
    const e = fns.get(key) ?? { bucket: b, ms: 0 }
    e.ms += us / 1000
    fns.set(key, e)
  }
  const top = Object.fromEntries(BUCKETS.map((b) => [b, [] as Array<[string, number]>])) as Summary['top']
  for (const [k, v] of [...fns].sort((a, b) => b[1].ms - a[1].ms)) if (top[v.bucket].length < 6) top[v.bucket].push([k, v.ms])
  return { ms, total, top }
}
