/**
 * The planner against the independent checker (`checker.ts`): limits, groups, minimums, and at
 * least as many nodes as a plain first-fit in CycleCloud's order.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { plan } from '../../src/planning/planner.ts';
import type { InFlightAllocation, Plan, PlanInput } from '../../src/planning/types.ts';
import type { ClusterSnapshot } from '../../src/snapshots/model.ts';
import type { Demand } from '../../src/ledger/schemas.ts';
import { checkPlan, firstFit, planStats } from './checker.ts';
import { bucket, T0 } from './fixtures.ts';
import { scalelibCluster, scalelibJobs, scalelibRequest } from './workload.ts';

const VCPUS = [2, 4, 8, 16, 44, 64, 120];

const snapshotArb: fc.Arbitrary<ClusterSnapshot> = fc
  .record({
    maxCount: fc.integer({ min: 0, max: 200 }),
    maxCoreCount: fc.integer({ min: 0, max: 20_000 }),
    nodearrays: fc.array(
      fc.record({
        maxCount: fc.integer({ min: 0, max: 100 }),
        maxCoreCount: fc.integer({ min: 0, max: 10_000 }),
        buckets: fc.array(
          fc.record({
            vcpu: fc.constantFrom(...VCPUS),
            gpu: fc.constantFrom(0, 0, 1, 4),
            infiniband: fc.boolean(),
            valid: fc.integer({ min: 0, max: 5 }).map((x) => x > 0),
            availableCount: fc.integer({ min: 0, max: 30 }),
            activeCount: fc.integer({ min: 0, max: 10 }),
            pg: fc.integer({ min: 1, max: 12 }),
            groups: fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 3 }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .map((c) => ({
    cluster: 'hpc',
    takenAt: new Date(T0).toISOString(),
    maxCount: c.maxCount,
    maxCoreCount: c.maxCoreCount,
    nodearrays: c.nodearrays.map((na, n) => ({
      name: `na${n}`,
      maxCount: na.maxCount,
      maxCoreCount: na.maxCoreCount,
      buckets: na.buckets.map((b, k) =>
        bucket({
          bucketId: `na${n}-b${k}`,
          machineType: `Standard_M${k}`,
          vcpuCount: b.vcpu,
          memoryGB: b.vcpu * 4,
          gpuCount: b.gpu,
          infiniband: b.infiniband,
          valid: b.valid,
          ...(b.valid ? {} : { invalidReason: 'NotActivated' }),
          availableCount: b.availableCount,
          activeCount: b.activeCount,
          maxCount: b.availableCount + b.activeCount,
          maxPlacementGroupSize: b.pg,
          placementGroups: b.groups.map((a, g) => ({ name: `pg${g}`, activeCount: Math.min(a, b.pg) })),
        }),
      ),
    })),
  }));

const selectorsArb = fc.record({
  nodearrays: fc.option(fc.subarray(['na0', 'na1', 'na2', 'na3'], { minLength: 1 }), { freq: 3 }),
  minVcpus: fc.option(fc.constantFrom(1, 4, 16, 44, 100)),
  minMemoryGB: fc.option(fc.constantFrom(8, 64, 300)),
  minGpus: fc.option(fc.constantFrom(1, 2), { freq: 4 }),
  infiniband: fc.boolean(),
});

/** All-or-nothing and colocated demands, CycleCloud's order: where first-fit is the floor. */
const wholeDemandArb: fc.Arbitrary<Demand> = fc.record({ s: selectorsArb, count: fc.integer({ min: 1, max: 12 }), colocated: fc.boolean() }).map(({ s, count, colocated }) => {
  const d: Demand = { count, ...(colocated ? { colocated: true } : { allOrNothing: true }) };
  if (s.nodearrays) d.nodearrays = s.nodearrays;
  if (s.minVcpus !== null) d.minVcpus = s.minVcpus;
  if (s.minMemoryGB !== null) d.minMemoryGB = s.minMemoryGB;
  if (s.minGpus !== null) d.minGpus = s.minGpus;
  if (s.infiniband) d.infiniband = true;
  if (d.nodearrays === undefined && d.minVcpus === undefined && d.minMemoryGB === undefined && d.minGpus === undefined && !d.infiniband) d.minVcpus = 1;
  return d;
});

/** Anything the schema allows: loose spreads, pick smallest, own and given groups, machineTypes. */
const anyDemandArb: fc.Arbitrary<Demand> = fc
  .record({
    base: wholeDemandArb,
    loose: fc.constantFrom('spread', 'aon', 'gang', 'own', 'given'),
    pick: fc.constantFrom(undefined, 'first', 'smallest'),
    machineTypes: fc.option(fc.subarray(['Standard_M0', 'standard_m2', 'Standard_M4'], { minLength: 1 })),
    group: fc.constantFrom('pg0', 'pg1', 'mine'),
  })
  .map(({ base, loose, pick, machineTypes, group }) => {
    const { colocated: _c, allOrNothing: _a, ...d } = base;
    const out: Demand = { ...d };
    if (loose === 'aon') out.allOrNothing = true;
    if (loose === 'gang' || loose === 'own') out.colocated = true;
    if (loose === 'own') out.ownPlacementGroup = true;
    if (loose === 'given') out.placementGroupId = group;
    if (pick) out.pick = pick as 'first' | 'smallest';
    if (machineTypes) out.machineTypes = machineTypes;
    return out;
  });

