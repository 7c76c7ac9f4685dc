import { describe, expect, it } from 'vitest';
import { plan } from '../../src/planning/planner.ts';
import { namesProblem, planNamed } from '../../src/planning/named.ts';
import { bucket, input, seedSnapshot } from '../planning/fixtures.ts';

describe('named demands (exact CycleCloud node names)', () => {
  it('leaves a request without names exactly as the planner plans it', () => {
    const i = input([
      { nodearray: 'ondemand', count: 2 },
      { nodearray: 'mpi', count: 4, colocated: true },
    ]);
    expect(planNamed(i)).toEqual(plan(i));
  });

  it('splits a set into nameFormat/nameOffset runs of consecutive indices', () => {
    // Prepare: 5 named nodes with two gaps
    const names = ['ondemand-1', 'ondemand-2', 'ondemand-3', 'ondemand-7', 'ondemand-9'];
    const snapshot = seedSnapshot();
    snapshot.nodearrays[0]!.buckets[0] = bucket({ machineType: 'Standard_F32s_v2', maxCount: 10, availableCount: 10 });

    // Act
    const p = planNamed(input([{ nodearray: 'ondemand', count: 5, machineTypes: ['Standard_F32s_v2'], names }], { snapshot }));

    // Assess: three sets, one per run, same bucket; the demand is placed
    expect(p.sets.map((s) => s.set)).toEqual([
      { nodearray: 'ondemand', count: 3, definition: { machineType: 'Standard_F32s_v2' }, nameFormat: 'ondemand-%d', nameOffset: 1 },
      { nodearray: 'ondemand', count: 1, definition: { machineType: 'Standard_F32s_v2' }, nameFormat: 'ondemand-%d', nameOffset: 7 },
      { nodearray: 'ondemand', count: 1, definition: { machineType: 'Standard_F32s_v2' }, nameFormat: 'ondemand-%d', nameOffset: 9 },
    ]);
    expect(p.sets.map((s) => s.demands)).toEqual([[{ index: 0, count: 3 }], [{ index: 0, count: 1 }], [{ index: 0, count: 1 }]]);
    expect(p.demands[0]).toMatchObject({ status: 'placed', planned: 5 });
  });

  it('keeps a colocated gang in one placement group across its runs', () => {
    const p = planNamed(input([{ nodearray: 'mpi', count: 4, colocated: true, names: ['mpi-1', 'mpi-2', 'mpi-5', 'mpi-6'] }]));
    expect(p.sets).toHaveLength(2);
    expect(new Set(p.sets.map((s) => s.set.placementGroupId)).size).toBe(1);
    expect(p.sets.map((s) => [s.set.nameOffset, s.count])).toEqual([
      [1, 2],
      [5, 2],
    ]);
  });

  it('gives a partial placement the first names and the next generation the rest', () => {
    // Prepare: the bucket has room for 3 of 5
    const names = ['ondemand-1', 'ondemand-2', 'ondemand-3', 'ondemand-4', 'ondemand-5'];
    const demand = { nodearray: 'ondemand', count: 5, machineTypes: ['Standard_F32s_v2'], names };
    const first = planNamed(input([demand]));
    expect(first.sets.map((s) => [s.set.nameOffset, s.count])).toEqual([[1, 3]]);
    expect(first.demands[0]).toMatchObject({ status: 'partial', planned: 3 });

    // Act: later, 2 remain and there is room
    const later = planNamed(input([demand], { remaining: { 0: 2 } }));

    // Assess
    expect(later.sets.map((s) => [s.set.nameOffset, s.count])).toEqual([[4, 2]]);
  });

  it('never merges two named demands into one unnamed set', () => {
    const p = planNamed(
      input([
        { nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'], names: ['ondemand-4'] },
        { nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'], names: ['ondemand-5'] },
      ]),
    );
    expect(p.sets.map((s) => [s.set.nameOffset, s.demands])).toEqual([
      [4, [{ index: 0, count: 1 }]],
      [5, [{ index: 1, count: 1 }]],
    ]);
  });

  it('rejects names CycleCloud cannot produce, and takes no capacity for them', () => {
    expect(namesProblem(['a-01'], 1)).toMatch(/cannot produce a-01/);
    expect(namesProblem(['a%d-1'], 1)).toMatch(/cannot produce/);
    expect(namesProblem(['login'], 1)).toMatch(/cannot produce login/);
    expect(namesProblem(['a-1', 'a-1'], 2)).toMatch(/duplicates/);
    expect(namesProblem(['a-1'], 2)).toMatch(/lists 1 names but count is 2/);
    const p = planNamed(
      input([
        { nodearray: 'ondemand', count: 1, names: ['ondemand-01'] },
        { nodearray: 'ondemand', count: 3, machineTypes: ['Standard_F32s_v2'] },
      ]),
    );
    expect(p.demands[0]).toMatchObject({ status: 'rejected', reason: expect.stringMatching(/demand 0: .*ondemand-01/) });
    expect(p.demands[1]).toMatchObject({ status: 'placed', planned: 3 });
  });
});
