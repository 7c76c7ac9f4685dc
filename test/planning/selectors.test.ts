import { describe, expect, it } from 'vitest';
import { describeChoice, plan } from '../../src/planning/planner.ts';
import { parseRequestMessage } from '../../src/ledger/schemas.ts';
import type { ClusterSnapshot } from '../../src/snapshots/model.ts';
import { bucket, input, seedSnapshot } from './fixtures.ts';

/** The seed cluster plus a `gpu` nodearray (first bucket 8 vCPUs/0 GPUs, then 24 vCPUs/4 GPUs). */
function withGpu(): ClusterSnapshot {
  const s = seedSnapshot();
  s.nodearrays.push({
    name: 'gpu',
    maxCount: 20,
    maxCoreCount: 1000,
    buckets: [
      bucket({ bucketId: 'g0', machineType: 'Standard_D8s_v5', vcpuCount: 8, memoryGB: 32 }),
      bucket({ bucketId: 'g1', machineType: 'Standard_NC24ads_A100_v4', vcpuCount: 24, memoryGB: 220, gpuCount: 1 }),
      bucket({ bucketId: 'g4', machineType: 'Standard_NC96ads_A100_v4', vcpuCount: 96, memoryGB: 880, gpuCount: 4 }),
    ],
  });
  return s;
}

describe('demand schema: selectors', () => {
  const scale = (demand: unknown) => parseRequestMessage({ requestId: 'r1', cluster: 'hpc', demands: [demand] });

  it('accepts a demand without nodearray when it has another selector', () => {
    const r = scale({ count: 4, minVcpus: 44, colocated: true });
    expect(r.ok).toBe(true);
  });

  it('refuses a demand with no selector, naming the demand', () => {
    const r = scale({ count: 4, colocated: true });
    expect(r).toEqual({
      ok: false,
      errors: [{ path: 'demands.0', message: expect.stringContaining('needs at least one selector: nodearray, nodearrays, machineTypes, minVcpus') }],
    });
    expect(scale({ count: 1, infiniband: false }).ok).toBe(false);
  });

  it('refuses nodearray together with nodearrays, and bad minimums and pick', () => {
    expect(scale({ count: 1, nodearray: 'a', nodearrays: ['b'] })).toMatchObject({ ok: false, errors: [{ path: 'demands.0.nodearrays' }] });
    expect(scale({ count: 1, minVcpus: -1 })).toMatchObject({ ok: false, errors: [{ path: 'demands.0.minVcpus', message: 'must be ≥ 0' }] });
    expect(scale({ count: 1, minVcpus: 2.5 })).toMatchObject({ ok: false, errors: [{ path: 'demands.0.minVcpus' }] });
    expect(scale({ count: 1, minMemoryGB: 'lots' })).toMatchObject({ ok: false, errors: [{ path: 'demands.0.minMemoryGB' }] });
    expect(scale({ count: 1, minGpus: 1, pick: 'cheapest' })).toMatchObject({ ok: false, errors: [{ path: 'demands.0.pick', message: 'must be "first" or "smallest"' }] });
    expect(scale({ count: 1, nodearrays: [] })).toMatchObject({ ok: false, errors: [{ path: 'demands.0.nodearrays' }] });
    expect(scale({ count: 1, ncpus: 4 })).toMatchObject({ ok: false, errors: expect.arrayContaining([{ path: 'demands.0.ncpus', message: 'is not a known field' }]) });
  });

  it('accepts every docs/api.md §3 selector at once', () => {
    const r = scale({
      count: 2,
      nodearrays: ['gpu'],
      machineTypes: ['Standard_NC96ads_A100_v4'],
      minVcpus: 8,
      minMemoryGB: 64.5,
      minGpus: 4,
      infiniband: true,
      allOrNothing: true,
      pick: 'smallest',
      colocated: true,
      ownPlacementGroup: true,
    });
    expect(r.ok).toBe(true);
  });
});

