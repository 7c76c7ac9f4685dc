/**
 * Issue 14 #7: a message that is not base64 was retried five times by the host and poisoned with
 * no record and no count. The snapshot timer's sweep now records and counts it (or, for raw JSON,
 * re-sends it encoded), on a real azurite queue.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/platform/log.ts';
import { decodeQueueMessage, encodeQueueMessage, Storage } from '../../src/platform/storage.ts';
import { hostCanDecode, sweepUndecodablePoison } from '../../src/requests/poison-sweep.ts';
import { decodeQueueItem } from '../../src/local/queue-trigger.ts';
import { MemoryLedger } from '../ledger/memory-ledger.ts';
import { FakeState } from '../requests/fakes.ts';
import { uniqueNames } from '../helpers/names.ts';

let storage: Storage;
beforeAll(() => {
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
});

describe('#7 messages the host cannot decode', () => {
  it('agrees with the host about what is decodable', () => {
    for (const text of ['not base64!!', '{"requestId":"x"}', 'abc', encodeQueueMessage({ a: 1 }), `  ${encodeQueueMessage('x')}\n`]) {
      let hostDecodes = true;
      try {
        decodeQueueItem(text, 'base64');
      } catch {
        hostDecodes = false;
      }
      expect(hostCanDecode(text), text).toBe(hostDecodes);
    }
  });

  it('records and counts garbage, re-sends raw JSON encoded, and leaves base64 messages in the poison queue', async () => {
    // Prepare: what the host would have poisoned
    const names = uniqueNames();
    await storage.ensure({ queues: [names.scaleQueue, names.scalePoisonQueue] });
    const poison = storage.queue(names.scalePoisonQueue);
    const garbage = await poison.sendMessage('not base64 at all!!');
    await poison.sendMessage('{"requestId":"raw-1","cluster":"hpc","demands":[{"nodearray":"ondemand","count":1}]}');
    await poison.sendMessage(encodeQueueMessage({ requestId: 'transient-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] }));
    const ledger = new MemoryLedger();
    const state = new FakeState();

    // Act
    const result = await sweepUndecodablePoison({
      storage,
      scaleQueue: names.scaleQueue,
      poisonQueue: names.scalePoisonQueue,
      ledger,
      state,
      now: () => Date.now(),
      logger: silentLogger,
    });

    // Assess
    expect(result).toEqual({ resent: 1, rejected: 1 });
    const record = await ledger.get(`msg-${garbage.messageId}`);
    expect(record?.record).toMatchObject({ state: 'rejected', reason: expect.stringMatching(/not base64/) });
    expect(state.counts.rejectedMessages).toBe(1);
    const resent = (await storage.queue(names.scaleQueue).peekMessages({ numberOfMessages: 32 })).peekedMessageItems;
    expect(resent.map((m) => JSON.parse(decodeQueueMessage(m.messageText)).requestId)).toEqual(['raw-1']);
    await new Promise((r) => setTimeout(r, 1_500)); // the one left alone is visible again
    const left = (await poison.peekMessages({ numberOfMessages: 32 })).peekedMessageItems;
    expect(left.map((m) => JSON.parse(decodeQueueMessage(m.messageText)).requestId)).toEqual(['transient-1']);
  });

  it('does nothing when there is no poison queue yet', async () => {
    const names = uniqueNames();
    const result = await sweepUndecodablePoison({
      storage,
      scaleQueue: names.scaleQueue,
      poisonQueue: names.scalePoisonQueue,
      ledger: new MemoryLedger(),
      state: new FakeState(),
      now: () => 0,
      logger: silentLogger,
    });
    expect(result).toEqual({ resent: 0, rejected: 0 });
  });
});
