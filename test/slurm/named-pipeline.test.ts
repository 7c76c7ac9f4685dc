/**
 * Named demands and shutdown through the real queue handler and ledger (azurite), with the fake
 * CycleCloud: a create retried after a throttle (rebuilt from the intent) still names the same nodes,
 * and a terminate request with `action: "shutdown"` calls CycleCloud's shutdown.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { handleScaleQueueMessage, type IntakeDeps } from '../../src/requests/intake.ts';
import type { NodeManagementRequest } from '../../src/cyclecloud/schemas.ts';
import type { CycleCloudApi } from '../../src/cyclecloud/api.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { uniqueNames } from '../helpers/names.ts';
import { FakeCapacity, FakeCycleCloud, FakeQueue, FakeState, FakeTracker, MemoryReservations, fixedSnapshots } from '../requests/fakes.ts';

const T0 = Date.parse('2026-11-28T01:00:00.000Z');
let storage: Storage;
let seq = 0;

beforeAll(() => {
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
});

async function setup() {
  const names = uniqueNames();
  await storage.ensure({ tables: [names.requestsTable] });
  const clock = { now: T0 + 10_000 };
  const cc = new FakeCycleCloud();
  const ledger = new RequestLedger({ storage, names, now: () => clock.now });
  const tracker = new FakeTracker({ cyclecloud: cc, ledger, now: () => clock.now });
  const deps: IntakeDeps = {
    cyclecloud: cc,
    ledger,
    reservations: new MemoryReservations(),
    snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(clock.now - 5_000).toISOString() })),
    capacity: new FakeCapacity(),
    tracker,
    queue: new FakeQueue(),
    state: new FakeState(),
    now: () => clock.now,
  };
  const deliver = (message: unknown, dequeueCount = 1) =>
    handleScaleQueueMessage(deps, message, { messageId: `m${++seq}`, dequeueCount, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);
  return { cc, tracker, deliver, clock, ledger };
}

describe('named demands through the pipeline', () => {
  it('a create retried from its intent (after a throttle) names the same nodes', async () => {
    // Prepare: the first create is throttled, so the next delivery rebuilds it from the ledger
    const { cc, deliver, clock } = await setup();
    cc.createFaults.push('throttle');
    const msg = { kind: 'scale', requestId: 'slurm-r1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 3, colocated: true, names: ['mpi-2', 'mpi-3', 'mpi-7'] }] };
    expect((await deliver(msg)).action).toBe('waiting');

    // Act: the wake-up, after the throttle and the wait for a lagging list
    clock.now += 10_000;
    await deliver(msg, 2);

    // Assess: both bodies name the same runs, the second create applied once
    const bodies = cc.calls
      .filter((c) => c.method === 'createNodes')
      .map((c) => (c.body as { sets: { count: number; nameFormat?: string; nameOffset?: number; placementGroupId?: string }[] }).sets);
    expect(bodies).toHaveLength(2);
    expect(bodies[1]!.map((s) => [s.nameFormat, s.nameOffset, s.count])).toEqual([
      ['mpi-%d', 2, 2],
      ['mpi-%d', 7, 1],
    ]);
    expect(bodies[1]).toEqual(bodies[0]);
    expect(new Set(bodies[1]!.map((s) => s.placementGroupId)).size).toBe(1);
    expect(cc.appliedCreates).toBe(1);
  });

  it('a terminate request with action "shutdown" goes to CycleCloud\'s shutdown (ShutdownPolicy decides)', async () => {
    const { cc, deliver } = await setup();
    await cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1 }] });
    const shutdowns: NodeManagementRequest[] = [];
    (cc as unknown as { shutdownNodes: CycleCloudApi['shutdownNodes'] }).shutdownNodes = async (cluster, request) => {
      shutdowns.push(request);
      return cc.terminateNodes(cluster, request);
    };
    await deliver({ kind: 'terminate', requestId: 'slurm-s1', cluster: 'hpc', names: [cc.nodes[0]!.Name], action: 'shutdown' });
    expect(shutdowns).toEqual([{ names: [cc.nodes[0]!.Name], requestId: 'slurm-s1-t' }]);
  });
});

describe('starting deallocated nodes through the pipeline', () => {
  it('a terminate request with action "start" calls CycleCloud\'s start and tracks the nodes to Ready', async () => {
    const { cc, tracker, deliver, ledger } = await setup();
    await cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1 }] });
    const name = cc.nodes[0]!.Name;
    const starts: NodeManagementRequest[] = [];
    (cc as unknown as { startNodes: CycleCloudApi['startNodes'] }).startNodes = async (_cluster, request) => {
      starts.push(request);
      return { operationId: 'op-start', nodes: [{ id: cc.nodes[0]!.NodeId!, name, status: 'OK' }] };
    };
    const result = await deliver({ kind: 'terminate', requestId: 'slurm-st1', cluster: 'hpc', names: [name], action: 'start' });
    expect(starts).toEqual([{ names: [name], requestId: 'slurm-st1-t' }]);
    expect(result).toMatchObject({ action: 'submitted' });
    expect(tracker.starts).toEqual([expect.objectContaining({ action: 'start', operationId: 'op-start', nodeNames: [name] })]);
    // Recorded as what it is: a start, not a terminate.
    expect((await ledger.getRecord('slurm-st1'))?.kind).toBe('start');
  });
});