describe('plan: selectors across nodearrays', () => {
  it('finds the first bucket in CycleCloud order meeting minVcpus, across nodearrays', () => {
    const p = plan(input([{ count: 4, minVcpus: 44, colocated: true }]));
    expect(p.demands[0]).toMatchObject({ status: 'placed', nodearray: 'ondemand', bucketId: 'd81e001a' });
    expect(p.sets.map((s) => s.set)).toEqual([{ nodearray: 'ondemand', count: 4, definition: { machineType: 'Standard_HC44rs' }, placementGroupId: 'job-4711-d0-g0' }]);
    expect(p.demands[0]!.choice).toEqual({ pick: 'first', candidates: 2, passedOver: 0, backingOff: 0, unsuitable: 1, split: false, group: 'new' });
  });

  it('goes to the next nodearray when the first has nothing big enough', () => {
    const p = plan(
      input([
        { count: 2, minVcpus: 64 },
        { count: 1, minMemoryGB: 400 },
        { count: 1, infiniband: true },
      ]),
    );
    expect(p.demands.map((d) => [d.nodearray, d.placements[0]?.machineType])).toEqual([
      ['mpi', 'Standard_HB120rs_v3'],
      ['mpi', 'Standard_HB120rs_v3'],
      ['ondemand', 'Standard_HC44rs'],
    ]);
  });

  it('keeps to the nodearrays listed, in their order', () => {
    const p = plan(input([{ count: 1, nodearrays: ['mpi', 'ondemand'], minVcpus: 40 }]));
    expect(p.demands[0]).toMatchObject({ nodearray: 'mpi', bucketId: 'e0a1' });
  });

  it('picks the smallest machine that meets the minimums with pick: smallest', () => {
    const p = plan(input([{ count: 1, nodearrays: ['mpi', 'ondemand'], minVcpus: 40, pick: 'smallest' }]));
    expect(p.demands[0]).toMatchObject({ nodearray: 'ondemand', bucketId: 'd81e001a' });
    expect(describeChoice(p.demands[0]!)).toContain('the smallest of 2 matching buckets');
  });

  it('matches GPUs and memory against virtualMachine.gpuCount and memory', () => {
    const p = plan(
      input(
        [
          { count: 1, minGpus: 2 },
          { count: 1, minGpus: 1, minMemoryGB: 100, pick: 'smallest' },
        ],
        { snapshot: withGpu() },
      ),
    );
    expect(p.demands.map((d) => d.bucketId)).toEqual(['g4', 'g1']);
  });

  it('rejects a demand no bucket can ever meet, naming the selectors and the largest machine', () => {
    const p = plan(input([{ count: 1, minGpus: 8 }], { snapshot: withGpu() }));
    expect(p.demands[0]).toMatchObject({ status: 'rejected', code: 'PLAN_NO_MATCHING_BUCKET', boundBy: 'selectors (minGpus ≥ 8)' });
    expect(p.demands[0]!.reason).toBe(
      'demand 0 asks for minGpus ≥ 8, which no bucket of cluster hpc meets; the largest is mpi/Standard_HB120rs_v3 with 120 vCPUs, 448 GB, 0 GPUs, InfiniBand',
    );
    expect(p.demands[0]!.considered.find((v) => v.bucketId === 'g4')).toMatchObject({ nodearray: 'gpu', verdict: 'unsuitable', note: 'gpuCount 4 < minGpus 8' });
  });

  it('rejects an unknown nodearray in nodearrays and a machine type no listed nodearray has', () => {
    const p = plan(
      input([
        { count: 1, nodearrays: ['mpi', 'gpux'] },
        { count: 1, nodearrays: ['mpi', 'ondemand'], machineTypes: ['Standard_ND40'] },
      ]),
    );
    expect(p.demands[0]).toMatchObject({ status: 'rejected', code: 'PLAN_UNKNOWN_NODEARRAY' });
    expect(p.demands[0]!.reason).toContain('"gpux"');
    expect(p.demands[1]).toMatchObject({ status: 'rejected', code: 'PLAN_UNKNOWN_MACHINE_TYPE' });
    expect(p.demands[1]!.reason).toContain('Standard_ND40, which no nodearray of nodearrays mpi, ondemand has a bucket for');
  });

  it('explains a demand that cannot be placed with verdicts per bucket, without unsuitable noise first', () => {
    const p = plan(input([{ count: 70, minVcpus: 44, allOrNothing: true }]));
    const d = p.demands[0]!;
    expect(d).toMatchObject({ status: 'waiting', code: 'PLAN_NO_CAPACITY', planned: 0 });
    expect(d.reason).toContain('needs all 70 nodes from one bucket (allOrNothing)');
    expect(d.reason).toContain('ondemand/Standard_HC44rs has room for 11');
    expect(d.considered.map((v) => [v.nodearray, v.machineType, v.verdict])).toEqual([
      ['ondemand', 'Standard_HC44rs', 'full'],
      ['mpi', 'Standard_HB120rs_v3', 'full'],
      ['ondemand', 'Standard_F32s_v2', 'unsuitable'],
    ]);
  });
});

