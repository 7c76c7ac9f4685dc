import { describe, expect, it } from 'vitest';
import { plan, placementGroupIdFor } from '../../src/planning/planner.ts';
import { input, seedSnapshot, T0 } from './fixtures.ts';

describe('plan: the seed example', () => {
  it('puts 4 × Standard_HC44rs with placementGroupId pg0 into one set', () => {
    // Prepare
    const i = input([{ nodearray: 'ondemand', count: 4, machineTypes: ['Standard_HC44rs'], placementGroupId: 'pg0' }]);
    // Act
    const p = plan(i);
    // Assess
    expect(p.sets.map((s) => s.set)).toEqual([{ count: 4, nodearray: 'ondemand', placementGroupId: 'pg0', definition: { machineType: 'Standard_HC44rs' } }]);
    expect(p.demands[0]).toMatchObject({ status: 'placed', planned: 4, code: null, reason: null });
    expect(p.sets[0]!.demands).toEqual([{ index: 0, count: 4 }]);
  });

  it('matches machine types case-insensitively and sends the bucket spelling', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 2, machineTypes: ['standard_hc44RS'] }]));
    expect(p.sets[0]!.set.definition).toEqual({ machineType: 'Standard_HC44rs' });
    expect(p.demands[0]!.status).toBe('placed');
  });
});

describe('plan: rejections', () => {
  it('rejects an unknown nodearray and lists the ones that exist', () => {
    const p = plan(input([{ nodearray: 'gpu', count: 1 }]));
    expect(p.sets).toEqual([]);
    expect(p.demands[0]).toMatchObject({ status: 'rejected', code: 'PLAN_UNKNOWN_NODEARRAY' });
    expect(p.demands[0]!.reason).toContain('"gpu"');
    expect(p.demands[0]!.reason).toContain('ondemand, mpi');
  });

  it('rejects a machine type no bucket has and lists the buckets', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs', 'Standard_ND96'] }]));
    expect(p.demands[0]).toMatchObject({ status: 'rejected', code: 'PLAN_UNKNOWN_MACHINE_TYPE', planned: 0 });
    expect(p.demands[0]!.reason).toContain('Standard_ND96');
    expect(p.demands[0]!.reason).toContain('Standard_F32s_v2, Standard_HC44rs');
  });

  it('rejects when only invalid buckets remain and says why they are invalid', () => {
    const snapshot = seedSnapshot();
    snapshot.nodearrays[1]!.buckets[0] = { ...snapshot.nodearrays[1]!.buckets[0]!, valid: false, invalidReason: 'DisabledMachineType' };
    const p = plan(input([{ nodearray: 'mpi', count: 1 }], { snapshot }));
    expect(p.demands[0]).toMatchObject({ status: 'rejected', code: 'PLAN_NO_VALID_BUCKET' });
    expect(p.demands[0]!.reason).toContain('DisabledMachineType');
    expect(p.demands[0]!.considered[0]).toMatchObject({ verdict: 'invalid' });
  });

  it('rejects a colocated count above every placement group size, naming bucket and size', () => {
    const p = plan(input([{ nodearray: 'mpi', count: 6, colocated: true }]));
    expect(p.sets).toEqual([]);
    expect(p.demands[0]).toMatchObject({ status: 'rejected', code: 'PLAN_EXCEEDS_PLACEMENT_GROUP', planned: 0 });
    expect(p.demands[0]!.reason).toBe('demand 0 needs 6 nodes in one placement group but mpi/Standard_HB120rs_v3 allows at most 4 (maxPlacementGroupSize)');
    expect(p.demands[0]!.boundBy).toBe('maxPlacementGroupSize=4 (mpi/Standard_HB120rs_v3)');
  });
});

