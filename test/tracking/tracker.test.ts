import { afterAll, beforeAll, beforeEach, describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import type { StorageNames } from '../../src/platform/names.ts';
import { verifySignature } from '../../src/platform/signature.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import type { LedgerEntry, RequestLedgerApi } from '../../src/ledger/types.ts';
import { applySubmission, createRequestId, markCompensated, outcomeOf } from '../../src/ledger/record.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { createCallbackSender } from '../../src/tracking/callbacks.ts';
import { continuePort, storageQueueSender } from '../../src/requests/queue.ts';
import { trackerTerminateRequestId } from '../../src/ledger/record.ts';
import { createTracker, type TrackerConfig, type TrackerDeps } from '../../src/tracking/tracker.ts';
import { TIMED_OUT_STATUS } from '../../src/tracking/machine.ts';
import type { TrackStart } from '../../src/tracking/types.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { uniqueNames } from '../helpers/names.ts';
import { FakeCycleCloud } from './fake-cyclecloud.ts';
import type { TrackerRecord } from '../../src/tracking/store.ts';
import { unpackJson } from '../../src/platform/table-json.ts';
import { peekAll, pumpOnce, pumpUntil } from './pump.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import { startReceiver, type Receiver } from './receiver.ts';

/** The outcome the ledger records for the latest node of that name. */
const outcomeByName = (e: LedgerEntry, name: string) => {
  const n = e.record.nodes.findLast((x) => x.name === name);
  return n ? outcomeOf(e, n) : undefined;
};

const T0 = Date.now();
let clock = T0;
let names: StorageNames;
let storage: Storage;
let ledger: RequestLedger;
let cc: FakeCycleCloud;
const logs = captureLogs();
const log = logs.logger;

type Set = TrackStart['sets'][number];
const looseSet = (added = 2): Set => ({
  nodearray: 'ondemand',
  machineType: 'Standard_F32s_v2',
  placementGroupId: null,
  count: 2,
  added,
  colocated: false,
  demands: [{ index: 0, count: 2 }],
});
const gangSet = (): Set => ({
  nodearray: 'mpi',
  machineType: 'Standard_HB120rs_v3',
  placementGroupId: 'pg-a',
  count: 3,
  added: 3,
  colocated: true,
  demands: [{ index: 0, count: 3 }],
});

/** Admits a scale request and records its create as accepted, as the pipeline would. */
async function submitted(requestId: string, operationId: string, sets: Set[], callbackUrl?: string): Promise<TrackStart> {
  const message: ScaleRequest = {
    kind: 'scale',
    requestId,
    cluster: 'hpc',
    demands: [{ nodearray: sets[0]!.nodearray, count: sets[0]!.count, ...(sets[0]!.colocated ? { colocated: true } : {}) }],
    ...(callbackUrl ? { callbackUrl } : {}),
  };
  await ledger.admit(message, clock);
  const cycleCloudRequestId = createRequestId(requestId, 0);
  ccOf.set(operationId, cycleCloudRequestId);
  await ledger.update(requestId, (e) =>
    applySubmission(e, { generation: 0, cycleCloudRequestId, state: 'accepted', operationId, sets: sets.map((s) => ({ ...s, message: null })), submittedAtMs: clock }, clock),
  );
  return { cluster: 'hpc', operationId, cycleCloudRequestId, requestId, action: 'create', generation: 0, sets };
}

function tracker(over: Partial<TrackerDeps> = {}, config: Partial<TrackerConfig> = {}) {
  const enqueued: string[] = [];
  const t = createTracker({
    cyclecloud: cc,
    storage,
    names,
    ledger,
    pipeline: continuePort(storageQueueSender(storage, names.scaleQueue)),
    now: () => clock,
    random: () => 0,
    callbacks: { enqueue: async (id) => void enqueued.push(id) },
    config,
    logger: log,
    ...over,
  });
  return Object.assign(t, { enqueued });
}

/** The tracker is keyed by CycleCloud requestId; tests name operations by the fake's operation ids. */
const ccOf = new Map<string, string>();
async function recordOf(operationId: string): Promise<TrackerRecord | null> {
  for await (const e of storage.table(names.operationsTable).listEntities<Record<string, unknown>>()) {
    if (e.partitionKey === '$active') continue; // the active index (store.ts)
    const doc = unpackJson<TrackerRecord>(e);
    if (doc.state.operationId === operationId) return { ...doc, ...(e.etag ? { etag: e.etag } : {}) };
  }
  return null;
}
async function wake(t: ReturnType<typeof tracker>, operationId: string): Promise<void> {
  const rec = await recordOf(operationId);
  const cycleCloudRequestId = rec?.state.cycleCloudRequestId ?? ccOf.get(operationId) ?? operationId;
  await t.handleTrackerMessage({ $tracker: 'poll', cluster: 'hpc', cycleCloudRequestId }, { dequeueCount: 1 }, log);
}
const entry = async (id: string): Promise<LedgerEntry> => (await ledger.get(id))!;

beforeEach(async () => {
  clock = T0;
  names = uniqueNames();
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
  await storage.ensure({ tables: [names.requestsTable, names.stateTable], queues: [names.scaleQueue, names.callbackQueue, names.trackerQueue] });
  ledger = new RequestLedger({ storage, names, now: () => clock });
  cc = new FakeCycleCloud();
  cc.requestIdOf = (operationId) => ccOf.get(operationId);
  logs.clear();
});

describe('tracker', () => {
  it('follows a create to Ready and settles the request fulfilled, with a callback', async () => {
    // Prepare
    const t = tracker();
    cc.addCreate('op-1', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    const start = await submitted('job-1', 'op-1', [looseSet()], 'https://scheduler.example.com/hook');
    await t.start(start);
    await t.start(start); // idempotent: one record, one chain
    // Act
    clock += 5_000;
    await wake(t, 'op-1');
    const mid = await entry('job-1');
    cc.set('ondemand-1', { Status: 'Ready', PrivateIp: '10.0.0.4' });
    cc.set('ondemand-2', { Status: 'Ready', PrivateIp: '10.0.0.5' });
    clock += 15_000;
    await wake(t, 'op-1');
    // Assess
    expect(mid.record.state).toBe('submitted');
    expect(mid.record.nodes.map((n) => [n.name, n.status, n.demand])).toEqual([
      ['ondemand-1', 'Acquiring', 0],
      ['ondemand-2', 'Acquiring', 0],
    ]);
    const done = await entry('job-1');
    expect(done.record.state).toBe('fulfilled');
    expect(done.record.demands[0]).toMatchObject({ created: 2, ready: 2 });
    expect(done.record.operations).toEqual([expect.objectContaining({ operationId: 'op-1', state: 'done' })]);
    expect(t.enqueued).toEqual(['job-1']);
    expect(cc.count('listNodes')).toBe(2);
    const metrics = logs.entries().filter((l) => typeof l.metric === 'string');
    expect(metrics.map((m) => [m.metric, m.value])).toEqual([
      ['nodes_ready', 2],
      ['nodes_failed', 0],
      ['cyclecloud_calls', 2],
    ]);
    expect((await recordOf('op-1'))?.state.final).toBe(true);
  });

  it('at start, compensates a colocated set CycleCloud filled only in part: one terminate under <id>-g0-c by NodeId, tracked', async () => {
    // Prepare: CycleCloud added 2 of the 3 nodes of the gang
    const t = tracker();
    cc.addCreate(
      'op-20',
      [1, 2].map((i) => ({ Name: `mpi-${i}`, Template: 'mpi', MachineType: 'Standard_HB120rs_v3', PlacementGroupId: 'pg-a' })),
    );
    const start = await submitted('job-20', 'op-20', [{ ...gangSet(), added: 2 }]);
    // Act: taken over, then again (a redelivered submission)
    await t.start(start);
    await t.start(start);
    // Assess
    expect(cc.calls.filter((c) => c.method === 'terminateNodes')).toEqual([{ method: 'terminateNodes', names: ['mpi-1', 'mpi-2'], requestId: 'job-20-g0-c' }]);
    const e = await entry('job-20');
    expect(e.compensations).toEqual([
      expect.objectContaining({
        demandIndex: 0,
        placementGroupId: 'pg-a',
        nodeNames: ['mpi-1', 'mpi-2'],
        nodeKeys: ['id:id-mpi-1', 'id:id-mpi-2'],
        added: 2,
        cycleCloudRequestId: 'job-20-g0-c',
        operationId: expect.stringMatching(/^term-/),
      }),
    ]);
    expect(e.record.demands[0]!.reason).toContain('added only 2 of 3');
    expect(e.record.operations.map((o) => [o.cycleCloudRequestId, o.action])).toEqual([
      ['job-20-g0', 'create'],
      ['job-20-g0-c', 'terminate'],
    ]);
    const term = await recordOf(e.compensations![0]!.operationId!);
    expect(term?.state.nodes.map((n) => [n.name, n.id])).toEqual([
      ['mpi-1', 'id-mpi-1'],
      ['mpi-2', 'id-mpi-2'],
    ]);
  });

  it('terminates a colocated set with a failed node and asks for a re-plan', async () => {
    // Prepare
    const t = tracker();
    cc.addCreate(
      'op-2',
      [1, 2, 3].map((i) => ({ Name: `mpi-${i}`, Template: 'mpi', MachineType: 'Standard_HB120rs_v3', PlacementGroupId: 'pg-a' })),
    );
    await t.start(await submitted('job-2', 'op-2', [gangSet()]));
    cc.set('mpi-1', { Status: 'Ready' });
    cc.set('mpi-2', { Status: 'Failed', StatusMessage: 'OSProvisioningTimedOut' });
    // Act
    clock += 5_000;
    await wake(t, 'op-2');
    // Assess
    const terminates = cc.calls.filter((c) => c.method === 'terminateNodes');
    expect(terminates).toEqual([{ method: 'terminateNodes', names: ['mpi-1', 'mpi-2', 'mpi-3'], requestId: trackerTerminateRequestId('job-2', 0, 'c0') }]);
    expect(await peekAll(storage, names.scaleQueue)).toEqual([expect.objectContaining({ $scaler: 'continue', requestId: 'job-2' })]);
    const e = await entry('job-2');
    expect(e.compensations).toEqual([expect.objectContaining({ demandIndex: 0, placementGroupId: 'pg-a', nodeNames: ['mpi-1', 'mpi-2', 'mpi-3'], operationId: 'term-1' })]);
    expect(e.record.demands[0]!.created).toBe(0);
    expect(e.record.demands[0]!.reason).toContain('mpi-2');
    // The terminate is tracked to the end too.
    expect((await recordOf('term-1'))?.state.nodes.map((n) => n.name)).toEqual(['mpi-1', 'mpi-2', 'mpi-3']);
    for (const n of ['mpi-1', 'mpi-2', 'mpi-3']) cc.remove(n);
    clock += 5_000;
    await wake(t, 'term-1');
    const after = await entry('job-2');
    expect(after.record.operations.find((o) => o.operationId === 'term-1')?.state).toBe('done');
    expect(after.record.nodes.find((n) => n.name === 'mpi-2')?.status).toBe('Failed');
  });

  it('reports a node held past the boot deadline as timed out and terminates it', async () => {
    // Prepare
    const t = tracker({}, { bootTimeoutMs: 60_000 });
    cc.addCreate('op-3', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    await t.start(await submitted('job-3', 'op-3', [looseSet()]));
    clock += 5_000;
    cc.set('ondemand-1', { Status: 'Ready' });
    await wake(t, 'op-3');
    // Act: ondemand-2 never leaves Preparing.
    cc.set('ondemand-2', { Status: 'Preparing' });
    clock = T0 + 60_000;
    await wake(t, 'op-3');
    // Assess
    expect(cc.calls.filter((c) => c.method === 'terminateNodes')).toEqual([
      { method: 'terminateNodes', names: ['ondemand-2'], requestId: trackerTerminateRequestId('job-3', 0, 'to') },
    ]);
    const e = await entry('job-3');
    expect(outcomeByName(e, 'ondemand-2')).toBe('timed_out');
    expect(e.record.nodes.find((n) => n.name === 'ondemand-2')?.status).toBe(TIMED_OUT_STATUS);
    expect(e.record.demands[0]!.reason).toContain('boot deadline');
    // The terminate finishing keeps the timed-out verdict, and the pipeline is asked to look again.
    cc.remove('ondemand-2');
    clock += 5_000;
    await wake(t, 'term-1');
    const after = await entry('job-3');
    expect(outcomeByName(after, 'ondemand-2')).toBe('timed_out');
    expect(await peekAll(storage, names.scaleQueue)).toEqual([expect.objectContaining({ $scaler: 'continue', requestId: 'job-3' })]);
  });

  it('a create does not write off its gang because an earlier gang of the same group name was compensated', async () => {
    // Prepare: pg-a was compensated by a tracker (not by this create's submission); the create's first poll fails
    const t = tracker();
    cc.addCreate('op-7', [{ Name: 'mpi-1', Template: 'mpi', MachineType: 'Standard_HB120rs_v3', PlacementGroupId: 'pg-a' }]);
    await t.start(await submitted('job-7', 'op-7', [gangSet()]));
    await ledger.update('job-7', (e) => {
      const x = markCompensated(e, { demandIndex: 0, placementGroupId: 'pg-a', nodeNames: ['mpi-9'], nodeKeys: ['id:other'], reason: 'broken earlier' }, clock);
      x.compensations![0]!.cycleCloudRequestId = 'job-7-g0-c0';
      return x;
    });
    cc.faults.listNodes = [new CycleCloudError('CC_UNAVAILABLE', 'HTTP 503', { status: 503 })];
    // Act
    clock += 5_000;
    await wake(t, 'op-7');
    // Assess: still following it (it has not seen its nodes yet)
    expect((await recordOf('op-7'))!.state.final).toBe(false);
  });

  it('keeps the terminate of a timed-out node pending until CycleCloud no longer has the node', async () => {
    // Prepare: ondemand-2 times out and is being terminated (still Terminating at the terminate's first poll)
    const t = tracker({}, { bootTimeoutMs: 60_000 });
    cc.addCreate('op-8', [
      { Name: 'ondemand-1', Status: 'Ready' },
      { Name: 'ondemand-2', Status: 'Preparing' },
    ]);
    await t.start(await submitted('job-8', 'op-8', [looseSet()]));
    clock = T0 + 60_000;
    await wake(t, 'op-8');
    const terminateOp = (await entry('job-8')).record.operations.find((o) => o.action === 'terminate')!.operationId!;
    // Act
    clock += 5_000;
    await wake(t, terminateOp);
    const during = (await entry('job-8')).record.operations.find((o) => o.operationId === terminateOp)!.state;
    cc.remove('ondemand-2');
    clock += 5_000;
    await wake(t, terminateOp);
    // Assess: the verdict stays timed out; the operation is done only once the node is gone
    expect(during).toBe('pending');
    expect((await entry('job-8')).record.operations.find((o) => o.operationId === terminateOp)!.state).toBe('done');
    expect(outcomeByName(await entry('job-8'), 'ondemand-2')).toBe('timed_out');
  });

  it('absorbs a CycleCloud outage during a boot-timeout terminate: the wake-up completes and the terminate is retried after a backoff', async () => {
    // Prepare: ondemand-2 misses its boot deadline while CycleCloud answers the terminate with 503
    const t = tracker({}, { bootTimeoutMs: 60_000 });
    cc.addCreate('op-9', [
      { Name: 'ondemand-1', Status: 'Ready' },
      { Name: 'ondemand-2', Status: 'Preparing' },
    ]);
    await t.start(await submitted('job-9', 'op-9', [looseSet()]));
    cc.faults.terminateNodes = [new CycleCloudError('CC_UNAVAILABLE', 'HTTP 503', { status: 503, ambiguous: false })];
    clock = T0 + 60_000;
    await storage.queue(names.trackerQueue).clearMessages();
    // Act: the wake-up does not throw (the queue would retry it at once, five times, into the poison queue)
    await wake(t, 'op-9');
    // (scheduled with a visibility delay: counted, not peeked)
    const next = (await storage.queue(names.trackerQueue).getProperties()).approximateMessagesCount;
    clock += 60_000;
    await wake(t, 'op-9');
    // Assess: one wake-up was scheduled, and the replayed outbox sent the terminate
    expect(next).toBe(1);
    expect(cc.count('terminateNodes')).toBe(2);
    expect(outcomeByName(await entry('job-9'), 'ondemand-2')).toBe('timed_out');
  });

  it('survives a crash mid-poll: a new instance sweeps and completes', async () => {
    // Prepare: the first instance dies inside its ledger write (the promise never settles), holding
    // the lease, with its actions in the outbox; its queue messages are lost.
    cc.addCreate('op-4', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    const start = await submitted('job-4', 'op-4', [looseSet()]);
    const hanging: RequestLedgerApi = Object.assign(Object.create(ledger) as RequestLedgerApi, {
      get: (id: string) => ledger.get(id),
      update: () => new Promise<never>(() => {}),
    });
    const first = tracker({ ledger: hanging });
    await first.start(start);
    cc.set('ondemand-1', { Status: 'Ready' });
    cc.set('ondemand-2', { Status: 'Ready' });
    clock += 5_000;
    void wake(first, 'op-4');
    await new Promise((r) => setTimeout(r, 300));
    await storage.queue(names.trackerQueue).clearMessages();
    const stuck = await recordOf('op-4');
    // Act: a fresh instance, after the lease has expired.
    const second = tracker();
    clock += 130_000;
    const woken = await second.sweep(clock, log);
    await pumpOnce(storage, names.trackerQueue, (m, meta) => second.handleTrackerMessage(m, meta, log));
    // Assess
    expect(stuck?.leaseUntilMs).toBeGreaterThan(T0);
    expect(stuck?.outbox.map((a) => a.type)).toEqual(['ledger', 'final']);
    expect(woken).toBe(1);
    expect((await entry('job-4')).record.state).toBe('fulfilled');
    expect(second.enqueued).toEqual([]);
    expect(await second.sweep(clock + 600_000, log)).toBe(0);
  });

  it('re-sends lost wake-ups of an overdue record, once', async () => {
    const t = tracker();
    cc.addCreate('op-5', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    await t.start(await submitted('job-5', 'op-5', [looseSet()]));
    await storage.queue(names.trackerQueue).clearMessages();
    expect(await t.sweep(clock + 60_000, log)).toBe(0); // not overdue yet
    clock += 5_000 + 3 * 60_000 + 1;
    expect(await t.sweep(clock, log)).toBe(1);
    expect(await t.sweep(clock, log)).toBe(0);
    expect(await peekAll(storage, names.trackerQueue)).toHaveLength(1);
  });

  it('feeds a node that failed for lack of capacity into the capacity memory, once per bucket', async () => {
    const failures: { nodearray: string; machineType: string }[] = [];
    const t = tracker({ capacity: { recordFailure: async (f) => void failures.push(f) } });
    cc.addCreate('op-10', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    await t.start(await submitted('job-10', 'op-10', [looseSet()]));
    const msg = 'AllocationFailed: insufficient capacity for Standard_F32s_v2';
    cc.set('ondemand-1', { Status: 'Failed', StatusMessage: msg });
    cc.set('ondemand-2', { Status: 'Failed', StatusMessage: msg });
    clock += 5_000;
    await wake(t, 'op-10');
    expect(failures).toEqual([{ cluster: 'hpc', nodearray: 'ondemand', machineType: 'Standard_F32s_v2', reason: expect.stringContaining('insufficient capacity') }]);
    const e = await entry('job-10');
    expect(e.record.demands[0]!.reason).toContain('2 node(s) failed');
    expect(await peekAll(storage, names.scaleQueue)).toEqual([expect.objectContaining({ $scaler: 'continue', requestId: 'job-10' })]);
  });

  it('start() again re-sends a first wake-up lost before any poll, with the same token', async () => {
    const t = tracker();
    cc.addCreate('op-11', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    const start = await submitted('job-11', 'op-11', [looseSet()]);
    await t.start(start);
    await storage.queue(names.trackerQueue).clearMessages(); // crash right after the record was written
    clock += 5_000; // the first poll is due: the re-sent wake-up is visible at once
    await t.start(start);
    const rec = await recordOf('op-11');
    expect(await peekAll(storage, names.trackerQueue)).toEqual([{ $tracker: 'poll', cluster: 'hpc', cycleCloudRequestId: ccOf.get('op-11'), token: rec!.wakeToken }]);
  });

  it('ignores messages that are not wake-ups, and wake-ups for unknown operations', async () => {
    const t = tracker();
    await t.handleTrackerMessage('not json', { dequeueCount: 1 }, log);
    await t.handleTrackerMessage({ $tracker: 'poll' }, { dequeueCount: 1 }, log);
    await t.handleTrackerMessage(Buffer.from(JSON.stringify({ $tracker: 'poll', cluster: 'hpc', cycleCloudRequestId: 'nope' })).toString('base64'), { dequeueCount: 1 }, log);
    // Keys no Table can hold (a lone surrogate, an absurd length) are not wake-ups: never a poison loop.
    await t.handleTrackerMessage({ $tracker: 'poll', cluster: 'hpc\ud800', cycleCloudRequestId: 'x' }, { dequeueCount: 1 }, log);
    await t.handleTrackerMessage({ $tracker: 'poll', cluster: 'hpc', cycleCloudRequestId: 'x'.repeat(600) }, { dequeueCount: 1 }, log);
    expect(cc.calls).toEqual([]);
    expect(logs.entries().map((l) => l.msg)).toEqual([
      'tracker message ignored: not a wake-up',
      'tracker message ignored: not a wake-up',
      'wake-up for an unknown operation dropped',
      'tracker message ignored: not a wake-up',
      'tracker message ignored: not a wake-up',
    ]);
  });

  it('keeps at most one poll in flight: two wake-ups at once make one CycleCloud call', async () => {
    const t = tracker();
    cc.addCreate('op-6', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    await t.start(await submitted('job-6', 'op-6', [looseSet()]));
    cc.listDelayMs = 200;
    clock += 5_000;
    await Promise.all([wake(t, 'op-6'), wake(t, 'op-6'), wake(t, 'op-6')]);
    expect(cc.count('listNodes')).toBe(1);
  });

  it('polls every operation of a cluster woken in one round with one node list, each seeing only its own nodes', async () => {
    const t = tracker();
    cc.addCreate('op-r1', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    cc.addCreate('op-r2', [{ Name: 'ondemand-3', Status: 'Ready', PrivateIp: '10.0.0.9' }]);
    await t.start(await submitted('job-r1', 'op-r1', [looseSet()]));
    await t.start(await submitted('job-r2', 'op-r2', [{ ...looseSet(1), count: 1, demands: [{ index: 0, count: 1 }] }]));
    cc.listDelayMs = 100;
    clock += 5_000;
    await Promise.all([wake(t, 'op-r1'), wake(t, 'op-r2')]);
    expect(cc.count('listNodes')).toBe(1);
    expect(cc.calls.filter((c) => c.operationId !== undefined)).toEqual([]);
    expect((await entry('job-r1')).record.nodes.map((n) => n.name)).toEqual(['ondemand-1', 'ondemand-2']);
    expect((await entry('job-r2')).record.state).toBe('fulfilled');
    // The next round asks again: a list is never reused by a poll that already saw it.
    cc.set('ondemand-1', { Status: 'Ready', PrivateIp: '10.0.0.4' });
    await wake(t, 'op-r1');
    expect(cc.count('listNodes')).toBe(2);
    expect((await entry('job-r1')).record.nodes.map((n) => n.status)).toEqual(['Ready', 'Acquiring']);
  });

  it('drops a wake-up from a chain the sweeper replaced', async () => {
    const t = tracker();
    cc.addCreate('op-7', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    await t.start(await submitted('job-7', 'op-7', [looseSet()]));
    const [old] = (await peekAll(storage, names.trackerQueue)) as { token: string }[];
    clock += 5_000 + 3 * 60_000 + 1;
    await t.sweep(clock, log);
    await t.handleTrackerMessage(old, { dequeueCount: 1 }, log);
    expect(cc.count('listNodes')).toBe(0);
  });

  it('backs off on a 429 with its Retry-After instead of failing the message', async () => {
    const { CycleCloudError } = await import('../../src/cyclecloud/errors.ts');
    const t = tracker();
    cc.addCreate('op-8', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    await t.start(await submitted('job-8', 'op-8', [looseSet()]));
    cc.faults.listNodes = [new CycleCloudError('CC_THROTTLED', 'slow down', { status: 429, retryAfterMs: 90_000 })];
    clock += 5_000;
    await wake(t, 'op-8');
    const rec = await recordOf('op-8');
    expect(rec?.state.nextPollAtMs).toBe(clock + 90_000);
    expect(rec?.leaseUntilMs).toBe(0);
  });
});

describe('tracker end to end over the queues', () => {
  const SECRET = 'tracker-callback-secret-42';
  let rx: Receiver;
  beforeAll(async () => {
    rx = await startReceiver();
  });
  afterAll(() => rx.close());

  it('pumps wake-ups until Ready and delivers a signed callback', async () => {
    // Prepare: real clock, zero poll delays so queue visibility does not slow the test.
    clock = Date.now();
    const callbacks = createCallbackSender({
      storage,
      names,
      ledger,
      signingSecret: async () => SECRET,
      now: () => Date.now(),
      logger: log,
      target: { allowedHosts: [], localDevelopment: true },
    });
    const t = tracker({ callbacks, now: () => Date.now() }, { pollMinMs: 0, pollMaxMs: 0 });
    cc.addCreate('op-9', [{ Name: 'ondemand-1' }, { Name: 'ondemand-2' }]);
    await t.start(await submitted('job-9', 'op-9', [looseSet()], rx.url));
    let polls = 0;
    // Act: the nodes become Ready after the third poll.
    await pumpUntil(
      storage,
      {
        [names.trackerQueue]: async (m, meta) => {
          if (++polls === 3) for (const n of ['ondemand-1', 'ondemand-2']) cc.set(n, { Status: 'Ready' });
          await t.handleTrackerMessage(m, meta, log);
        },
        [names.callbackQueue]: (m, meta) => callbacks.handleCallbackMessage(m, meta, log),
      },
      () => rx.received.length > 0,
    );
    // Assess
    const { headers, body } = rx.received[0]!;
    expect(verifySignature(SECRET, body, headers['x-scaler-signature'] as string, headers['x-scaler-timestamp'] as string, Date.now())).toMatchObject({ ok: true });
    expect(JSON.parse(body)).toMatchObject({ requestId: 'job-9', state: 'fulfilled' });
    expect([...logs.lines]).toContainNoSecret([SECRET, headers['x-scaler-signature'] as string]);
  });
});