const inputArb = (demand: fc.Arbitrary<Demand>): fc.Arbitrary<PlanInput> =>
  fc
    .record({
      snapshot: snapshotArb,
      demands: fc.array(demand, { minLength: 1, maxLength: 12 }),
      inFlight: fc.array(
        fc.record({
          na: fc.integer({ min: 0, max: 3 }),
          k: fc.integer({ min: 0, max: 4 }),
          pg: fc.option(fc.constantFrom('pg0', 'pg1', 'job-d0-g0')),
          count: fc.integer({ min: 1, max: 6 }),
        }),
        { maxLength: 4 },
      ),
      excluded: fc.subarray(['pg0', 'job-d1-g0']),
    })
    .map((r) => {
      const inFlight: InFlightAllocation[] = r.inFlight
        .filter((f) => r.snapshot.nodearrays[f.na]?.buckets[f.k])
        .map((f) => ({ nodearray: `na${f.na}`, machineType: `Standard_M${f.k}`, placementGroupId: f.pg, count: f.count }));
      return {
        request: { kind: 'scale' as const, requestId: 'job', cluster: 'hpc', demands: r.demands },
        snapshot: r.snapshot,
        inFlight,
        backoffs: [],
        nowMs: T0 + 10_000,
        excludedPlacementGroups: r.excluded,
      };
    });

const RUNS = { numRuns: 300 };

describe('plan: quality against the independent checker', () => {
  it('whole demands: the checker finds nothing, and at least as many nodes as first-fit are placed', () => {
    let placedSome = 0;
    const runs = { numRuns: 600 };
    fc.assert(
      fc.property(inputArb(wholeDemandArb), (i) => {
        const p = plan(i);
        expect(checkPlan(i, p)).toEqual([]);
        const ours = planStats(p);
        const base = firstFit(i);
        expect(ours.nodes).toBeGreaterThanOrEqual(base.nodes);
        // Packing: never more groups than placed gangs.
        expect(ours.groups).toBeLessThanOrEqual(p.demands.filter((d) => d.planned > 0 && i.request.demands[d.index]!.colocated).length);
        if (ours.nodes > 0) placedSome++;
      }),
      runs,
    );
    // Guards the generator: a floor over inputs where nothing fits would prove nothing.
    expect(placedSome).toBeGreaterThan(runs.numRuns / 7);
  });

  it('any demands (spreads, pick smallest, own and given groups): the checker finds nothing', () => {
    fc.assert(
      fc.property(inputArb(anyDemandArb), (i) => {
        expect(checkPlan(i, plan(i))).toEqual([]);
        expect(checkPlan(i, plan({ ...i, options: { explain: 'all' } }))).toEqual([]);
      }),
      RUNS,
    );
  });

  it('explain: all changes only the words, never the placements', () => {
    fc.assert(
      fc.property(inputArb(anyDemandArb), (i) => {
        const fast = plan(i);
        const slow = plan({ ...i, options: { explain: 'all' } });
        expect(slow.sets).toEqual(fast.sets);
        expect(slow.demands.map((d) => [d.status, d.planned, d.code, d.reason, d.boundBy, d.placements, d.choice])).toEqual(
          fast.demands.map((d) => [d.status, d.planned, d.code, d.reason, d.boundBy, d.placements, d.choice]),
        );
      }),
      RUNS,
    );
  });
});

describe('the checker itself', () => {
  const i: PlanInput = { request: scalelibRequest(scalelibJobs(200, 7)), snapshot: scalelibCluster(3, 10), inFlight: [], backoffs: [], nowMs: T0 + 1000 };

  it('passes the scalelib-shaped workload and counts fewer groups than one per gang', () => {
    const p = plan(i);
    expect(checkPlan(i, p)).toEqual([]);
    const ours = planStats(p);
    const base = firstFit(i);
    expect(ours.nodes).toBeGreaterThanOrEqual(base.nodes);
    expect(ours.groups).toBeLessThan(base.groups);
  });

  it('catches a bucket over capacity, a split gang, a node below its minimum, and a group over its size', () => {
    const p = plan(i);
    const broken: Plan = structuredClone(p);
    const gang = broken.sets.find((s) => s.placementGroupId !== null)!;
    // Over capacity and over the group size: 100 more nodes in one set.
    gang.count += 100;
    gang.set.count += 100;
    gang.demands[0]!.count += 100;
    const errors = checkPlan(i, broken);
    expect(errors.some((e) => e.includes('planned > availableCount'))).toBe(true);
    expect(errors.some((e) => e.includes('> maxPlacementGroupSize 40'))).toBe(true);
    expect(errors.some((e) => e.includes('sets hold'))).toBe(true);

    const split: Plan = structuredClone(p);
    const s = split.sets.find((x) => x.placementGroupId !== null && x.count >= 2)!;
    const d = s.demands[0]!;
    split.sets.push({
      ...structuredClone(s),
      placementGroupId: 'other',
      count: 1,
      demands: [{ index: d.index, count: 1 }],
      set: { ...s.set, count: 1, placementGroupId: 'other' },
    });
    s.count -= 1;
    s.set.count -= 1;
    d.count -= 1;
    expect(checkPlan(i, split)).toEqual(expect.arrayContaining([`demand ${d.index}: colocated, but in 2 placement groups`]));

    const small: Plan = structuredClone(p);
    const big = small.sets.find((x) => (i.request.demands[x.demands[0]!.index]!.minVcpus ?? 0) >= 64)!;
    const na = i.snapshot.nodearrays.find((n) => n.name === big.nodearray)!;
    big.bucketId = na.buckets[0]!.bucketId;
    big.set.definition = { machineType: na.buckets[0]!.machineType };
    expect(checkPlan(i, small).some((e) => e.includes('nodes do not meet its selectors'))).toBe(true);
  });
});