describe('plan: shared limits', () => {
  it('lets the bucket bind F32s_v2 at 3 although the nodearray core limit allows 15', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 10, machineTypes: ['Standard_F32s_v2'] }]));
    expect(p.demands[0]).toMatchObject({ status: 'partial', planned: 3, code: 'PLAN_NO_CAPACITY', boundBy: 'bucket availableCount 3 (ondemand/Standard_F32s_v2)' });
    expect(p.demands[0]!.reason).toContain('7 nodes wait for capacity');
  });

  it('shares the nodearray maxCoreCount 500 across buckets and demands', () => {
    // 11 × HC44rs = 484 cores; 16 cores remain, less than one F32s_v2 (32).
    const p = plan(
      input([
        { nodearray: 'ondemand', count: 11, machineTypes: ['Standard_HC44rs'] },
        { nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'] },
      ]),
    );
    expect(p.demands[0]).toMatchObject({ status: 'placed', planned: 11 });
    expect(p.demands[1]).toMatchObject({ status: 'waiting', planned: 0, code: 'PLAN_NO_CAPACITY', boundBy: 'nodearray maxCoreCount 500 (ondemand)' });
    expect(p.demands[1]!.reason).toContain('484 are active, in flight or planned');
  });

  it('binds by the cluster maxCount across nodearrays', () => {
    const p = plan(
      input(
        [
          { nodearray: 'mpi', count: 3 },
          { nodearray: 'ondemand', count: 5 },
        ],
        { snapshot: seedSnapshot({ maxCount: 5 }) },
      ),
    );
    expect(p.demands[0]!.planned).toBe(3);
    expect(p.demands[1]).toMatchObject({ status: 'partial', planned: 2, boundBy: 'cluster maxCount 5' });
  });

  it('subtracts in-flight nodes from the bucket they were asked in', () => {
    const p = plan(
      input([{ nodearray: 'ondemand', count: 3, machineTypes: ['Standard_F32s_v2'] }], {
        inFlight: [{ nodearray: 'ondemand', machineType: 'standard_f32s_v2', placementGroupId: null, count: 2 }],
      }),
    );
    expect(p.demands[0]).toMatchObject({ status: 'partial', planned: 1 });
    expect(p.demands[0]!.boundBy).toBe('bucket availableCount 3 (ondemand/Standard_F32s_v2) less 2 in-flight');
    expect(p.demands[0]!.reason).toBe('demand 0 got 1 of 3 nodes: ondemand/Standard_F32s_v2 took 1 (availableCount 3 less 2 in-flight); 2 nodes wait for capacity');
  });

  it('counts in-flight nodes of one bucket against the nodearray limit of the others', () => {
    // 10 × HC44rs in flight = 440 cores of 500: room for one F32s_v2 (32), not three.
    const p = plan(
      input([{ nodearray: 'ondemand', count: 3, machineTypes: ['Standard_F32s_v2'] }], {
        inFlight: [{ nodearray: 'ondemand', machineType: 'Standard_HC44rs', placementGroupId: null, count: 10 }],
      }),
    );
    expect(p.demands[0]).toMatchObject({ planned: 1, boundBy: 'nodearray maxCoreCount 500 (ondemand)' });
  });
});

describe('plan: loose demands', () => {
  it('keeps a loose demand on one machine type when a later preference can take it whole', () => {
    // F32s_v2 has room for 3 of 5; HC44rs takes all 5 rather than splitting 3 + 2.
    const p = plan(input([{ nodearray: 'ondemand', count: 5, machineTypes: ['Standard_F32s_v2', 'Standard_HC44rs'] }]));
    expect(p.demands[0]).toMatchObject({ status: 'placed', planned: 5, nodearray: 'ondemand', bucketId: 'd81e001a' });
    expect(p.sets.map((s) => [s.machineType, s.count])).toEqual([['Standard_HC44rs', 5]]);
    expect(p.demands[0]!.choice).toMatchObject({ passedOver: 1, split: false });
  });

  it('fills the first preference and spills into the next when no bucket can take it whole', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 12, machineTypes: ['Standard_F32s_v2', 'Standard_HC44rs'] }]));
    expect(p.demands[0]).toMatchObject({ status: 'placed', planned: 12 });
    expect(p.sets.map((s) => [s.machineType, s.count])).toEqual([
      ['Standard_F32s_v2', 3],
      ['Standard_HC44rs', 9],
    ]);
    expect(p.demands[0]!.placements.map((x) => x.count)).toEqual([3, 9]);
    expect(p.demands[0]!.choice).toMatchObject({ split: true });
  });

  it('uses CycleCloud bucket order without machineTypes', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 1 }]));
    expect(p.sets[0]!.machineType).toBe('Standard_F32s_v2');
  });

  it('never sets a placement group on loose nodes', () => {
    const p = plan(input([{ nodearray: 'mpi', count: 10 }]));
    expect(p.sets).toHaveLength(1);
    expect(p.sets[0]!.set.placementGroupId).toBeUndefined();
    expect(p.sets[0]!.count).toBe(10);
  });
});

