/**
 * The scale queue as the submission path sends to it: base64 JSON (the Functions host's default
 * `messageEncoding`), optionally invisible for a while (Azure caps the delay at 7 days).
 */
import type { Storage } from '../platform/storage.ts';
import { encodeQueueMessage } from '../platform/storage.ts';
import type { ContinueMessage, RequestPipelinePort } from '../tracking/types.ts';
import type { QueueSender } from './submit.ts';

const MAX_VISIBILITY_S = 7 * 24 * 3600;

/** A {@link QueueSender} over `storage.queue(queueName)`. */
export function storageQueueSender(storage: Pick<Storage, 'queue'>, queueName: string): QueueSender {
  return {
    async send(body, options) {
      const delayS = Math.min(MAX_VISIBILITY_S, Math.max(0, Math.ceil((options?.visibilityDelayMs ?? 0) / 1000)));
      await storage.queue(queueName).sendMessage(encodeQueueMessage(body), delayS > 0 ? { visibilityTimeout: delayS } : {});
    },
  };
}

/** The tracker's way back into the pipeline: a `continue` message for the request on the scale queue. */
export function continuePort(queue: QueueSender): RequestPipelinePort {
  return {
    async continueRequest(requestId, reason) {
      const body: ContinueMessage = { $scaler: 'continue', requestId, reason };
      await queue.send(body);
    },
  };
}
