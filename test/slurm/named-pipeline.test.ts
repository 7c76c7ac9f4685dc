/**
 * Named demands and shutdown through the real queue handler and ledger (azurite), with the fake
 * CycleCloud: a create retried after a throttle (rebuilt from the intent) still names the same nodes,
 * and a terminate request with `action: "shutdown"` calls CycleCloud's shutdown.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { RequestLedger } from '../../src/requests/ledger.ts';
import { handleScaleQueueMessage, type IntakeDeps } from '../../src/requests/intake.ts';
import type { NodeManagementRequest } from '../../src/cyclecloud/schemas.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { uniqueNames } from '../helpers/names.ts';
import { FakeCapacity, FakeCycleCloud, FakeQueue, FakeState, FakeTracker, fixedSnapshots } from '../requests/fakes.ts';

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
  const deps: IntakeDeps = {
    cyclecloud: cc,
    ledger: new RequestLedger({ storage, names, now: () => clock.now }),
    snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(clock.now - 5_000).toISOString() })),
    capacity: new FakeCapacity(),
    tracker: new FakeTracker(),
    queue: new FakeQueue(),
    state: new FakeState(),
    now: () => clock.now,
  };
  const deliver = (message: unknown, dequeueCount = 1) =>
    handleScaleQueueMessage(deps, message, { messageId: `m${++seq}`, dequeueCount, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);
  return { cc, deliver };
}

describe('named demands through the pipeline', () => {
  it('a create retried from its intent (after a throttle) names the same nodes', async () => {
    // Prepare: the first create is throttled, so the next delivery rebuilds it from the ledger
    const { cc, deliver } = await setup();
    cc.createFaults.push('throttle');
    const msg = { kind: 'scale', requestId: 'slurm-r1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 3, colocated: true, names: ['mpi-2', 'mpi-3', 'mpi-7'] }] };
    await expect(deliver(msg)).rejects.toMatchObject({ code: 'CC_THROTTLED' });

    // Act
    await deliver(msg, 2);

    // Assess: both bodies name the same runs, the second create applied once
    const bodies = cc.calls.filter((c) => c.method === 'createNodes').map((c) => (c.body as { sets: { count: number; nameFormat?: string; nameOffset?: number; placementGroupId?: string }[] }).sets);
    expect(bodies).toHaveLength(2);
    expect(bodies[1]!.map((s) => [s.nameFormat, s.nameOffset, s.count])).toEqual([['mpi-%d', 2, 2], ['mpi-%d', 7, 1]]);
    expect(bodies[1]).toEqual(bodies[0]);
    expect(new Set(bodies[1]!.map((s) => s.placementGroupId)).size).toBe(1);
    expect(cc.appliedCreates).toBe(1);
  });

  it('a terminate request with action "shutdown" goes to CycleCloud\'s shutdown (ShutdownPolicy decides)', async () => {
    const { cc, deliver } = await setup();
    await cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1 }] });
    const shutdowns: NodeManagementRequest[] = [];
    cc.shutdownNodes = async (cluster, request) => {
      shutdowns.push(request);
      return cc.terminateNodes(cluster, request);
    };
    await deliver({ kind: 'terminate', requestId: 'slurm-s1', cluster: 'hpc', names: [cc.nodes[0]!.Name], action: 'shutdown' });
    expect(shutdowns).toEqual([{ names: [cc.nodes[0]!.Name], requestId: 'slurm-s1-t' }]);
  });
});