describe('plan: colocated demands', () => {
  it('puts InfiniBand buckets first when no machineTypes are given', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 2, colocated: true }]));
    expect(p.sets[0]!.machineType).toBe('Standard_HC44rs');
    expect(p.sets[0]!.placementGroupId).toBe('job-4711-d0-g0');
  });

  it('reuses the fullest existing group that fits the gang', () => {
    const snapshot = seedSnapshot();
    const mpi = snapshot.nodearrays[1]!;
    mpi.buckets[0] = {
      ...mpi.buckets[0]!,
      placementGroups: [
        { name: 'a', activeCount: 1 },
        { name: 'b', activeCount: 2 },
        { name: 'c', activeCount: 3 },
      ],
    };
    const p = plan(input([{ nodearray: 'mpi', count: 2, colocated: true }], { snapshot }));
    expect(p.sets[0]!.placementGroupId).toBe('b');
  });

  it('counts in-flight nodes of a group and skips excluded groups', () => {
    const snapshot = seedSnapshot();
    const mpi = snapshot.nodearrays[1]!;
    mpi.buckets[0] = {
      ...mpi.buckets[0]!,
      placementGroups: [
        { name: 'a', activeCount: 1 },
        { name: 'b', activeCount: 2 },
      ],
    };
    const p = plan(
      input([{ nodearray: 'mpi', count: 2, colocated: true }], {
        snapshot,
        inFlight: [{ nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'b', count: 1 }],
        excludedPlacementGroups: ['a'],
        generation: 2,
      }),
    );
    expect(p.sets[0]!.placementGroupId).toBe('job-4711-d0-g2');
  });

  it('never reuses an excluded generated id', () => {
    const p = plan(input([{ nodearray: 'mpi', count: 2, colocated: true }], { excludedPlacementGroups: ['job-4711-d0-g0'] }));
    expect(p.sets[0]!.placementGroupId).toBe('job-4711-d0-g0-r1');
  });

  it('waits with PLAN_NO_PLACEMENT_GROUP_ROOM when the given group is too full', () => {
    const snapshot = seedSnapshot();
    const mpi = snapshot.nodearrays[1]!;
    mpi.buckets[0] = { ...mpi.buckets[0]!, placementGroups: [{ name: 'pg1', activeCount: 3 }] };
    const p = plan(input([{ nodearray: 'mpi', count: 2, placementGroupId: 'pg1' }], { snapshot }));
    expect(p.sets).toEqual([]);
    expect(p.demands[0]).toMatchObject({ status: 'waiting', planned: 0, code: 'PLAN_NO_PLACEMENT_GROUP_ROOM', boundBy: 'maxPlacementGroupSize=4 (mpi/Standard_HB120rs_v3)' });
    expect(p.demands[0]!.reason).toContain('room for 1 of 2');
  });

  it('places nothing when capacity lacks for the whole gang (all or nothing)', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 12, colocated: true, machineTypes: ['Standard_HC44rs', 'Standard_F32s_v2'] }]));
    expect(p.sets).toEqual([]);
    expect(p.demands[0]).toMatchObject({ status: 'waiting', planned: 0, code: 'PLAN_NO_CAPACITY', boundBy: 'bucket availableCount 11 (ondemand/Standard_HC44rs)' });
    expect(p.demands[0]!.reason).toContain('all or nothing');
  });

  it('gives each gang its own new group and shares limits between gangs', () => {
    const p = plan(
      input(
        [
          { nodearray: 'mpi', count: 4, colocated: true },
          { nodearray: 'mpi', count: 4, colocated: true },
        ],
        { snapshot: seedSnapshot({ maxCount: 6 }) },
      ),
    );
    expect(p.demands[0]).toMatchObject({ status: 'placed' });
    expect(p.demands[1]).toMatchObject({ status: 'waiting', code: 'PLAN_NO_CAPACITY', boundBy: 'cluster maxCount 6' });
  });

  it('uses remaining[index] instead of count', () => {
    const p = plan(
      input(
        [
          { nodearray: 'mpi', count: 4, colocated: true },
          { nodearray: 'mpi', count: 2 },
        ],
        { remaining: { 0: 3 } },
      ),
    );
    expect(p.demands[0]).toMatchObject({ status: 'placed', planned: 3, requested: 3 });
    expect(p.demands[1]).toMatchObject({ status: 'skipped', planned: 0 });
  });
});

