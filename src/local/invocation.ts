/**
 * What the Functions host does around every invocation: a real `InvocationContext`, one debug line
 * at start and one at the end (duration, outcome; a failure at error), and the storage-queue output bindings a handler
 * set (`return` or `extraOutputs`), written after the handler succeeded.
 */
import { randomUUID } from 'node:crypto';
import { format } from 'node:util';
// Default import: Node's CommonJS named-export detection misses the library's classes.
import functions from '@azure/functions';
import type { FunctionOutput, InvocationContext, InvocationContextInit, LogLevel as FunctionsLogLevel } from '@azure/functions';
import { scrub, type Logger, type LogLevel, type LogSink } from '../platform/log.ts';
import { encodeQueueMessage, storageConnectionFromEnv, type Storage, type StorageConnection } from '../platform/storage.ts';
import { resolveBindingExpression } from './host-config.ts';
import { LocalHostError } from './registrations.ts';

/** Gives the `Storage` for a binding's `connection` setting name (default `AzureWebJobsStorage`). */
export type StorageForConnection = (connection: string) => Promise<Storage>;

export interface InvokeOptions {
  functionName: string;
  trigger: 'timer' | 'storageQueue' | 'http';
  triggerMetadata?: Record<string, unknown>;
  /** The registration's bindings, so `ctx.extraOutputs` and `ctx.options` look as in Azure. */
  bindings: { return?: FunctionOutput; extraOutputs?: FunctionOutput[] };
  logger: Logger;
  sink: LogSink;
  env: Record<string, string | undefined>;
  storageFor: StorageForConnection;
  messageEncoding: 'base64' | 'none';
}

const LEVELS: Record<FunctionsLogLevel, LogLevel | undefined> = {
  trace: 'debug',
  debug: 'debug',
  information: 'info',
  warning: 'warn',
  error: 'error',
  critical: 'error',
  none: undefined,
};

/** Throws at start-up for output bindings the local host cannot honour (they would be lost). */
export function checkOutputBindings(functionName: string, bindings: InvokeOptions['bindings'], trigger: InvokeOptions['trigger']): void {
  const all = [...(bindings.return ? [bindings.return] : []), ...(bindings.extraOutputs ?? [])];
  for (const b of all) {
    if (b.type === 'queue') continue;
    if (b.type === 'http' && trigger === 'http' && b === bindings.return) continue;
    throw new LocalHostError('LOCAL_UNSUPPORTED', `function "${functionName}": output binding type "${b.type}" is not supported by the local host`);
  }
}

/**
 * Runs `handler` under a fresh `InvocationContext`, logs start and end, writes queue outputs.
 * Returns the handler's result; rethrows its error after logging it.
 */
export async function invoke<T>(options: InvokeOptions, handler: (ctx: InvocationContext) => Promise<T> | T): Promise<T> {
  const { functionName, logger, sink } = options;
  const invocationId = randomUUID();
  const log = logger.child({ functionName, invocationId });
  const logHandler = (level: FunctionsLogLevel, ...args: unknown[]) => {
    const ours = LEVELS[level];
    if (!ours) return;
    // Handlers built on src/platform/log.ts already write JSON lines: pass them through unchanged.
    if (args.length === 1 && typeof args[0] === 'string' && args[0].startsWith('{')) {
      sink(ours, scrub(args[0]));
      return;
    }
    log[ours](format(...args));
  };
  const init: InvocationContextInit = {
    invocationId,
    functionName,
    logHandler,
    ...(options.triggerMetadata ? { triggerMetadata: options.triggerMetadata } : {}),
    options: {
      trigger: { type: options.trigger, name: `${options.trigger}Trigger` },
      ...(options.bindings.return ? { return: options.bindings.return } : {}),
      extraOutputs: options.bindings.extraOutputs ?? [],
    },
  };
  const ctx = new functions.InvocationContext(init);
  const startedAtMs = Date.now();
  log.debug('invocation started', { trigger: options.trigger });
  try {
    const result = await handler(ctx);
    await writeQueueOutputs(options, ctx, result);
    log.debug('invocation finished', { durationMs: Date.now() - startedAtMs, outcome: 'succeeded' });
    return result;
  } catch (error) {
    log.error('invocation finished', { durationMs: Date.now() - startedAtMs, outcome: 'failed', error });
    throw error;
  }
}

async function writeQueueOutputs(options: InvokeOptions, ctx: InvocationContext, result: unknown): Promise<void> {
  const pending: Array<{ binding: FunctionOutput; value: unknown }> = [];
  const ret = options.bindings.return;
  if (ret?.type === 'queue' && result !== undefined && result !== null) pending.push({ binding: ret, value: result });
  for (const binding of options.bindings.extraOutputs ?? []) {
    if (binding.type !== 'queue') continue;
    const value = ctx.extraOutputs.get(binding);
    if (value !== undefined && value !== null) pending.push({ binding, value });
  }
  for (const { binding, value } of pending) {
    const queueName = resolveBindingExpression(String(binding.queueName), options.env, `function "${options.functionName}" output queueName`);
    const storage = await options.storageFor(typeof binding.connection === 'string' ? binding.connection : 'AzureWebJobsStorage');
    const queue = storage.queue(queueName);
    await queue.createIfNotExists();
    // An array is several messages, as with the real binding.
    for (const item of Array.isArray(value) ? value : [value]) {
      const text = typeof item === 'string' ? item : JSON.stringify(item);
      await queue.sendMessage(options.messageEncoding === 'base64' ? encodeQueueMessage(text) : text);
    }
  }
}

/** A `Storage` cache keyed by connection setting name, built from app settings on first use. */
export function storageFromEnv(env: Record<string, string | undefined>, connect: (conn: StorageConnection) => Promise<Storage>): StorageForConnection {
  const cache = new Map<string, Promise<Storage>>();
  return (connection) => {
    let storage = cache.get(connection);
    if (!storage) {
      storage = (async () => {
        // The binding's `connection` names a setting prefix; map it onto the AzureWebJobsStorage reader.
        const mapped: Record<string, string | undefined> = {};
        for (const [k, v] of Object.entries(env)) {
          if (k === connection) mapped.AzureWebJobsStorage = v;
          else if (k.startsWith(`${connection}__`)) mapped[`AzureWebJobsStorage${k.slice(connection.length)}`] = v;
        }
        const conn = storageConnectionFromEnv(mapped);
        if (!conn) throw new LocalHostError('LOCAL_BINDING', `storage connection "${connection}" is not set (app setting ${connection} or ${connection}__accountName)`);
        return connect(conn);
      })();
      cache.set(connection, storage);
    }
    return storage;
  };
}
