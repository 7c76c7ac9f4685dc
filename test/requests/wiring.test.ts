import { describe, expect, inject, it } from 'vitest';
import { Storage, decodeQueueMessage } from '../../src/platform/storage.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { CapacityMemory } from '../../src/snapshots/capacity-store.ts';
import { createRequestPipeline } from '../../src/requests/pipeline.ts';
import { loadConfig } from '../../src/platform/config.ts';
import type { CapacityMemoryApi } from '../../src/requests/submit.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { uniqueNames } from '../helpers/names.ts';
import { FakeCycleCloud, FakeTracker, fixedSnapshots } from './fakes.ts';

describe('createRequestPipeline on azurite', () => {
  it('admits over HTTP, enqueues base64 JSON, and the queue handler submits it with the real capacity memory', async () => {
    // Prepare
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    const names = uniqueNames();
    await storage.ensure({ tables: [names.requestsTable, names.stateTable, names.capacityTable], queues: [names.scaleQueue] });
    const now = () => Date.parse('2026-11-28T01:00:10.000Z');
    const capacity: CapacityMemoryApi = new CapacityMemory(storage, names);
    const cc = new FakeCycleCloud();
    cc.limitNext.set('ondemand', 1);
    const pipeline = createRequestPipeline({
      storage,
      names,
      cyclecloud: cc,
      tracker: new FakeTracker(),
      capacity,
      now,
      fastPathConcurrency: 0,
      snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(now() - 1000).toISOString() })),
      config: (() => {
        const c = loadConfig({}, { mode: 'local' });
        return { pausedBySetting: c.scaleOutPaused, deadlineMs: c.requestDeadlineMs, maxReplanAttempts: c.maxReplanAttempts, snapshotMaxAgeMs: c.snapshotMaxAgeMs };
      })(),
    });
    const msg = { kind: 'scale' as const, requestId: 'wired-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] }] };
    // Act
    const admitted = await pipeline.submitRequest(msg);
    const [queued] = (await storage.queue(names.scaleQueue).receiveMessages({ numberOfMessages: 1 })).receivedMessageItems;
    const body = JSON.parse(decodeQueueMessage(queued!.messageText));
    const result = await pipeline.handle(body, { messageId: queued!.messageId, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: names.scalePoisonQueue }, silentLogger);
    // Assess
    expect(admitted.outcome).toBe('created');
    expect(body).toEqual(msg);
    expect(result.action).toBe('submitted');
    expect(cc.appliedCreates).toBe(1);
    const backoffs = await capacity.active('hpc', now());
    expect(backoffs.map((b) => b.machineType)).toEqual(['Standard_HC44rs']);
    // the loose remainder waits: a continue message is on the queue, invisible for now
    expect((await pipeline.ledger.get('wired-1'))!.nextAttemptAtMs).toBe(now() + 15_000);
    expect((await storage.queue(names.scaleQueue).getProperties()).approximateMessagesCount).toBe(2);
  });
});

describe('the HTTP fast path', () => {
  it('starts a request admitted over HTTP at once; its queue message then finds it submitted and creates nothing more', async () => {
    // Prepare
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    const names = uniqueNames();
    await storage.ensure({ tables: [names.requestsTable, names.stateTable, names.capacityTable], queues: [names.scaleQueue] });
    const now = () => Date.parse('2026-11-28T01:00:10.000Z');
    const cc = new FakeCycleCloud();
    const pipeline = createRequestPipeline({
      storage,
      names,
      cyclecloud: cc,
      tracker: new FakeTracker(),
      capacity: new CapacityMemory(storage, names),
      now,
      fastPathConcurrency: 2,
      snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(now() - 1000).toISOString() })),
    });
    const msg = { kind: 'scale' as const, requestId: 'fast-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] }] };
    // Act: admitted, and the create goes out without anyone reading the queue
    expect((await pipeline.submitRequest(msg)).outcome).toBe('created');
    for (let i = 0; i < 100 && cc.appliedCreates === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const [queued] = (await storage.queue(names.scaleQueue).receiveMessages({ numberOfMessages: 1 })).receivedMessageItems;
    const later = await pipeline.handle(
      JSON.parse(decodeQueueMessage(queued!.messageText)),
      { messageId: queued!.messageId, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: names.scalePoisonQueue },
      silentLogger,
    );
    // Assess
    expect(cc.appliedCreates).toBe(1);
    expect(later.action).toBe('tracking');
    expect(cc.calls.filter((c) => c.method === 'createNodes')).toHaveLength(1);
    expect((await pipeline.ledger.getRecord('fast-1'))!.state).toBe('submitted');
  });
});
