/**
 * A demand's `capacity`: `regular` and `spot` filter buckets by their nodearray's Interruptible,
 * `spot-first` tries spot buckets first and says why it fell back; a gang is never split.
 */
import { describe, expect, it } from 'vitest';
import { planChoice, plan } from '../../src/planning/planner.ts';
import { parseRequestMessage, type Demand } from '../../src/ledger/schemas.ts';
import type { BucketSnapshot, ClusterSnapshot } from '../../src/snapshots/model.ts';
import { bucket, input, seedSnapshot } from './fixtures.ts';

/** The seed cluster plus, last, the simulator's `spot` nodearray: 8 × Standard_F32s_v2, groups of 4. */
function withSpot(spot: Partial<BucketSnapshot> = {}): ClusterSnapshot {
  const s = seedSnapshot();
  s.nodearrays.push({
    name: 'spot',
    maxCount: 8,
    maxCoreCount: 8 * 32,
    buckets: [bucket({ bucketId: 'f5b0', machineType: 'Standard_F32s_v2', maxCount: 8, availableCount: 8, quotaCount: 8, maxPlacementGroupSize: 4, spot: true, ...spot })],
  });
  return s;
}

const run = (demands: Demand[], snapshot = withSpot(), explain: 'unplaced' | 'all' = 'unplaced') => plan(input(demands, { snapshot, options: { explain } }));
const where = (p: ReturnType<typeof plan>, i = 0) => p.demands[i]!.placements.map((x) => [`${x.nodearray}/${x.machineType}`, x.count, x.spot === true]);

describe('capacity absent: any bucket, as before', () => {
  it('first-fit still finds the regular buckets first, and spot only when they have no room', () => {
    expect(where(run([{ count: 2, minVcpus: 32 }]))).toEqual([['ondemand/Standard_F32s_v2', 2, false]]);
    expect(run([{ count: 2, minVcpus: 32 }]).sets).toEqual(plan(input([{ count: 2, minVcpus: 32 }])).sets);
    const full = withSpot();
    for (const na of full.nodearrays.slice(0, 2)) for (const b of na.buckets) b.availableCount = 0;
    expect(where(run([{ count: 2, minVcpus: 32 }], full))).toEqual([['spot/Standard_F32s_v2', 2, true]]);
  });
});

describe('capacity regular', () => {
  it('never uses a spot bucket, even when only spot has room', () => {
    // Prepare
    const full = withSpot();
    for (const na of full.nodearrays.slice(0, 2)) for (const b of na.buckets) b.availableCount = 0;
    // Act
    const p = run([{ count: 2, minVcpus: 32, capacity: 'regular' }], full, 'all');
    // Assess
    expect(p.demands[0]).toMatchObject({ status: 'waiting', planned: 0, code: 'PLAN_NO_CAPACITY' });
    expect(p.demands[0]!.considered.find((v) => v.nodearray === 'spot')).toMatchObject({ verdict: 'unsuitable', note: 'spot, capacity regular' });
  });
});

describe('capacity spot', () => {
  it('uses only spot buckets and waits when they are full', () => {
    expect(where(run([{ count: 2, minVcpus: 32, capacity: 'spot' }]))).toEqual([['spot/Standard_F32s_v2', 2, true]]);
    const p = run([{ count: 2, minVcpus: 32, capacity: 'spot' }], withSpot({ availableCount: 1 }));
    expect(p.demands[0]).toMatchObject({ status: 'partial', planned: 1 });
    expect(where(p)).toEqual([['spot/Standard_F32s_v2', 1, true]]);
  });

  it('is rejected, saying so, on a cluster without a spot bucket that meets the other selectors', () => {
    const p = plan(input([{ count: 2, minVcpus: 32, capacity: 'spot' }]));
    expect(p.demands[0]).toMatchObject({
      status: 'rejected',
      code: 'PLAN_NO_MATCHING_BUCKET',
      boundBy: 'capacity spot',
      reason: 'demand 0 asks for capacity spot, and no bucket of cluster hpc that meets its other selectors is spot (its nodearray Interruptible)',
    });
  });
});

