import { beforeEach, describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { CapacityMemory } from '../../src/snapshots/capacity-store.ts';
import { uniqueNames } from '../helpers/names.ts';
import { seedSnapshot, T0 } from '../planning/fixtures.ts';

const MIN = 60_000;
const failure = { cluster: 'hpc', nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', reason: 'Allocation failed: no capacity' };

describe('CapacityMemory (azurite)', () => {
  let memory: CapacityMemory;

  beforeEach(async () => {
    memory = new CapacityMemory(Storage.fromConnectionString(inject('storageConnectionString')), uniqueNames());
    await memory.ensure();
  });

  it('backs a bucket off after a failure and forgets it when the time is up', async () => {
    const state = await memory.recordFailure(failure, T0);
    expect(state).toMatchObject({ failures: 1, untilMs: T0 + 5 * MIN });
    expect(await memory.active('hpc', T0 + MIN)).toEqual([{ nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', untilMs: T0 + 5 * MIN, reason: failure.reason }]);
    expect(await memory.active('hpc', T0 + 5 * MIN)).toEqual([]);
    expect(await memory.active('other', T0)).toEqual([]);
  });

  it('doubles across new failures and treats machine type spelling as one bucket', async () => {
    await memory.recordFailure(failure, T0);
    const second = await memory.recordFailure({ ...failure, machineType: 'standard_hb120rs_v3' }, T0 + 6 * MIN);
    expect(second).toMatchObject({ failures: 2, durationMs: 10 * MIN, untilMs: T0 + 16 * MIN });
    expect(await memory.active('hpc', T0 + 7 * MIN)).toHaveLength(1);
  });

  it('counts a failure repeated by successive snapshots once', async () => {
    const snapshot = seedSnapshot();
    snapshot.nodearrays[1]!.buckets[0]!.lastCapacityFailureSec = 20;
    await memory.recordSnapshotFailures(snapshot, T0);
    // A minute later CycleCloud reports the same failure, 80 s ago.
    const later = seedSnapshot({ takenAt: new Date(T0 + MIN).toISOString() });
    later.nodearrays[1]!.buckets[0]!.lastCapacityFailureSec = 80;
    const [state] = await memory.recordSnapshotFailures(later, T0 + MIN);
    expect(state).toMatchObject({ failures: 1, untilMs: T0 - 20_000 + 5 * MIN });
  });

  it('keeps one consistent row under concurrent failures', async () => {
    const states = await Promise.all(Array.from({ length: 6 }, (_, i) => memory.recordFailure({ ...failure, reason: `r${i}` }, T0 + i * 10_000)));
    expect(states).toHaveLength(6);
    const active = await memory.active('hpc', T0 + MIN);
    expect(active).toHaveLength(1);
    // All within one backoff, whichever write landed first: never doubled.
    expect(active[0]!.untilMs).toBeGreaterThanOrEqual(T0 + 5 * MIN);
    expect(active[0]!.untilMs).toBeLessThanOrEqual(T0 + 50_000 + 5 * MIN);
    expect(states.every((s) => s.failures === 1 && s.durationMs === 5 * MIN)).toBe(true);
  });
});
