/**
 * Discovery test helpers: signed nodeInfos of made-up nodes (with chosen timestamps), each kind of
 * bad record, network namespaces, and loopback platforms.
 */
import { execFileSync } from 'node:child_process'
import { signKeyPair, signPublicToBoxPublic, sign } from '../../src/crypto/sodium.js'
import { nodeInfoSigningBytes, type NodeInfo } from '../../src/platform/node-info.js'
import { Platform, MemoryStore } from '../../src/index.js'

export interface FakeNode {
  signId: string
  boxId: string
  publicKey: Buffer
  secretKey: Buffer
  /** A nodeInfo signed by this node with the given timestamp (default now). */
  nodeInfo(timestamp?: number, connectionInfo?: NodeInfo['connectionInfo']): NodeInfo
}

export function fakeNode(): FakeNode {
  const kp = signKeyPair()
  const signId = kp.publicKey.toString('base64')
  const boxId = (signPublicToBoxPublic(kp.publicKey) as Buffer).toString('base64')
  return {
    signId,
    boxId,
    publicKey: kp.publicKey,
    secretKey: kp.secretKey,
    nodeInfo(timestamp = Date.now(), connectionInfo = [{ transportType: 'tcp', transportInfo: { address: '127.0.0.1', port: 9 } }]) {
      const unsigned = { signId, boxId, connectionInfo, timestamp }
      return { ...unsigned, signature: sign(nodeInfoSigningBytes(unsigned), kp.secretKey).toString('base64') }
    }
  }
}

/** One record of each kind a service must refuse, by the NodeInfoGate reason it must count. */
export function badRecords(node: FakeNode = fakeNode()): Record<'forged' | 'unsigned' | 'stale' | 'future' | 'oversized', NodeInfo> {
  const good = node.nodeInfo()
  const other = fakeNode()
  const { signature: _s, timestamp: _t, ...unsigned } = good
  return {
    // Someone else's signature over this node's record, then a changed address.
    forged: { ...good, signature: other.nodeInfo(good.timestamp).signature, connectionInfo: [{ transportType: 'tcp', transportInfo: { address: '127.0.0.1', port: 6666 } }] },
    unsigned,
    stale: node.nodeInfo(Date.now() - 3 * 60 * 60_000),
    future: node.nodeInfo(Date.now() + 60 * 60_000),
    // Properly signed, but with a huge connectionInfo entry.
    oversized: node.nodeInfo(Date.now(), [{ transportType: 'tcp', transportInfo: { address: '127.0.0.1', port: 9, pad: 'x'.repeat(3000) } }])
  }
}

/** A platform on 127.0.0.1 only (TCP), memory storage. */
export async function loopbackPlatform(): Promise<Platform> {
  const p = new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false })
  await p.ready()
  return p
}

/** Creates a network namespace with loopback up; returns its name and a remover. */
export function netns(prefix = 'mmt'): { name: string; remove: () => void } {
  const name = `${prefix}${process.pid}x${Math.floor(Math.random() * 1e6)}`
  execFileSync('ip', ['netns', 'add', name])
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  return {
    name,
    remove: () => {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', name]).toString().split(/\s+/).filter(Boolean)
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {
            // gone already
          }
        }
        execFileSync('ip', ['netns', 'del', name])
      } catch {
        // removed already
      }
    }
  }
}

/** True when this process may create network namespaces (root with ip(8)). */
export function canUseNetns(): boolean {
  try {
    const ns = netns('mmprobe')
    ns.remove()
    return true
  } catch {
    return false
  }
}
