/**
 * The queue handler end to end with a fake CycleCloud (every fault on demand) and the real ledger on
 * azurite: exactly-once creates, compensation, waiting, rejection, poison reasons, pause, terminate.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { setLogLevel, silentLogger } from '../../src/platform/log.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { CapacityReservations } from '../../src/requests/reservations.ts';
import { handleScaleQueueMessage, submitRequest, type IntakeDeps, type QueueMessageMeta } from '../../src/requests/intake.ts';
import { applySubmission } from '../../src/ledger/record.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { uniqueNames } from '../helpers/names.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { FakeCapacity, FakeCycleCloud, FakeQueue, FakeState, FakeTracker, fixedSnapshots } from './fakes.ts';

const T0 = Date.parse('2026-11-28T01:00:00.000Z');
let storage: Storage;
let seq = 0;

beforeAll(() => {
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
});

async function setup(over: { paused?: boolean } = {}) {
  const names = uniqueNames();
  await storage.ensure({ tables: [names.requestsTable, names.stateTable] });
  const clock = { now: T0 + 10_000 };
  const cc = new FakeCycleCloud();
  const queue = new FakeQueue();
  const state = new FakeState();
  state.paused = over.paused ?? false;
  const capacity = new FakeCapacity();
  const ledger = new RequestLedger({ storage, names, now: () => clock.now });
  const tracker = new FakeTracker({ cyclecloud: cc, ledger, capacity, now: () => clock.now, maxReplanAttempts: 2 });
  const deps: IntakeDeps = {
    cyclecloud: cc,
    ledger,
    reservations: new CapacityReservations({ storage, names }),
    snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(clock.now - 5_000).toISOString() })),
    capacity,
    tracker,
    queue,
    state,
    now: () => clock.now,
    config: { maxReplanAttempts: 2 },
  };
  const meta = (over: Partial<QueueMessageMeta> = {}): QueueMessageMeta => ({
    messageId: `m${++seq}`,
    dequeueCount: 1,
    maxDequeueCount: 5,
    poisonQueue: 'scale-requests-poison',
    ...over,
  });
  const deliver = (message: unknown, m: Partial<QueueMessageMeta> = {}) => handleScaleQueueMessage(deps, message, meta(m), silentLogger);
  return { deps, cc, tracker, queue, state, capacity, ledger, clock, deliver };
}

function scale(requestId: string, demands: ScaleRequest['demands']): ScaleRequest {
  return { kind: 'scale', requestId, cluster: 'hpc', demands };
}

const creates = (cc: FakeCycleCloud) => cc.calls.filter((c) => c.method === 'createNodes');

describe('scale requests: one create, exactly once', () => {
  it('sends one create with sets grouped by placement group and hands it to the tracker', async () => {
    const { cc, tracker, ledger, deliver } = await setup();
    // Prepare: a gang on mpi, a gang on HC44rs, a loose demand
    const msg = scale('multi-1', [
      { nodearray: 'mpi', count: 4, colocated: true },
      { nodearray: 'ondemand', count: 3, machineTypes: ['Standard_HC44rs'], colocated: true },
      { nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'] },
    ]);
    // Act
    const result = await deliver(msg);
    // Assess
    expect(result.action).toBe('submitted');
    expect(creates(cc)).toHaveLength(1);
    const body = creates(cc)[0]!.body as { requestId: string; sets: { nodearray: string; count: number; placementGroupId?: string }[] };
    expect(body.requestId).toBe('multi-1-g0');
    expect(body.sets.map((s) => [s.nodearray, s.count, s.placementGroupId !== undefined])).toEqual([
      ['mpi', 4, true],
      ['ondemand', 3, true],
      ['ondemand', 2, false],
    ]);
    expect(body.sets[0]!.placementGroupId).not.toBe(body.sets[1]!.placementGroupId);
    const rec = (await ledger.getRecord('multi-1'))!;
    expect(rec.state).toBe('submitted');
    expect(rec.operations).toEqual([{ operationId: 'op-1', cycleCloudRequestId: 'multi-1-g0', state: 'pending', action: 'create' }]);
    expect(rec.demands.map((d) => d.created)).toEqual([4, 3, 2]);
    expect(tracker.starts).toHaveLength(1);
    expect(tracker.starts[0]).toMatchObject({ operationId: 'op-1', action: 'create', requestId: 'multi-1', generation: 0 });
    expect(tracker.starts[0]!.sets.map((s) => s.colocated)).toEqual([true, true, false]);
  });

  it('creates once when the same message is delivered twice', async () => {
    const { cc, tracker, deliver } = await setup();
    const msg = scale('dup-1', [{ nodearray: 'ondemand', count: 2 }]);
    await deliver(msg);
    const again = await deliver(msg);
    expect(again.action).toBe('tracking');
    expect(creates(cc)).toHaveLength(1);
    expect(cc.nodes).toHaveLength(2);
    // the second delivery re-asserts tracking (idempotent on operationId)
    expect(new Set(tracker.starts.map((t) => t.operationId))).toEqual(new Set(['op-1']));
  });

  it('creates once when two deliveries race', async () => {
    const { cc, deliver } = await setup();
    const msg = scale('race-1', [{ nodearray: 'ondemand', count: 3, machineTypes: ['Standard_HC44rs'] }]);
    await Promise.all([deliver(msg), deliver(msg), deliver(msg)]);
    expect(cc.appliedCreates).toBe(1);
    expect(cc.nodes).toHaveLength(3);
  });

  it('commit-then-fail: reconciles by request id and adopts the operation', async () => {
    const { cc, ledger, tracker, deliver } = await setup();
    cc.createFaults.push('commit-then-fail');
    const result = await deliver(scale('ctf-1', [{ nodearray: 'ondemand', count: 2 }]));
    expect(result.action).toBe('submitted');
    expect(cc.appliedCreates).toBe(1);
    expect(cc.nodes).toHaveLength(2);
    expect(cc.calls.map((c) => c.method)).toEqual(['createNodes', 'listNodes']);
    const rec = (await ledger.getRecord('ctf-1'))!;
    // The lookup does not say the operation id (OperationStatus is {action, startTime}): the
    // operation is followed by its CycleCloud request id.
    expect(rec.operations[0]).toMatchObject({ operationId: null, cycleCloudRequestId: 'ctf-1-g0', state: 'pending' });
    expect(rec.demands[0]!.created).toBe(2);
    expect(tracker.starts[0]).toMatchObject({ operationId: null, cycleCloudRequestId: 'ctf-1-g0' });
  });

  it('a reset that never reached CycleCloud: after a look in the full list, creates again with the same request id', async () => {
    const { cc, ledger, deliver, clock, queue } = await setup();
    cc.createFaults.push('lost');
    const first = await deliver(scale('lost-1', [{ nodearray: 'ondemand', count: 2 }]));
    // Not known by request id and not listed: a list may lag a create, so it waits before sending again.
    expect(first.action).toBe('waiting');
    expect(creates(cc).map((c) => c.requestId)).toEqual(['lost-1-g0']);
    expect(cc.calls.map((c) => c.method)).toEqual(['createNodes', 'listNodes', 'listNodes']);
    clock.now += 15_000;
    await deliver(queue.sent.at(-1)!.body, { dequeueCount: 1 });
    expect(creates(cc).map((c) => c.requestId)).toEqual(['lost-1-g0', 'lost-1-g0']);
    expect(cc.appliedCreates).toBe(1);
    expect((await ledger.getRecord('lost-1'))!.state).toBe('submitted');
  });

  it('a crash after the intent: the redelivery looks it up instead of creating again', async () => {
    const { cc, ledger, deliver } = await setup();
    const msg = scale('crash-1', [{ nodearray: 'ondemand', count: 2 }]);
    // Prepare: CycleCloud applied the create, the worker died before recording the result.
    cc.createFaults.push('commit-then-fail');
    cc.listFaults.push(new CycleCloudError('CC_UNAVAILABLE', 'HTTP 503', { status: 503 }));
    // CycleCloud unavailable: the request waits with a reason instead of burning a delivery.
    expect((await deliver(msg)).action).toBe('waiting');
    const mid = (await ledger.get('crash-1'))!;
    expect(mid.attempts[0]!.state).toBe('intent');
    expect(mid.record.reason).toContain('CC_UNAVAILABLE');
    // Act
    const result = await deliver(msg, { dequeueCount: 2 });
    // Assess
    expect(result.action).toBe('tracking');
    expect(cc.appliedCreates).toBe(1);
    expect(creates(cc)).toHaveLength(1);
    expect((await ledger.getRecord('crash-1'))!.operations[0]).toMatchObject({ operationId: null, cycleCloudRequestId: 'crash-1-g0' });
  });

  it('a 409 on create after a crash before the response: adopts the existing operation', async () => {
    const { cc, ledger, deliver } = await setup();
    const msg = scale('conf-1', [{ nodearray: 'ondemand', count: 1 }]);
    await ledger.admit(msg, T0);
    // Prepare: the intent was never written (crash before), yet CycleCloud has the id (a previous worker sent it).
    await cc.createNodes('hpc', { requestId: 'conf-1-g0', sets: [{ nodearray: 'ondemand', count: 1 }] });
    // Act
    await deliver(msg);
    // Assess
    expect(cc.appliedCreates).toBe(1);
    expect(cc.nodes).toHaveLength(1);
    expect((await ledger.getRecord('conf-1'))!.operations[0]).toMatchObject({ operationId: null, cycleCloudRequestId: 'conf-1-g0' });
  });

  it("the fleet's governor refusing a create is no backoff: the request comes back when the slot is due", async () => {
    const { cc, ledger, deliver, queue } = await setup();
    cc.createFaults.push('fleet-busy');
    expect((await deliver(scale('fleet-1', [{ nodearray: 'ondemand', count: 1 }]))).action).toBe('waiting');
    expect((await ledger.getRecord('fleet-1'))!.reason).toMatch(/in flight across the fleet/);
    // 2 s (what the governor said), not the 15 s backoff of a request that found no capacity
    expect(queue.sent.map((m) => m.visibilityDelayMs)).toEqual([2_000]);
  });

  it('throttled create: the intent stays, the request waits (Retry-After honoured), the wake-up reconciles then creates', async () => {
    const { cc, ledger, deliver, queue, clock } = await setup();
    cc.createFaults.push('throttle');
    cc.throttleRetryAfterMs = 40_000;
    const msg = scale('thr-1', [{ nodearray: 'ondemand', count: 1 }]);
    expect((await deliver(msg)).action).toBe('waiting');
    const rec = (await ledger.getRecord('thr-1'))!;
    expect(rec.state).toBe('queued');
    expect(rec.reason).toContain('CC_THROTTLED');
    // One wake-up, no sooner than CycleCloud's Retry-After; the message itself was not failed.
    expect(queue.sent.map((m) => m.visibilityDelayMs)).toEqual([40_000]);
    clock.now += 40_000;
    await deliver(queue.sent[0]!.body);
    expect(cc.calls.map((c) => c.method)).toEqual(['createNodes', 'listNodes', 'listNodes', 'createNodes']);
    expect(cc.appliedCreates).toBe(1);
  });

  it('tracker down after the create: retried delivery starts tracking without a second create', async () => {
    const { cc, tracker, deliver } = await setup();
    tracker.failNext = 1;
    const msg = scale('trk-1', [{ nodearray: 'ondemand', count: 1 }]);
    await expect(deliver(msg)).rejects.toThrow('tracker');
    await deliver(msg, { dequeueCount: 2 });
    expect(cc.appliedCreates).toBe(1);
    expect(tracker.starts.map((t) => t.operationId)).toEqual(['op-1']);
  });
});

describe('scale requests: shortfalls', () => {
  it('partial colocated add: terminates the partial set and re-plans into another group', async () => {
    const { cc, ledger, tracker, capacity, deliver } = await setup();
    // the bucket's failure is remembered (for others) but this request still tries another group now
    capacity.backoffMs = 5 * 60_000;
    cc.limitNext.set('mpi', 2);
    // Act
    await deliver(scale('gang-1', [{ nodearray: 'mpi', count: 4, colocated: true }]));
    // Assess: two creates, the first partial one compensated
    const bodies = creates(cc).map((c) => c.body as { requestId: string; sets: { placementGroupId: string; count: number }[] });
    expect(bodies.map((b) => b.requestId)).toEqual(['gang-1-g0', 'gang-1-g1']);
    expect(bodies[1]!.sets[0]!.placementGroupId).not.toBe(bodies[0]!.sets[0]!.placementGroupId);
    const term = cc.calls.find((c) => c.method === 'terminateNodes')!;
    expect(term.requestId).toBe('gang-1-g0-c');
    // By NodeId (names are reused by CycleCloud): the two nodes of the partial set.
    expect((term.body as { ids: string[] }).ids).toEqual(['id-mpi-1', 'id-mpi-2']);
    const e = (await ledger.get('gang-1'))!;
    expect(e.record.state).toBe('submitted');
    expect(e.record.demands[0]).toMatchObject({ requested: 4, created: 4, placementGroupId: bodies[1]!.sets[0]!.placementGroupId });
    expect(e.compensations).toHaveLength(1);
    expect(e.record.operations.map((o) => o.action)).toEqual(['create', 'terminate', 'create']);
    expect(tracker.starts.map((t) => t.action)).toEqual(['create', 'terminate', 'create']);
    expect(tracker.starts[1]!.nodeNames).toEqual(['mpi-1', 'mpi-2']);
    expect(capacity.failures).toHaveLength(1);
    expect(capacity.active('hpc', T0 + 20_000).map((b) => b.machineType)).toEqual(['Standard_HB120rs_v3']);
    expect(capacity.failures[0]!.reason).toContain(bodies[0]!.sets[0]!.placementGroupId);
  });

  it('gives up on a gang after the bounded re-plans and fails with the reason', async () => {
    const { cc, ledger, deliver } = await setup();
    // maxReplanAttempts 2: three partial groups in a row
    const limits = [1, 1, 1];
    const orig = cc.createNodes.bind(cc);
    cc.createNodes = async (cluster, req) => {
      const l = limits.shift();
      if (l !== undefined) cc.limitNext.set('mpi', l);
      return orig(cluster, req);
    };
    await deliver(scale('gang-2', [{ nodearray: 'mpi', count: 4, colocated: true }]));
    const e = (await ledger.get('gang-2'))!;
    expect(creates(cc)).toHaveLength(3);
    expect(e.compensations).toHaveLength(3);
    // the compensated nodes are still terminating: final once the tracker reports them; nothing waits
    expect(e.closedDemands?.[0]).toContain('gave up after 3 partial placement groups');
  });

  it('loose shortfall: the remainder waits with a reason and a delayed continue message', async () => {
    const { cc, ledger, queue, deliver, clock } = await setup();
    cc.limitNext.set('ondemand', 1);
    const result = await deliver(scale('loose-1', [{ nodearray: 'ondemand', count: 3, machineTypes: ['Standard_HC44rs'] }]));
    expect(result.action).toBe('submitted');
    const e = (await ledger.get('loose-1'))!;
    expect(e.record.state).toBe('submitted');
    expect(e.record.demands[0]!.created).toBe(1);
    expect(e.record.reason).toContain('added 1 of 3');
    const wakeAtMs = clock.now + 15_000;
    expect(queue.sent).toEqual([{ body: { $scaler: 'continue', requestId: 'loose-1', reason: 'wait', wakeAtMs }, visibilityDelayMs: 15_000 }]);
    expect(e.nextAttemptAtMs).toBe(wakeAtMs);

    // a superseded wake-up is dropped; the current one re-plans the remainder under a new id (even a little early)
    expect((await deliver({ ...(queue.sent[0]!.body as object), wakeAtMs: wakeAtMs - 5000 })).action).toBe('superseded');
    clock.now += 12_000;
    await deliver(queue.sent[0]!.body);
    expect(creates(cc).map((c) => c.requestId)).toEqual(['loose-1-g0', 'loose-1-g1']);
    expect((creates(cc)[1]!.body as { sets: { count: number }[] }).sets[0]!.count).toBe(2);
    expect((await ledger.getRecord('loose-1'))!.demands[0]!.created).toBe(3);
  });

  it('a wake-up redelivered after its run crashed between the create and the tracker start is not dropped as superseded', async () => {
    // Prepare: a request waits (paused); its wake-up's run creates, records it, then dies before tracking
    const { cc, ledger, queue, deliver, clock, tracker, state } = await setup({ paused: true });
    await deliver(scale('crash-1', [{ nodearray: 'ondemand', count: 3, machineTypes: ['Standard_HC44rs'] }]));
    const wake = queue.sent[0]!.body;
    state.paused = false;
    clock.now += 15_000;
    tracker.failNext = 1;
    await expect(deliver(wake)).rejects.toThrow('tracker table unavailable');
    expect((await ledger.get('crash-1'))!.nextAttemptAtMs).toBeNull();
    // Act: the queue delivers the same wake-up again
    const again = await deliver(wake, { dequeueCount: 2 });
    // Assess: the accepted create is tracked, and was not sent twice
    expect(again.action).not.toBe('superseded');
    expect(tracker.starts.map((t) => t.cycleCloudRequestId)).toEqual(['crash-1-g0']);
    expect(creates(cc).map((c) => c.requestId)).toEqual(['crash-1-g0']);
  });

  it('a request made final by a run that died before queueing its callback gets the callback on redelivery', async () => {
    // Prepare: the ledger's onFinal (queues the callback) is where the worker dies, once
    const names = uniqueNames();
    await storage.ensure({ tables: [names.requestsTable, names.stateTable] });
    const finals: string[] = [];
    let dies = true;
    const onFinal = async (e: LedgerEntry): Promise<void> => {
      if (dies) {
        dies = false;
        throw new Error('worker died after the final write');
      }
      finals.push(`${e.record.requestId}:${e.record.state}`);
    };
    const { deps } = await setup();
    const ledger = new RequestLedger({ storage, names, now: deps.now, onFinal });
    const crashing: IntakeDeps = { ...deps, ledger, onFinal };
    const msg = { ...scale('cb-final-1', [{ nodearray: 'mpi', count: 5, colocated: true }]), callbackUrl: 'https://s.example.com/h' };
    await expect(handleScaleQueueMessage(crashing, msg, { messageId: 'x1', dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger)).rejects.toThrow('worker died');
    expect((await ledger.get('cb-final-1'))!.record.state).toBe('rejected');
    // Act: the queue delivers the message again
    const again = await handleScaleQueueMessage(crashing, msg, { messageId: 'x1', dequeueCount: 2, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);
    // Assess
    expect(again.action).toBe('final');
    expect(finals).toEqual(['cb-final-1:rejected']);
  });

  it('after the deadline a waiting request becomes failed with the reason', async () => {
    const { ledger, deliver, clock, state, cc, queue } = await setup({ paused: true });
    await deliver(scale('late-1', [{ nodearray: 'ondemand', count: 1 }]));
    state.paused = false;
    clock.now += 31 * 60_000;
    const r = await deliver(queue.sent[0]!.body);
    expect(r.action).toBe('final');
    const rec = (await ledger.getRecord('late-1'))!;
    expect(rec.state).toBe('failed');
    expect(rec.reason).toContain('demand 0: 0/1 ready (request deadline passed)');
    expect(creates(cc)).toHaveLength(0);
  });
});

describe('intake: invalid, broken, conflicting, transient', () => {
  it('a callbackUrl to an IP literal the send-time check would refuse is rejected at intake, naming callbackUrl', async () => {
    const { deps, ledger, state, cc, deliver } = await setup();
    deps.callbackTarget = { allowedHosts: [], localDevelopment: false };
    const result = await deliver({ ...scale('cb-meta-1', [{ nodearray: 'mpi', count: 1 }]), callbackUrl: 'https://169.254.169.254/latest' });
    expect(result.action).toBe('rejected');
    const rec = (await ledger.getRecord('cb-meta-1'))!;
    expect(rec.state).toBe('rejected');
    expect(rec.errors!.map((e) => e.path)).toEqual(['callbackUrl']);
    expect(rec.reason).toContain('link-local');
    expect(state.counts.rejectedMessages).toBe(1);
    expect(cc.calls).toEqual([]);
  });

  it('an invalid message is rejected once with each bad field named, not retried', async () => {
    const { ledger, state, cc, deliver } = await setup();
    const result = await deliver({ requestId: 'bad-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 0 }, { count: 2 }] });
    expect(result.action).toBe('rejected');
    const rec = (await ledger.getRecord('bad-1'))!;
    expect(rec.state).toBe('rejected');
    expect(rec.reason).toContain('demands.0.count');
    // A demand with no selector is named as a whole (docs/api.md §3).
    expect(rec.reason).toContain('demands.1: needs at least one selector');
    expect(rec.errors!.map((e) => e.path)).toEqual(expect.arrayContaining(['demands.0.count', 'demands.1']));
    expect(state.counts.rejectedMessages).toBe(1);
    expect(cc.calls).toEqual([]);
  });

  it('a message that is not JSON is recorded under its queue message id and counted', async () => {
    const { ledger, state, deliver } = await setup();
    const result = await deliver('this is { not json', { messageId: 'abc-123' });
    expect(result).toMatchObject({ action: 'rejected', requestId: 'msg-abc-123' });
    expect((await ledger.getRecord('msg-abc-123'))!.reason).toBe('the message is not JSON');
    expect(state.counts.rejectedMessages).toBe(1);
  });

  it('a message without a usable requestId is recorded under its queue message id', async () => {
    const { ledger, deliver } = await setup();
    const result = await deliver({ requestId: 'bad id with spaces', cluster: 'hpc', demands: [{ nodearray: 'a', count: 1 }] }, { messageId: 'q-9' });
    expect(result.requestId).toBe('msg-q-9');
    expect((await ledger.getRecord('msg-q-9'))!.reason).toContain('requestId');
  });

  it('same requestId with different content is a conflict; the first record stands', async () => {
    const { ledger, state, cc, deliver } = await setup();
    await deliver(scale('cf-1', [{ nodearray: 'ondemand', count: 1 }]));
    const result = await deliver(scale('cf-1', [{ nodearray: 'ondemand', count: 2 }]), { messageId: 'q-cf' });
    expect(result.action).toBe('conflict');
    expect((await ledger.getRecord('cf-1'))!.demands[0]!.requested).toBe(1);
    expect((await ledger.getRecord('msg-q-cf'))!.reason).toContain('conflict');
    expect(state.counts.rejectedMessages).toBe(1);
    expect(cc.appliedCreates).toBe(1);
  });

  it('CycleCloud unavailable never burns deliveries: the request waits, nothing is thrown', async () => {
    const { cc, ledger, deliver, queue } = await setup();
    const msg = scale('tr-0', [{ nodearray: 'ondemand', count: 1 }]);
    cc.createFaults.push('unavailable-before');
    expect((await deliver(msg, { dequeueCount: 1 })).action).toBe('waiting');
    const rec = (await ledger.getRecord('tr-0'))!;
    expect(rec.reason).toMatch(/CC_NETWORK/);
    expect(queue.sent).toHaveLength(1);
  });

  it('an outcome still unknown is logged as SUBMIT_UNRESOLVED with the CycleCloud error behind it (the cause chain)', async () => {
    const { deps, cc, ledger } = await setup();
    deps.config = { ...deps.config, lookupGraceMs: 0 };
    // Every send is lost after leaving (ambiguous) and every look-up finds nothing: three rounds, no answer.
    cc.createFaults.push('lost', 'lost', 'lost');
    const logs = captureLogs();
    const result = await handleScaleQueueMessage(
      deps,
      scale('tr-u', [{ nodearray: 'ondemand', count: 1 }]),
      { messageId: 'mu', dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' },
      logs.logger,
    );
    expect(result.action).toBe('waiting');
    expect((await ledger.getRecord('tr-u'))!.reason).toMatch(/SUBMIT_UNRESOLVED/);
    const line = logs.entries().find((e) => e.msg === 'CycleCloud did not settle this run; the request waits and tries again');
    expect(line?.code).toBe('SUBMIT_UNRESOLVED');
    expect(line?.error).toMatchObject({
      name: 'SubmitError',
      code: 'SUBMIT_UNRESOLVED',
      cause: { name: 'CycleCloudError', code: 'CC_NETWORK', message: 'socket hang up (ECONNRESET)' },
    });
  });

  it('a storage failure is thrown for the queue; on the last attempt the record says why first', async () => {
    const { deps, ledger, state, deliver } = await setup();
    const msg = scale('tr-1', [{ nodearray: 'ondemand', count: 1 }]);
    const realPlan = deps.snapshots.getFresh.bind(deps.snapshots);
    deps.snapshots.getFresh = async () => {
      throw Object.assign(new Error('storage unreachable'), { code: 'ECONNREFUSED' });
    };
    await expect(deliver(msg, { dequeueCount: 5 })).rejects.toThrow('storage unreachable');
    deps.snapshots.getFresh = realPlan;
    const rec = (await ledger.getRecord('tr-1'))!;
    expect(rec.state).toBe('failed');
    expect(rec.reason).toMatch(/^moved to scale-requests-poison after 5 attempts: ECONNREFUSED: storage unreachable/);
    expect(state.counts.poisonedMessages).toBe(1);
  });

  it('a request whose create may exist is never failed by the poison path: it stays open with the reason', async () => {
    const { deps, cc, ledger, state, deliver } = await setup();
    const msg = scale('tr-2', [{ nodearray: 'ondemand', count: 1 }]);
    cc.createFaults.push('commit-then-fail');
    cc.listFaults.push(new CycleCloudError('CC_UNAVAILABLE', 'HTTP 503', { status: 503 }));
    await deliver(msg, { dequeueCount: 1 });
    expect((await ledger.get('tr-2'))!.attempts[0]!.state).toBe('intent');
    deps.snapshots.getFresh = async () => {
      throw Object.assign(new Error('storage unreachable'), { code: 'ECONNREFUSED' });
    };
    const tracker = deps.tracker as FakeTracker;
    tracker.failNext = 1;
    await expect(deliver(msg, { dequeueCount: 5 })).rejects.toThrow();
    const rec = (await ledger.getRecord('tr-2'))!;
    expect(rec.state).not.toBe('failed');
    expect(rec.reason).toContain('stays open until its CycleCloud create is resolved');
    expect(state.counts.poisonedMessages).toBe(1);
  });

  it('the planner rejects a demand that can never be placed, naming the limit', async () => {
    const { ledger, cc, deliver } = await setup();
    await deliver(scale('big-gang', [{ nodearray: 'mpi', count: 5, colocated: true }]));
    const rec = (await ledger.getRecord('big-gang'))!;
    expect(rec.state).toBe('rejected');
    expect(rec.reason).toMatch(/4/);
    expect(cc.calls).toEqual([]);
  });
});

describe('pause and terminate', () => {
  it('paused: scale requests are admitted and wait; terminate requests still run', async () => {
    const { cc, ledger, queue, deliver, clock } = await setup({ paused: true });
    const r = await deliver(scale('p-1', [{ nodearray: 'ondemand', count: 1 }]));
    expect(r.action).toBe('paused');
    const rec = (await ledger.getRecord('p-1'))!;
    expect(rec.state).toBe('queued');
    expect(rec.reason).toBe('scale-out is paused');
    expect(creates(cc)).toHaveLength(0);
    expect(queue.sent).toHaveLength(1);
    // the wake-up, even if it comes a few seconds early, schedules the next one with a longer backoff (no stall)
    clock.now += 10_000;
    expect((await deliver(queue.sent[0]!.body)).action).toBe('paused');
    expect(queue.sent.map((m) => m.visibilityDelayMs)).toEqual([15_000, 30_000]);

    await cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 2 }] });
    const t = await deliver({ kind: 'terminate', requestId: 'drain-1', cluster: 'hpc', names: ['ondemand-1', 'nope-9'] });
    expect(t.action).toBe('submitted');
    expect(cc.calls.find((c) => c.method === 'terminateNodes')!.requestId).toBe('drain-1-t');
  });

  it('terminate: same ledger idempotency, record submitted, unmatched nodes reported, reconciles on doubt', async () => {
    const { cc, ledger, tracker, deliver } = await setup();
    await cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 2 }] });
    cc.terminateFaults.push('commit-then-fail');
    const msg = { kind: 'terminate', requestId: 'drain-2', cluster: 'hpc', names: ['ondemand-1'], ids: ['id-ondemand-2', 'id-ghost'] };
    await deliver(msg);
    await deliver(msg);
    // The answer was lost: sent again under the same id, CycleCloud's 409 says it had it.
    const terms = cc.calls.filter((c) => c.method === 'terminateNodes');
    expect(terms.map((t) => t.requestId)).toEqual(['drain-2-t', 'drain-2-t']);
    expect([...cc.ops.values()].filter((o) => o.action === 'terminate')).toHaveLength(1);
    const rec = (await ledger.getRecord('drain-2'))!;
    expect(rec.state).toBe('submitted');
    expect(rec.operations).toEqual([expect.objectContaining({ operationId: null, action: 'terminate', cycleCloudRequestId: 'drain-2-t' })]);
    expect(rec.nodes.map((n) => n.name).sort()).toEqual(['ondemand-1', 'ondemand-2']);
    expect(rec.reason).toContain('matched no node: id-ghost');
    expect(tracker.starts.every((t) => t.action === 'terminate' && t.cycleCloudRequestId === 'drain-2-t')).toBe(true);
  });
});

describe('refusals and wire details', () => {
  it('a create CycleCloud refuses fails the request with what CycleCloud said, without retries', async () => {
    const { cc, ledger, deliver } = await setup();
    cc.createFaults.push('bad-request');
    const r = await deliver(scale('refused-1', [{ nodearray: 'ondemand', count: 1 }]));
    expect(r.action).toBe('final');
    const rec = (await ledger.getRecord('refused-1'))!;
    expect(rec.state).toBe('failed');
    expect(rec.reason).toContain('MachineType Standard_X is not recognized');
    expect(creates(cc)).toHaveLength(1);
  });

  it('terminate by hostnames, IP addresses and filter uses CycleCloud wire names', async () => {
    const { cc, deliver } = await setup();
    await deliver({ kind: 'terminate', requestId: 'drain-3', cluster: 'hpc', hostnames: ['h1'], ipAddresses: ['10.0.0.4'], filter: 'State === "Started"' });
    const body = cc.calls.find((c) => c.method === 'terminateNodes')!.body;
    expect(body).toEqual({ hostnames: ['h1'], ip_addresses: ['10.0.0.4'], filter: 'State === "Started"', requestId: 'drain-3-t' });
  });

  it('terminate after a crash between intent and result: sent again under the same id, applied once', async () => {
    const { cc, ledger, deliver } = await setup();
    await cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1 }] });
    const msg = { kind: 'terminate' as const, requestId: 'drain-5', cluster: 'hpc', names: ['ondemand-1'] };
    // Prepare: the worker wrote its intent and sent the terminate, then died
    await ledger.admit(msg, T0);
    await ledger.update('drain-5', (e) =>
      applySubmission(e, { generation: 0, cycleCloudRequestId: 'drain-5-t', state: 'intent', operationId: null, sets: [], submittedAtMs: T0 }, T0),
    );
    await cc.terminateNodes('hpc', { names: ['ondemand-1'], requestId: 'drain-5-t' });
    // Act
    await deliver(msg, { dequeueCount: 2 });
    // Assess
    expect(cc.calls.filter((c) => c.method === 'terminateNodes').map((c) => c.requestId)).toEqual(['drain-5-t', 'drain-5-t']);
    expect([...cc.ops.values()].filter((o) => o.action === 'terminate')).toHaveLength(1);
    const rec = (await ledger.getRecord('drain-5'))!;
    expect(rec.state).toBe('submitted');
    expect(rec.operations[0]).toMatchObject({ operationId: null, cycleCloudRequestId: 'drain-5-t', action: 'terminate' });
    expect(rec.nodes.map((n) => n.name)).toEqual(['ondemand-1']);
  });

  it('a terminate that matches nothing fails and says so', async () => {
    const { ledger, deliver } = await setup();
    await deliver({ kind: 'terminate', requestId: 'drain-4', cluster: 'hpc', names: ['ghost-1'] });
    const rec = (await ledger.getRecord('drain-4'))!;
    expect(rec.state).toBe('failed');
    expect(rec.reason).toContain('matched no node: ghost-1');
  });
});

describe('submitRequest (HTTP admission)', () => {
  it('admits and enqueues; duplicates still queued re-enqueue; conflicts do not', async () => {
    const { ledger, queue } = await setup();
    const deps = { ledger, queue, now: () => T0 };
    const msg = scale('http-1', [{ nodearray: 'ondemand', count: 1 }]);
    expect((await submitRequest(deps, msg)).outcome).toBe('created');
    expect((await submitRequest(deps, msg)).outcome).toBe('duplicate');
    const c = await submitRequest(deps, scale('http-1', [{ nodearray: 'ondemand', count: 9 }]));
    expect(c.outcome).toBe('conflict');
    expect(c.record.demands[0]!.requested).toBe(1);
    expect(queue.sent.map((s) => s.body)).toEqual([msg, msg]);
    // once it is past queued, a duplicate is not enqueued again
    await ledger.update('http-1', (e) =>
      applySubmission(e, { generation: 0, cycleCloudRequestId: 'http-1-g0', state: 'accepted', operationId: 'op', sets: [], submittedAtMs: T0 }, T0),
    );
    await submitRequest(deps, msg);
    expect(queue.sent).toHaveLength(2);
  });
});

describe('scale requests: the duplicate-delivery log line', () => {
  it('is said at info only for a real redelivery, not for the first delivery of an HTTP-admitted request', async () => {
    // Prepare: admitted over HTTP (the ledger entry exists before the queue message arrives)
    const { deps } = await setup();
    setLogLevel('debug'); // the default; debug lines are part of what is checked
    const msg = scale('dup-log-1', [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_F32s_v2'] }]);
    await submitRequest(deps, msg);
    const first = captureLogs();
    const again = captureLogs();

    // Act
    await handleScaleQueueMessage(deps, msg, { messageId: 'q1', dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' }, first.logger);
    await handleScaleQueueMessage(deps, msg, { messageId: 'q1', dequeueCount: 2, maxDequeueCount: 5, poisonQueue: 'p' }, again.logger);

    // Assess
    const said = (c: typeof first, text: string) => c.records.filter((r) => r.line.includes(text)).map((r) => r.level);
    expect(said(first, 'duplicate delivery')).toEqual([]);
    expect(said(first, 'request already admitted')).toEqual(['debug']);
    expect(said(again, 'duplicate delivery')).toEqual(['info']);
  });
});
