/**
 * Adapters between Azure Functions trigger shapes and the scaler's handlers: how a queue
 * invocation's metadata and a context's logger are read. Shared by every file in `functions/`
 * so those stay one registration each.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import hostJson from '../../host.json' with { type: 'json' };
import { contextLogger, type Logger } from '../platform/log.ts';
import { poisonQueueName, storageNames } from '../platform/names.ts';
import { ConfigError } from '../platform/config.ts';
import { problem } from '../http/problem.ts';
import type { HttpDeps } from '../http/deps.ts';

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

/**
 * An internal queue's name for a registration, read when `functions/*.ts` is imported. Never
 * throws: a bad `STORAGE_PREFIX` must not stop every function (health included) from loading;
 * it is reported by name when the services are built (`/api/health` answers 503 naming it).
 */
export function internalQueueName(queue: 'trackerQueue' | 'callbackQueue', env: Record<string, string | undefined> = process.env): string {
  try {
    const prefix = env.STORAGE_PREFIX?.trim();
    return storageNames(prefix ? { prefix } : {})[queue];
  } catch {
    return storageNames()[queue];
  }
}

/**
 * An HTTP route's Functions handler: builds (or reuses) the services, then runs the route. When
 * they cannot be built — a bad setting above all — every route, `/api/health` included, answers
 * 503 problem+json naming the setting (never its value), and the log says the same.
 */
export function httpTrigger(
  handler: (deps: HttpDeps, request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
  build: () => Promise<{ http: HttpDeps }>,
): (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit> {
  return async (request, context) => {
    let deps: HttpDeps;
    try {
      deps = (await build()).http;
    } catch (error) {
      const log = invocationLogger(context);
      if (error instanceof ConfigError) {
        log.error('configuration error: the scaler cannot run until this setting is fixed', { setting: error.setting, error: error.message });
        const answer = problem(503, 'HTTP_CONFIG', error.message);
        return { ...answer, jsonBody: { ...(answer.jsonBody as object), setting: error.setting } };
      }
      log.error('the services could not be built', { error });
      return problem(503, 'HTTP_CONFIG', 'the scaler could not start its services (storage, Key Vault or CycleCloud settings); see the log');
    }
    return handler(deps, request, context);
  };
}
