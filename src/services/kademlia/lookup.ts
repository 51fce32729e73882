/**
 * The iterative, parallel Kademlia lookup (Maymounkov and Mazieres, 2002, section 2.3): keep the
 * K closest nodes heard of, ask ALPHA of the closest not yet asked at a time, add what they return,
 * stop when the K closest have all answered (or failed), or, for FIND_VALUE, at the first valid
 * value. Transport-free: the caller gives `ask`, which resolves null on timeout or error.
 *
 * Hops: a node given at the start is 1 hop away; a node learned from a node h hops away is h + 1.
 * The result's `hops` is the hop count of the node that gave the value (or the target's own entry).
 */
import type { NodeInfo } from '../../platform/node-info.js'
import { compareDistance } from './ids.js'

export const K = 20
export const ALPHA = 3

export interface LookupContact {
  id: Buffer
  nodeInfo: NodeInfo
}

export interface LookupAnswer {
  nodes: LookupContact[]
  value?: NodeInfo
}

export interface LookupResult {
  value?: NodeInfo
  /** The K closest nodes that answered, closest first. */
  closest: LookupContact[]
  hops: number
  /** Requests sent. */
  queried: number
}

interface Candidate extends LookupContact {
  hop: number
  state: 'new' | 'pending' | 'answered' | 'failed'
}

export interface LookupOptions {
  target: Buffer
  start: LookupContact[]
  /** Our own id: never asked, never returned. */
  self: Buffer
  ask: (contact: LookupContact) => Promise<LookupAnswer | null>
  /** Stop at the first value (FIND_VALUE); else find the K closest (FIND_NODE). */
  wantValue: boolean
  k?: number
  alpha?: number
  /** Most candidates tracked (bounds memory against a flood of returned nodes). */
  maxCandidates?: number
}

/** Runs one lookup to the end. Never rejects. */
export function lookup(options: LookupOptions): Promise<LookupResult> {
  const k = options.k ?? K
  const alpha = options.alpha ?? ALPHA
  const maxCandidates = options.maxCandidates ?? k * 8
  const { target } = options
  const byId = new Map<string, Candidate>()
  let list: Candidate[] = []
  let queried = 0
  let inFlight = 0
  let finished = false

  const add = (c: LookupContact, hop: number): void => {
    const key = c.id.toString('hex')
    if (c.id.equals(options.self) || byId.has(key)) return
    const candidate: Candidate = { ...c, hop, state: 'new' }
    byId.set(key, candidate)
    list.push(candidate)
  }
  for (const c of options.start) add(c, 1)

  return new Promise<LookupResult>((resolve) => {
    const finish = (value?: NodeInfo, hops = 0): void => {
      if (finished) return
      finished = true
      const closest = list.filter((c) => c.state === 'answered').slice(0, k)
      resolve({ value, closest: closest.map(({ id, nodeInfo }) => ({ id, nodeInfo })), hops, queried })
    }
    const step = (): void => {
      if (finished) return
      list.sort((a, b) => compareDistance(target, a.id, b.id))
      // Forget the far end: what cannot be among the K closest is never asked.
      if (list.length > maxCandidates) list = list.filter((c, i) => i < maxCandidates || c.state === 'pending')
      let live = 0
      for (const c of list) {
        if (live >= k || inFlight >= alpha) break
        if (c.state === 'failed') continue
        live++
        if (c.state !== 'new') continue
        c.state = 'pending'
        inFlight++
        queried++
        options.ask(c).then(
          (answer) => onAnswer(c, answer),
          () => onAnswer(c, null)
        )
      }
      if (inFlight === 0) {
        // Every one of the K closest has answered or failed.
        const target = options.wantValue ? undefined : list.find((c) => c.state === 'answered' && c.id.equals(options.target))
        finish(undefined, target?.hop ?? 0)
      }
    }
    const onAnswer = (c: Candidate, answer: LookupAnswer | null): void => {
      inFlight--
      if (finished) return
      if (!answer) {
        c.state = 'failed'
      } else {
        c.state = 'answered'
        if (options.wantValue && answer.value) {
          finish(answer.value, c.hop)
          return
        }
        for (const n of answer.nodes) add(n, c.hop + 1)
      }
      step()
    }
    step()
  })
}
