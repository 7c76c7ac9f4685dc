/**
 * The storage-queue trigger with the Functions host's semantics (host.json `extensions.queues`):
 * batches processed in parallel, a new batch when in-flight work drops to `newBatchThreshold`,
 * exponential polling backoff up to `maxPollingInterval` while empty, base64 (or raw) message text
 * that becomes an object when it is JSON, delete on success, visible again after
 * `visibilityTimeout` on failure, and the original text moved to `<queue>-poison` once the attempt
 * with `dequeueCount == maxDequeueCount` fails.
 */
import type { QueueClient, DequeuedMessageItem } from '@azure/storage-queue';
import type { Logger } from '../platform/log.ts';
import type { QueueSettings } from './host-config.ts';

/** The first empty-queue wait; doubles up to `maxPollingIntervalMs` (the host starts near 100 ms). */
const MIN_POLL_MS = 100;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface QueuePollerOptions {
  functionName: string;
  queue: QueueClient;
  poison: QueueClient;
  settings: QueueSettings;
  /** Receive visibility, longer than the function timeout so a message is not handed out twice. */
  receiveVisibilityMs: number;
  logger: Logger;
  /** Runs the function for one message; throws when the function failed. */
  run(item: unknown, triggerMetadata: Record<string, unknown>): Promise<void>;
}

/** Trigger metadata as the host passes it (camelCase, JSON-friendly values). */
export function queueTriggerMetadata(m: DequeuedMessageItem, text: string): Record<string, unknown> {
  return {
    dequeueCount: m.dequeueCount,
    id: m.messageId,
    popReceipt: m.popReceipt,
    insertionTime: m.insertedOn.toISOString(),
    expirationTime: m.expiresOn.toISOString(),
    nextVisibleTime: m.nextVisibleOn.toISOString(),
    queueTrigger: text,
  };
}

/** Decodes message text like the host: base64 (strict), then JSON if it parses, else the string. */
export function decodeQueueItem(messageText: string, encoding: 'base64' | 'none'): { text: string; item: unknown } {
  let text = messageText;
  if (encoding === 'base64') {
    const compact = messageText.replace(/\s+/g, '');
    if (compact.length % 4 !== 0 || !BASE64.test(compact)) {
      throw new Error('queue message is not valid base64 (host.json messageEncoding is base64)');
    }
    text = Buffer.from(compact, 'base64').toString('utf8');
  }
  try {
    return { text, item: JSON.parse(text) as unknown };
  } catch {
    return { text, item: text };
  }
}

/** Polls one queue for one function; `start()` then `stop(graceMs)`. */
export class QueuePoller {
  readonly #o: QueuePollerOptions;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  readonly #stopped = new Promise<void>((resolve) => this.#stop.signal.addEventListener('abort', () => resolve(), { once: true }));
  #loop: Promise<void> | undefined;
  #poisonReady: Promise<unknown> | undefined;

  constructor(options: QueuePollerOptions) {
    this.#o = options;
  }

  /** Creates the queue if missing and starts polling. */
  async start(): Promise<void> {
    await this.#o.queue.createIfNotExists();
    this.#loop = this.#poll();
  }

  /** Stops receiving, then waits up to `graceMs` for in-flight invocations. */
  async stop(graceMs: number): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    if (this.#inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.allSettled([...this.#inFlight]), timeout]);
    clearTimeout(timer);
    if (this.#inFlight.size > 0) {
      this.#o.logger.warn('stopped with invocations still running', { functionName: this.#o.functionName, running: this.#inFlight.size });
    }
  }

  async #poll(): Promise<void> {
    const { settings, queue, logger, functionName } = this.#o;
    const signal = this.#stop.signal;
    let delayMs = MIN_POLL_MS;
    while (!signal.aborted) {
      if (this.#inFlight.size > settings.newBatchThreshold) {
        await Promise.race([...this.#inFlight, this.#stopped]);
        continue;
      }
      let items: DequeuedMessageItem[];
      try {
        const res = await queue.receiveMessages({
          numberOfMessages: settings.batchSize,
          visibilityTimeout: Math.min(7 * 24 * 3600, Math.ceil(this.#o.receiveVisibilityMs / 1000)),
          abortSignal: signal,
        });
        items = res.receivedMessageItems;
      } catch (error) {
        if (signal.aborted) break;
        logger.warn('queue receive failed', { functionName, queue: queue.name, error });
        items = [];
      }
      if (items.length === 0) {
        await sleep(delayMs, signal);
        delayMs = Math.min(delayMs * 2, settings.maxPollingIntervalMs);
        continue;
      }
      delayMs = MIN_POLL_MS;
      for (const m of items) {
        const p = this.#process(m).finally(() => this.#inFlight.delete(p));
        this.#inFlight.add(p);
      }
    }
  }

  async #process(m: DequeuedMessageItem): Promise<void> {
    const { settings, queue, logger, functionName } = this.#o;
    const at = { functionName, queue: queue.name, messageId: m.messageId, dequeueCount: m.dequeueCount };
    try {
      // Delivered more often than allowed (a host died mid-attempt): poison without running it.
      if (m.dequeueCount > settings.maxDequeueCount) {
        await this.#moveToPoison(m);
        return;
      }
      let ok = false;
      let decoded: ReturnType<typeof decodeQueueItem> | undefined;
      try {
        decoded = decodeQueueItem(m.messageText, settings.messageEncoding);
      } catch (error) {
        // The host fails such a message like a failed invocation (retried, then poisoned).
        logger.error('queue message could not be decoded', { ...at, error });
      }
      if (decoded) {
        try {
          await this.#o.run(decoded.item, queueTriggerMetadata(m, decoded.text));
          ok = true;
        } catch {
          // `run` has logged the failed invocation.
        }
      }
      if (ok) {
        await queue.deleteMessage(m.messageId, m.popReceipt);
      } else if (m.dequeueCount >= settings.maxDequeueCount) {
        await this.#moveToPoison(m);
      } else {
        await queue.updateMessage(m.messageId, m.popReceipt, undefined, Math.ceil(settings.visibilityTimeoutMs / 1000));
      }
    } catch (error) {
      // Storage failed while settling the message: it reappears after its receive visibility.
      logger.warn('queue message could not be settled', { ...at, error });
    }
  }

  async #moveToPoison(m: DequeuedMessageItem): Promise<void> {
    const { poison, queue, logger, functionName } = this.#o;
    this.#poisonReady ??= poison.createIfNotExists();
    await this.#poisonReady;
    await poison.sendMessage(m.messageText);
    await queue.deleteMessage(m.messageId, m.popReceipt);
    logger.warn('queue message moved to poison queue', { functionName, queue: queue.name, poisonQueue: poison.name, messageId: m.messageId, dequeueCount: m.dequeueCount });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