describe('plan: backoff and staleness', () => {
  it('skips a bucket whose CycleCloud capacity failure is recent', () => {
    const snapshot = seedSnapshot();
    const od = snapshot.nodearrays[0]!;
    od.buckets[0] = { ...od.buckets[0]!, lastCapacityFailureSec: 60 };
    const p = plan(input([{ nodearray: 'ondemand', count: 2 }], { snapshot, options: { explain: 'all' } }));
    expect(p.sets.map((s) => s.machineType)).toEqual(['Standard_HC44rs']);
    expect(p.demands[0]!.considered[0]).toMatchObject({ verdict: 'backoff', machineType: 'Standard_F32s_v2' });
  });

  it('uses a capacity failure older than the window', () => {
    const snapshot = seedSnapshot();
    const od = snapshot.nodearrays[0]!;
    od.buckets[0] = { ...od.buckets[0]!, lastCapacityFailureSec: 295 };
    // 295 s at takenAt + 10 s since = 305 s > 300 s.
    const p = plan(input([{ nodearray: 'ondemand', count: 2 }], { snapshot }));
    expect(p.sets.map((s) => s.machineType)).toEqual(['Standard_F32s_v2']);
  });

  it('skips a bucket in the capacity memory until untilMs, then waits with PLAN_CAPACITY_BACKOFF', () => {
    const backoffs = [{ nodearray: 'mpi', machineType: 'standard_hb120rs_v3', untilMs: T0 + 60_000, reason: 'AllocationFailed' }];
    const p = plan(input([{ nodearray: 'mpi', count: 2 }], { backoffs }));
    expect(p.demands[0]).toMatchObject({ status: 'waiting', code: 'PLAN_CAPACITY_BACKOFF', boundBy: 'capacity-failure backoff' });
    expect(p.demands[0]!.reason).toContain('AllocationFailed');
    const later = plan(input([{ nodearray: 'mpi', count: 2 }], { backoffs, nowMs: T0 + 60_000 }));
    expect(later.demands[0]!.status).toBe('placed');
  });

  it('makes every demand wait on a stale snapshot', () => {
    const p = plan(
      input(
        [
          { nodearray: 'mpi', count: 2 },
          { nodearray: 'gpu', count: 1 },
        ],
        { nowMs: T0 + 121_000 },
      ),
    );
    expect(p.sets).toEqual([]);
    expect(p.demands.map((d) => [d.status, d.code])).toEqual([
      ['waiting', 'PLAN_STALE_SNAPSHOT'],
      ['waiting', 'PLAN_STALE_SNAPSHOT'],
    ]);
    expect(p.demands[0]!.reason).toContain('121 s old');
    expect(plan(input([{ nodearray: 'mpi', count: 2 }], { nowMs: T0 + 30_000, options: { maxSnapshotAgeSec: 20 } })).demands[0]!.code).toBe('PLAN_STALE_SNAPSHOT');
  });
});

