/**
 * A tiny queue pump for tracker tests: receives what is visible on a queue, decodes it the way the
 * Functions host does (base64 JSON → object) and hands it to a handler; deletes it when the handler
 * returns, leaves it (to reappear) when it throws.
 */
import type { Storage } from '../../src/platform/storage.ts';
import { decodeQueueMessage } from '../../src/platform/storage.ts';

export type QueueHandler = (message: unknown, meta: { dequeueCount: number }) => Promise<void>;

/** One receive round: handles up to 32 visible messages. Returns how many were handled. `errors` collects what handlers threw. */
export async function pumpOnce(storage: Storage, queue: string, handler: QueueHandler, visibilityTimeoutSec = 30, errors?: unknown[]): Promise<number> {
  const q = storage.queue(queue);
  const { receivedMessageItems } = await q.receiveMessages({ numberOfMessages: 32, visibilityTimeout: visibilityTimeoutSec });
  await Promise.all(
    receivedMessageItems.map(async (m) => {
      const text = decodeQueueMessage(m.messageText);
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // the host passes non-JSON text through as a string
      }
      try {
        await handler(body, { dequeueCount: m.dequeueCount });
        await q.deleteMessage(m.messageId, m.popReceipt);
      } catch (error) {
        // left invisible until the visibility timeout, like the host's retry
        errors?.push(error);
      }
    }),
  );
  return receivedMessageItems.length;
}

/** Messages currently on a queue (decoded), without taking them. */
export async function peekAll(storage: Storage, queue: string): Promise<unknown[]> {
  const { peekedMessageItems } = await storage.queue(queue).peekMessages({ numberOfMessages: 32 });
  return peekedMessageItems.map((m) => JSON.parse(decodeQueueMessage(m.messageText)) as unknown);
}

/** Pumps until `done()` holds or `timeoutMs` passes (real time; messages may have visibility delays). */
export async function pumpUntil(
  storage: Storage,
  queues: Record<string, QueueHandler>,
  done: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
  idleMs = 50,
  explain?: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const errors: unknown[] = [];
  while (!(await done())) {
    if (Date.now() > deadline) {
      // A handler that threw leaves its message invisible for the visibility timeout: say so.
      const thrown = errors.map((e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e))).join('; ');
      const state = explain ? `; ${await explain().catch((e: unknown) => `explain failed: ${String(e)}`)}` : '';
      throw new Error(`pumpUntil: condition not met within ${timeoutMs} ms${thrown ? `; handlers threw: ${thrown}` : '; no handler threw'}${state}`);
    }
    let handled = 0;
    for (const [queue, handler] of Object.entries(queues)) handled += await pumpOnce(storage, queue, handler, 30, errors);
    if (handled === 0) await new Promise((r) => setTimeout(r, idleMs));
  }
}