describe('capacity spot-first', () => {
  it('prefers spot when it has room, with no fallback said', () => {
    const p = run([{ count: 2, minVcpus: 32, capacity: 'spot-first' }], withSpot(), 'all');
    expect(where(p)).toEqual([['spot/Standard_F32s_v2', 2, true]]);
    expect(p.demands[0]!.choice).not.toHaveProperty('spotFallback');
    expect(p.demands[0]!.explanation).toMatch(/^spot\/Standard_F32s_v2 \(bucket f5b0\): the first of 4 matching buckets/);
  });

  it('falls back to the first regular bucket with room for all, and says why spot had none', () => {
    // Act
    const p = run([{ count: 2, minVcpus: 32, capacity: 'spot-first' }], withSpot({ availableCount: 1 }));
    // Assess
    expect(where(p)).toEqual([['ondemand/Standard_F32s_v2', 2, false]]);
    expect(p.demands[0]!.choice?.spotFallback).toBe('spot/Standard_F32s_v2 has room for 1 of 2');
    expect(planChoice(p.demands[0]!).explanation).toBe(
      "spot had no room (spot/Standard_F32s_v2 has room for 1 of 2); regular bucket ondemand/Standard_F32s_v2 (bucket cd56af52) used: the first of 4 matching buckets in CycleCloud's order with room for all 2; of the other buckets 1 earlier candidate had no room",
    );
  });

  it('falls back past a spot bucket that is backing off, and when no spot bucket matches', () => {
    const backoff = run([{ count: 1, minVcpus: 32, capacity: 'spot-first' }], withSpot({ lastCapacityFailureSec: 10 }));
    expect(backoff.demands[0]!.choice?.spotFallback).toBe('spot/Standard_F32s_v2 is backing off after a capacity failure');
    const none = run([{ count: 1, minVcpus: 44, capacity: 'spot-first' }]);
    expect(where(none)).toEqual([['ondemand/Standard_HC44rs', 1, false]]);
    expect(none.demands[0]!.choice?.spotFallback).toBe('no spot bucket meets the demand');
  });

  it('spreads a loose demand no single bucket can take over spot first, then regular, and says so', () => {
    const noMpi = withSpot();
    noMpi.nodearrays[1]!.buckets[0]!.availableCount = 0;
    const p = run([{ count: 20, minVcpus: 32, capacity: 'spot-first' }], noMpi, 'all');
    expect(where(p)).toEqual([
      ['spot/Standard_F32s_v2', 8, true],
      ['ondemand/Standard_F32s_v2', 3, false],
      ['ondemand/Standard_HC44rs', 9, false],
    ]);
    expect(p.demands[0]!.explanation).toMatch(
      /^spot had no room for all 20 \(spot\/Standard_F32s_v2 has room for 8 of 20\), the rest went to regular buckets; spot\/Standard_F32s_v2 \(bucket f5b0\): spread over 3 buckets first-fit/,
    );
  });

  it('never splits a gang: all of it in one spot group, or all of it in one regular bucket', () => {
    // Act
    const inSpot = run([{ count: 4, minVcpus: 32, capacity: 'spot-first', colocated: true }]);
    const noRoom = run([{ count: 4, minVcpus: 32, capacity: 'spot-first', colocated: true }], withSpot({ availableCount: 3 }));
    const tooBig = run([{ count: 6, minVcpus: 32, capacity: 'spot-first', colocated: true }]);
    // Assess
    expect(where(inSpot)).toEqual([['spot/Standard_F32s_v2', 4, true]]);
    expect(where(noRoom)).toEqual([['ondemand/Standard_HC44rs', 4, false]]);
    expect(noRoom.demands[0]!.choice?.spotFallback).toBe('spot/Standard_F32s_v2 has room for 3 of 4');
    expect(where(tooBig)).toEqual([['ondemand/Standard_HC44rs', 6, false]]);
    expect(tooBig.demands[0]!.choice?.spotFallback).toBe('spot/Standard_F32s_v2 has no placement group with room for 6');
    for (const p of [inSpot, noRoom, tooBig]) {
      expect(p.sets).toHaveLength(1);
      expect(p.sets[0]!.placementGroupId).not.toBeNull();
    }
  });

  it('two gangs of one request sharing a group stay in their bucket: a regular gang never joins a spot group', () => {
    const p = run([
      { count: 2, minVcpus: 32, capacity: 'spot', colocated: true },
      { count: 2, minVcpus: 32, capacity: 'regular', colocated: true },
      { count: 2, minVcpus: 32, capacity: 'spot-first', colocated: true },
    ]);
    const groups = p.demands.map((d) => [d.placements[0]!.placementGroupId, d.placements[0]!.spot === true]);
    expect(groups[0]![1]).toBe(true);
    expect(groups[1]![1]).toBe(false);
    expect(groups[1]![0]).not.toBe(groups[0]![0]);
    expect(groups[2]).toEqual(groups[0]); // joins the spot gang's group, which has room for 2 more
  });

  it('gives the same plan whether explained or not', () => {
    const demands: Demand[] = [
      { count: 20, minVcpus: 32, capacity: 'spot-first' },
      { count: 4, minVcpus: 32, capacity: 'spot-first', colocated: true },
    ];
    const fast = run(demands, withSpot({ availableCount: 5 }));
    const slow = run(demands, withSpot({ availableCount: 5 }), 'all');
    expect(slow.sets).toEqual(fast.sets);
    expect(slow.demands.map((d) => [d.placements, d.choice])).toEqual(fast.demands.map((d) => [d.placements, d.choice]));
  });
});

describe('demand schema: capacity', () => {
  const scale = (demand: unknown) => parseRequestMessage({ requestId: 'r1', cluster: 'hpc', demands: [demand] });

  it('accepts regular, spot and spot-first, and refuses anything else naming the field', () => {
    for (const capacity of ['regular', 'spot', 'spot-first']) expect(scale({ count: 1, minVcpus: 1, capacity }).ok).toBe(true);
    expect(scale({ count: 1, minVcpus: 1, capacity: 'cheap' })).toEqual({
      ok: false,
      errors: [{ path: 'demands.0.capacity', message: 'must be "regular", "spot" or "spot-first"' }],
    });
  });
});
