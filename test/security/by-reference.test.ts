/**
 * Issue 14 #1: bodies from about 48 KiB to the 256 KiB limit got 500 ("retry later") because the
 * storage queue refused the message (64 KiB), and were then carried out anyway by the sweeper. Now
 * such a request travels by reference: the ledger holds it, the queue message names it.
 * Real azurite queue (its 64 KiB limit is Azure's), real ledger, fake CycleCloud.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/platform/log.ts';
import { decodeQueueMessage, Storage } from '../../src/platform/storage.ts';
import { createRequestPipeline } from '../../src/requests/pipeline.ts';
import { BY_REFERENCE_REASON, MAX_QUEUE_MESSAGE_CHARS } from '../../src/requests/intake-guards.ts';
import { submitRequest } from '../../src/requests/intake.ts';
import { MemoryLedger } from '../ledger/memory-ledger.ts';
import { FakeCapacity, FakeCycleCloud, FakeTracker, fixedSnapshots } from '../requests/fakes.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { uniqueNames } from '../helpers/names.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { fakeDeps } from '../http/fakes.ts';
import { post } from './harness.ts';

let storage: Storage;
beforeAll(() => {
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
});

/** A valid scale request of about `kib` KiB: demands padded with nodeAttributes within their limit. */
function bigRequest(requestId: string, kib: number): string {
  const demands = Array.from({ length: Math.ceil(kib / 15) }, (_, i) => ({ nodearray: 'ondemand', count: 1, jobId: `j${i}`, nodeAttributes: { pad: 'p'.repeat(15 * 1024 - 64) } }));
  return JSON.stringify({ requestId, cluster: 'hpc', demands });
}

describe('#1 a request too large for a queue message travels by reference', () => {
  it.each([60, 200, 250])('accepts a valid %i KiB body with 202 and carries it out', async (kib) => {
    // Prepare
    const names = uniqueNames();
    await storage.ensure({ tables: [names.requestsTable, names.stateTable], queues: [names.scaleQueue] });
    const now = Date.parse('2026-11-28T01:00:00.000Z');
    const cyclecloud = new FakeCycleCloud();
    const pipeline = createRequestPipeline({
      storage,
      names,
      cyclecloud,
      tracker: new FakeTracker(),
      snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(now - 5_000).toISOString() })),
      capacity: new FakeCapacity(),
      now: () => now,
    });
    const { deps } = fakeDeps({ submitRequest: (m) => pipeline.submitRequest(m), now: () => now });
    const raw = bigRequest(`big-${kib}`, kib);
    expect(Buffer.byteLength(raw)).toBeGreaterThan(48 * 1024);
    expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(256 * 1024);

    // Act
    const answer = await post('scale-requests', raw, {}, { deps, world: fakeDeps().world });
    const received = await storage.queue(names.scaleQueue).receiveMessages({ numberOfMessages: 32 });

    // Assess: accepted, and one small message that names the stored request
    expect(answer.status).toBe(202);
    expect(received.receivedMessageItems).toHaveLength(1);
    const text = received.receivedMessageItems[0]!.messageText;
    expect(text.length).toBeLessThanOrEqual(MAX_QUEUE_MESSAGE_CHARS);
    const message = JSON.parse(decodeQueueMessage(text)) as Record<string, unknown>;
    expect(message).toEqual({ $scaler: 'continue', requestId: `big-${kib}`, reason: BY_REFERENCE_REASON });

    // Act: the queue function runs the message
    const result = await pipeline.handle(message, { messageId: 'm1', dequeueCount: 1, maxDequeueCount: 5, poisonQueue: names.scalePoisonQueue }, silentLogger);

    // Assess: the whole request was read back from the ledger and planned; what fits the seed's
    // capacity went to CycleCloud with its nodeAttributes, the rest waits with a reason
    expect(result).toMatchObject({ action: 'submitted' });
    const record = await pipeline.ledger.getRecord(`big-${kib}`);
    expect(record!.demands).toHaveLength(Math.ceil(kib / 15));
    const create = cyclecloud.calls.find((c) => c.method === 'createNodes')!.body as { sets: { count: number; nodeAttributes?: { pad?: string } }[] };
    expect(create.sets.length).toBeGreaterThan(0);
    expect(create.sets.every((s) => s.nodeAttributes?.pad?.length === 15 * 1024 - 64)).toBe(true);
  });

  it('answers 202 and leaves the request to the sweeper when the send fails after the admit (never "failed" for a request that then runs)', async () => {
    const logs = captureLogs();
    const ledger = new MemoryLedger();
    const queue = { send: async () => Promise.reject(Object.assign(new Error('queue unavailable'), { statusCode: 503 })) };
    const message = { kind: 'scale' as const, requestId: 'send-fails', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
    const result = await submitRequest({ ledger, queue, now: () => 0, logger: logs.logger }, message);
    expect(result.outcome).toBe('created');
    expect(result.record.state).toBe('queued');
    expect(logs.entries()).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/sweeper/) }));
  });
});
