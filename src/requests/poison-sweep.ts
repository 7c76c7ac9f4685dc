/**
 * Messages the Functions host itself cannot hand to the scale-queue function. With host.json
 * `messageEncoding: base64` (docs/api.md §3) the host fails a message that is not base64 before any
 * of our code runs, retries it `maxDequeueCount` times and moves it to `<queue>-poison` with no
 * record (Azure's behaviour, mirrored by the local host). The snapshot timer repairs that here:
 *
 * - a poison message that is raw JSON (a sender that forgot the base64 step) is re-sent to the
 *   scale queue base64-encoded, so it is carried out after all (logged);
 * - any other message that is not base64 is recorded as `rejected` under `msg-<queue message id>`,
 *   counted in `rejectedMessages` (`/api/health`), logged with its id, and removed;
 * - base64 messages (poisoned for transient reasons, with their record saying why) stay.
 */
import type { Logger } from '../platform/log.ts';
import type { Storage } from '../platform/storage.ts';
import { encodeQueueMessage, statusOf } from '../platform/storage.ts';
import type { RequestLedgerApi } from '../ledger/types.ts';
import type { IntakeState } from './intake.ts';
import { decodeIntakeMessage } from './intake-guards.ts';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface PoisonSweepDeps {
  storage: Pick<Storage, 'queue'>;
  scaleQueue: string;
  poisonQueue: string;
  ledger: Pick<RequestLedgerApi, 'reject'>;
  state: Pick<IntakeState, 'increment'>;
  now: () => number;
  logger: Logger;
}

/** True when the host can base64-decode `text` (its rule: strict base64, whitespace ignored). */
export function hostCanDecode(text: string): boolean {
  const compact = text.replace(/\s+/g, '');
  return compact.length % 4 === 0 && BASE64.test(compact);
}

/** One pass over up to `max` poison messages; returns what it did. */
export async function sweepUndecodablePoison(deps: PoisonSweepDeps, max = 32): Promise<{ resent: number; rejected: number }> {
  const poison = deps.storage.queue(deps.poisonQueue);
  let items: Awaited<ReturnType<typeof poison.receiveMessages>>['receivedMessageItems'];
  try {
    // Short visibility: messages left alone are visible again a moment later.
    items = (await poison.receiveMessages({ numberOfMessages: Math.min(32, max), visibilityTimeout: 1 })).receivedMessageItems;
  } catch (error) {
    if (statusOf(error) === 404) return { resent: 0, rejected: 0 };
    throw error;
  }
  let resent = 0;
  let rejected = 0;
  for (const m of items) {
    if (hostCanDecode(m.messageText)) continue;
    const decoded = decodeIntakeMessage(m.messageText);
    if (decoded.ok) {
      await deps.storage.queue(deps.scaleQueue).sendMessage(encodeQueueMessage(decoded.body));
      deps.logger.warn('raw JSON message re-sent base64-encoded (host.json messageEncoding is base64)', { queueMessageId: m.messageId, poisonQueue: deps.poisonQueue });
      resent++;
    } else {
      const key = `msg-${m.messageId}`;
      const reason = `the message is not base64 (host.json messageEncoding is base64) and not JSON; removed from ${deps.poisonQueue}`;
      await deps.ledger.reject(key, null, reason, [{ path: '', message: reason }], deps.now());
      await deps.state.increment('rejectedMessages');
      deps.logger.warn('undecodable message removed', { queueMessageId: m.messageId, recordedAs: key, poisonQueue: deps.poisonQueue });
      rejected++;
    }
    await poison.deleteMessage(m.messageId, m.popReceipt);
  }
  return { resent, rejected };
}
