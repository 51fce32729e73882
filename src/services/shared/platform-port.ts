/**
 * What a discovery service needs of a platform: only its public messaging API (as the seed's
 * "Building services on top of platform" shows), the node's identity for the one service that
 * signs records of its own (Mainline), and a logger. Subscriptions made through
 * {@link Subscriptions} are all removed by its close().
 */
import type { TopicHandler } from '../../platform/topic-emitter.js'
import type { SendOptions } from '../../platform/message.js'
import type { Logger } from '../../logger.js'
import { InvalidArgumentError } from '../../errors.js'

/** The messaging API object (`platform.messaging`), as services use it. */
export interface MessagingLike {
  on(pattern: string, handler: TopicHandler): unknown
  off(pattern: string, handler: TopicHandler): unknown
  send(topic: string, destination: string, payload: unknown, options?: SendOptions): boolean
}

/** The part of a Platform a service uses. */
export interface ServicePlatform {
  messaging: MessagingLike
  identity: { getSignId(): string; sign(message: Uint8Array): Uint8Array }
  logger?: Logger
}

/** Subscriptions a service holds, released together. */
export class Subscriptions {
  private readonly held: Array<[string, TopicHandler]> = []
  constructor(private readonly messaging: MessagingLike) {}

  on(pattern: string, handler: TopicHandler): void {
    this.messaging.on(pattern, handler)
    this.held.push([pattern, handler])
  }

  close(): void {
    for (const [pattern, handler] of this.held.splice(0)) this.messaging.off(pattern, handler)
  }
}

/** Checks the `platform` option of a service. */
export function checkPlatform(platform: unknown, service: string): ServicePlatform {
  const p = platform as Partial<ServicePlatform> | undefined
  if (!p || !p.messaging || typeof p.messaging.on !== 'function' || typeof p.messaging.send !== 'function') {
    throw new InvalidArgumentError(`${service} needs { platform } with platform.messaging`)
  }
  return p as ServicePlatform
}