describe('plan: allOrNothing and splitting', () => {
  it('places an allOrNothing loose demand whole in one bucket or not at all', () => {
    const ok = plan(input([{ count: 10, nodearray: 'ondemand', allOrNothing: true }]));
    expect(ok.sets.map((s) => [s.machineType, s.count])).toEqual([['Standard_HC44rs', 10]]);
    const none = plan(input([{ count: 12, nodearray: 'ondemand', allOrNothing: true }]));
    expect(none.sets).toEqual([]);
    expect(none.demands[0]).toMatchObject({ status: 'waiting', planned: 0 });
    const split = plan(input([{ count: 12, nodearray: 'ondemand' }]));
    expect(split.demands[0]).toMatchObject({ status: 'placed', planned: 12 });
    expect(split.sets.map((s) => s.count)).toEqual([3, 9]);
  });
});

describe('plan: a loose demand spread over one machine type', () => {
  it('spreads over buckets of one machine type across nodearrays before mixing machine types', () => {
    const snapshot = seedSnapshot();
    snapshot.nodearrays = [
      {
        name: 'a',
        maxCount: 100,
        maxCoreCount: 10_000,
        buckets: [bucket({ bucketId: 'a1', machineType: 'Standard_A', availableCount: 3 }), bucket({ bucketId: 'a2', machineType: 'Standard_B', availableCount: 4 })],
      },
      { name: 'b', maxCount: 100, maxCoreCount: 10_000, buckets: [bucket({ bucketId: 'b1', machineType: 'Standard_A', availableCount: 3 })] },
    ];
    const p = plan(input([{ count: 6, minVcpus: 1 }], { snapshot }));
    expect(p.sets.map((s) => [s.nodearray, s.machineType, s.count])).toEqual([
      ['a', 'Standard_A', 3],
      ['b', 'Standard_A', 3],
    ]);
    // When no machine type has room enough on its own, plain first-fit.
    const q = plan(input([{ count: 8, minVcpus: 1 }], { snapshot }));
    expect(q.sets.map((s) => [s.nodearray, s.machineType, s.count])).toEqual([
      ['a', 'Standard_A', 3],
      ['a', 'Standard_B', 4],
      ['b', 'Standard_A', 1],
    ]);
    expect(describeChoice(q.demands[0]!)).toContain('spread over 3 buckets first-fit');
  });
});