describe('plan: grouping into one create', () => {
  it('merges demands with the same bucket, group and attributes into one set', () => {
    const p = plan(
      input([
        { nodearray: 'mpi', count: 1, nodeAttributes: { KeepAlive: true, Tags: { a: 1, b: 2 } } },
        { nodearray: 'mpi', count: 2 },
        { nodearray: 'mpi', count: 3, nodeAttributes: { Tags: { b: 2, a: 1 }, KeepAlive: true } },
        { nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] },
      ]),
    );
    expect(p.sets.map((s) => [s.nodearray, s.count, s.set.nodeAttributes ?? null])).toEqual([
      ['mpi', 4, { KeepAlive: true, Tags: { a: 1, b: 2 } }],
      ['mpi', 2, null],
      ['ondemand', 1, null],
    ]);
    expect(p.sets[0]!.demands).toEqual([
      { index: 0, count: 1 },
      { index: 2, count: 3 },
    ]);
    expect(p.demands[2]!.placements[0]!.setIndex).toBe(0);
  });
});

describe('placementGroupIdFor', () => {
  it('is readable, sanitised and at most 64 characters', () => {
    expect(placementGroupIdFor('job:47.11', 3, 1)).toBe('job-47-11-d3-g1');
    const long = placementGroupIdFor('x'.repeat(128), 999, 12, 2);
    expect(long.length).toBeLessThanOrEqual(64);
    expect(long).toMatch(/^x+-[0-9a-f]{8}-d999-g12-r2$/);
    expect(placementGroupIdFor('x'.repeat(128), 1, 0)).not.toBe(placementGroupIdFor(`${'x'.repeat(127)}y`, 1, 0));
  });
});

describe('plan: explanations', () => {
  it('writes no per-bucket verdicts for a fully placed demand unless asked (the hot path)', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }]));
    expect(p.demands[0]).toMatchObject({ status: 'placed', considered: [], nodearray: 'ondemand', bucketId: 'd81e001a' });
    expect(p.demands[0]!.explanation).toBeUndefined();
  });

  it('explains buckets that were not preferred', () => {
    const p = plan(input([{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }], { options: { explain: 'all' } }));
    // Preferred buckets first (the order they are tried in), then the rest of the nodearray.
    expect(p.demands[0]!.considered.map((c) => [c.machineType, c.verdict, c.note])).toEqual([
      ['Standard_HC44rs', 'chosen', 'took 1 of 11'],
      ['Standard_F32s_v2', 'not-preferred', 'not in machineTypes'],
    ]);
    expect(p.demands[0]!.explanation).toBe(
      "ondemand/Standard_HC44rs (bucket d81e001a): the first of 1 matching bucket in CycleCloud's order with room for all 1; of the other buckets 1 did not meet the selectors or are invalid",
    );
  });
});

describe('plan: a given placement group that exists', () => {
  it('goes to the bucket the group lives in, even if another is preferred', () => {
    const snapshot = seedSnapshot();
    const od = snapshot.nodearrays[0]!;
    od.buckets[1] = { ...od.buckets[1]!, placementGroups: [{ name: 'pg7', activeCount: 2 }] };
    const p = plan(
      input([{ nodearray: 'ondemand', count: 2, placementGroupId: 'pg7', machineTypes: ['Standard_F32s_v2', 'Standard_HC44rs'] }], { snapshot, options: { explain: 'all' } }),
    );
    expect(p.sets.map((s) => [s.machineType, s.placementGroupId, s.count])).toEqual([['Standard_HC44rs', 'pg7', 2]]);
    expect(p.demands[0]!.considered[0]).toMatchObject({ machineType: 'Standard_F32s_v2', verdict: 'not-preferred' });
  });
});
