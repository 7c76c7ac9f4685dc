/**
 * Adapters between Azure Functions trigger shapes and the scaler's handlers: how a queue
 * invocation's metadata and a context's logger are read. Shared by every file in `functions/`
 * so those stay one registration each.
 */
import type { InvocationContext } from '@azure/functions';
import hostJson from '../../host.json' with { type: 'json' };
import { contextLogger, type Logger } from '../platform/log.ts';
import { poisonQueueName } from '../platform/names.ts';

/** host.json's `maxDequeueCount` (the Functions default is 5): the handler must know its last attempt. */
export const MAX_DEQUEUE_COUNT: number = (hostJson as { extensions?: { queues?: { maxDequeueCount?: number } } }).extensions?.queues?.maxDequeueCount ?? 5;

export interface QueueInvocation {
  messageId: string;
  dequeueCount: number;
  maxDequeueCount: number;
  poisonQueue: string;
}

/** Reads the queue trigger's metadata (`id`, `dequeueCount`) from an invocation context. */
export function queueInvocation(ctx: InvocationContext, queueName: string): QueueInvocation {
  const meta = (ctx.triggerMetadata ?? {}) as Record<string, unknown>;
  const dequeueCount = Number(meta.dequeueCount ?? 1);
  return {
    messageId: typeof meta.id === 'string' ? meta.id : String(meta.id ?? 'unknown'),
    dequeueCount: Number.isFinite(dequeueCount) && dequeueCount > 0 ? dequeueCount : 1,
    maxDequeueCount: MAX_DEQUEUE_COUNT,
    poisonQueue: poisonQueueName(queueName),
  };
}

/** A structured logger bound to the invocation (App Insights correlates by invocation id). */
export function invocationLogger(ctx: InvocationContext, fields: Record<string, unknown> = {}): Logger {
  return contextLogger(ctx, { functionName: ctx.functionName, ...fields });
}