describe('plan: shared placement groups', () => {
  it('packs colocated demands into one group with room, one set per demand, and opens a new one when full', () => {
    // mpi groups hold 4: 2 + 2 share the first group, the next 2 open a second.
    const p = plan(
      input([
        { count: 2, nodearray: 'mpi', colocated: true },
        { count: 2, minVcpus: 100, colocated: true },
        { count: 3, nodearray: 'mpi', colocated: true },
        { count: 1, nodearray: 'mpi', colocated: true },
      ]),
    );
    expect(p.sets.map((s) => [s.placementGroupId, s.count, s.demands])).toEqual([
      ['job-4711-d0-g0', 2, [{ index: 0, count: 2 }]],
      ['job-4711-d0-g0', 2, [{ index: 1, count: 2 }]],
      ['job-4711-d2-g0', 3, [{ index: 2, count: 3 }]],
      ['job-4711-d2-g0', 1, [{ index: 3, count: 1 }]],
    ]);
    expect(p.demands.map((d) => d.choice?.group)).toEqual(['new', 'shared', 'new', 'shared']);
    expect(describeChoice(p.demands[1]!)).toContain('placement group job-4711-d0-g0 (shared with an earlier demand of this request)');
  });

  it('gives ownPlacementGroup its own group, which later demands do not join either', () => {
    const p = plan(
      input([
        { count: 1, nodearray: 'mpi', colocated: true, ownPlacementGroup: true },
        { count: 1, nodearray: 'mpi', colocated: true },
        { count: 1, nodearray: 'mpi', colocated: true, ownPlacementGroup: true },
      ]),
    );
    expect(p.sets.map((s) => s.placementGroupId)).toEqual(['job-4711-d0-g0', 'job-4711-d1-g0', 'job-4711-d2-g0']);
    expect(p.demands.map((d) => d.choice?.group)).toEqual(['own', 'new', 'own']);
  });

  it('does not pack other demands into a caller-named group it opens', () => {
    const p = plan(
      input([
        { count: 1, nodearray: 'mpi', placementGroupId: 'mine' },
        { count: 1, nodearray: 'mpi', colocated: true },
      ]),
    );
    expect(p.sets.map((s) => s.placementGroupId)).toEqual(['mine', 'job-4711-d1-g0']);
  });

  it('prefers the fullest existing group over a group opened in this plan when it fits better', () => {
    const snapshot = seedSnapshot();
    const mpi = snapshot.nodearrays[1]!;
    mpi.buckets[0] = { ...mpi.buckets[0]!, placementGroups: [{ name: 'old', activeCount: 3 }] };
    const p = plan(
      input(
        [
          { count: 2, nodearray: 'mpi', colocated: true },
          { count: 1, nodearray: 'mpi', colocated: true },
        ],
        { snapshot },
      ),
    );
    expect(p.sets.map((s) => s.placementGroupId)).toEqual(['job-4711-d0-g0', 'old']);
    expect(p.demands[1]!.choice?.group).toBe('existing');
  });
});

describe('plan: explanations on demand', () => {
  it("writes an explanation and verdicts for every demand with explain: 'all'", () => {
    const p = plan(input([{ count: 2, minVcpus: 44, colocated: true }], { options: { explain: 'all' } }));
    expect(p.demands[0]!.explanation).toBe(
      "ondemand/Standard_HC44rs (bucket d81e001a): the first of 2 matching buckets in CycleCloud's order with room for all 2; of the other buckets 1 did not meet the selectors or are invalid; placement group job-4711-d0-g0 (new)",
    );
    // Candidates after the chosen one were not needed: counted, not listed.
    expect(p.demands[0]!.considered.map((v) => [v.machineType, v.verdict])).toEqual([
      ['Standard_HC44rs', 'chosen'],
      ['Standard_F32s_v2', 'unsuitable'],
    ]);
    expect(p.demands[0]!.consideredOmitted).toBe(1);
  });

  it('caps verdicts of a demand across many nodearrays and says how many were left out', () => {
    const snapshot = seedSnapshot();
    snapshot.nodearrays = Array.from({ length: 300 }, (_, n) => ({
      name: `na${n}`,
      maxCount: 10,
      maxCoreCount: 1000,
      buckets: [bucket({ bucketId: `b${n}`, machineType: 'Standard_X', vcpuCount: 4, availableCount: 0 })],
    }));
    const p = plan(input([{ count: 1, minVcpus: 2 }], { snapshot }));
    expect(p.demands[0]).toMatchObject({ status: 'waiting', consideredOmitted: 250 });
    expect(p.demands[0]!.considered).toHaveLength(50);
    expect(p.demands[0]!.reason).toContain('… and 288 more');
  });
});
