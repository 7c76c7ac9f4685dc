import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { plan } from '../../src/planning/planner.ts';
import type { InFlightAllocation, PlanInput } from '../../src/planning/types.ts';
import type { ClusterSnapshot } from '../../src/snapshots/model.ts';
import type { Demand } from '../../src/ledger/schemas.ts';
import { bucket, T0 } from './fixtures.ts';

const MACHINES = ['Standard_A', 'Standard_B', 'Standard_C'];

const bucketArb = (na: number, k: number) =>
  fc
    .record({
      vcpuCount: fc.constantFrom(4, 16, 44, 120),
      availableCount: fc.integer({ min: 0, max: 30 }),
      activeCount: fc.integer({ min: 0, max: 10 }),
      maxPlacementGroupSize: fc.integer({ min: 1, max: 12 }),
      infiniband: fc.boolean(),
      valid: fc.boolean(),
      groups: fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 3 }),
      lastCapacityFailureSec: fc.option(fc.integer({ min: 0, max: 600 })),
    })
    .map((b) =>
      bucket({
        bucketId: `na${na}-b${k}`,
        machineType: MACHINES[k]!,
        vcpuCount: b.vcpuCount,
        availableCount: b.availableCount,
        activeCount: b.activeCount,
        maxPlacementGroupSize: b.maxPlacementGroupSize,
        infiniband: b.infiniband,
        valid: b.valid,
        ...(b.valid ? {} : { invalidReason: 'NotActivated' }),
        placementGroups: b.groups.map((activeCount, g) => ({ name: `pg${g}`, activeCount: Math.min(activeCount, b.maxPlacementGroupSize) })),
        lastCapacityFailureSec: b.lastCapacityFailureSec,
      }),
    );

const snapshotArb: fc.Arbitrary<ClusterSnapshot> = fc
  .record({
    maxCount: fc.integer({ min: 0, max: 120 }),
    maxCoreCount: fc.integer({ min: 0, max: 4000 }),
    nodearrays: fc.tuple(
      ...[0, 1].map((n) =>
        fc.record({
          maxCount: fc.integer({ min: 0, max: 80 }),
          maxCoreCount: fc.integer({ min: 0, max: 3000 }),
          buckets: fc.integer({ min: 1, max: 3 }).chain((len) => fc.tuple(...Array.from({ length: len }, (_, k) => bucketArb(n, k)))),
        }),
      ),
    ),
  })
  .map((c) => ({
    cluster: 'hpc',
    takenAt: new Date(T0).toISOString(),
    maxCount: c.maxCount,
    maxCoreCount: c.maxCoreCount,
    nodearrays: c.nodearrays.map((na, n) => ({ name: `na${n}`, ...na })),
  }));

const demandArb: fc.Arbitrary<Demand> = fc
  .record({
    nodearray: fc.constantFrom('na0', 'na1', 'na9'),
    count: fc.integer({ min: 1, max: 20 }),
    machineTypes: fc.option(fc.subarray(MACHINES, { minLength: 1 }).map((m) => m.map((x) => (x.length % 2 ? x.toLowerCase() : x)))),
    colocated: fc.boolean(),
    placementGroupId: fc.option(fc.constantFrom('pg0', 'pg1', 'mine')),
    tag: fc.option(fc.constantFrom('a', 'b')),
  })
  .map((d) => ({
    nodearray: d.nodearray,
    count: d.count,
    ...(d.machineTypes ? { machineTypes: d.machineTypes } : {}),
    ...(d.colocated ? { colocated: true } : {}),
    ...(d.colocated && d.placementGroupId ? { placementGroupId: d.placementGroupId } : {}),
    ...(d.tag ? { nodeAttributes: { Tags: { t: d.tag } } } : {}),
  }));

const inputArb: fc.Arbitrary<PlanInput> = fc
  .record({
    snapshot: snapshotArb,
    demands: fc.array(demandArb, { minLength: 1, maxLength: 8 }),
    inFlight: fc.array(
      fc.record({
        na: fc.integer({ min: 0, max: 1 }),
        k: fc.integer({ min: 0, max: 2 }),
        pg: fc.option(fc.constantFrom('pg0', 'pg1', 'job-d0-g0')),
        count: fc.integer({ min: 1, max: 6 }),
      }),
      { maxLength: 4 },
    ),
    backoffUntil: fc.option(fc.integer({ min: -1000, max: 1000 })),
    generation: fc.integer({ min: 0, max: 3 }),
    excluded: fc.subarray(['pg0', 'pg1', 'job-d0-g0']),
  })
  .map((r) => {
    const inFlight: InFlightAllocation[] = r.inFlight
      .filter((f) => r.snapshot.nodearrays[f.na]!.buckets[f.k])
      .map((f) => ({ nodearray: `na${f.na}`, machineType: MACHINES[f.k]!, placementGroupId: f.pg, count: f.count }));
    return {
      request: { kind: 'scale' as const, requestId: 'job', cluster: 'hpc', demands: r.demands },
      snapshot: r.snapshot,
      inFlight,
      backoffs: r.backoffUntil === null ? [] : [{ nodearray: 'na0', machineType: 'standard_a', untilMs: T0 + 10_000 + r.backoffUntil, reason: 'test' }],
      nowMs: T0 + 10_000,
      generation: r.generation,
      excludedPlacementGroups: r.excluded,
    };
  });

const RUNS = { numRuns: 400 };

describe('plan: properties', () => {
  it('generates inputs that exercise every outcome', () => {
    // Guards the generator: properties over inputs that never place anything would prove nothing.
    const seen = new Set<string>();
    fc.assert(
      fc.property(inputArb, (i) => {
        for (const d of plan(i).demands) seen.add(`${i.request.demands[d.index]!.colocated ? 'gang' : 'loose'}:${d.status}`);
      }),
      RUNS,
    );
    expect([...seen].sort()).toEqual(expect.arrayContaining(['gang:placed', 'gang:rejected', 'gang:waiting', 'loose:partial', 'loose:placed', 'loose:rejected', 'loose:waiting']));
  });

  it('is deterministic: the same input gives a deep-equal plan', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        expect(plan(structuredClone(i))).toEqual(plan(i));
      }),
      RUNS,
    );
  });

  it('never exceeds a bucket, nodearray, cluster or placement-group limit', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const p = plan(i);
        const bucketOf = new Map(i.snapshot.nodearrays.flatMap((na) => na.buckets.map((b) => [b.bucketId, { na, b }] as const)));
        const vcpuOf = (na: string, mt: string) =>
          i.snapshot.nodearrays.find((n) => n.name === na)!.buckets.find((b) => b.machineType.toLowerCase() === mt.toLowerCase())!.vcpuCount;
        const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((a, x) => a + f(x), 0);

        let clusterNew = 0;
        let clusterNewCores = 0;
        for (const na of i.snapshot.nodearrays) {
          const sets = p.sets.filter((s) => s.nodearray === na.name);
          const flights = i.inFlight.filter((f) => f.nodearray === na.name);
          const newCount = sum(sets, (s) => s.count);
          const newCores = sum(sets, (s) => s.count * bucketOf.get(s.bucketId)!.b.vcpuCount);
          clusterNew += newCount;
          clusterNewCores += newCores;
          const used = sum(na.buckets, (b) => b.activeCount) + sum(flights, (f) => f.count);
          const usedCores = sum(na.buckets, (b) => b.activeCount * b.vcpuCount) + sum(flights, (f) => f.count * vcpuOf(f.nodearray, f.machineType));
          expect(newCount).toBeLessThanOrEqual(Math.max(0, na.maxCount - used));
          expect(newCores).toBeLessThanOrEqual(Math.max(0, na.maxCoreCount - usedCores));
          for (const b of na.buckets) {
            const inB = sets.filter((s) => s.bucketId === b.bucketId);
            if (!b.valid) expect(inB).toEqual([]);
            const fl = sum(
              flights.filter((f) => f.machineType.toLowerCase() === b.machineType.toLowerCase()),
              (f) => f.count,
            );
            expect(sum(inB, (s) => s.count)).toBeLessThanOrEqual(Math.max(0, b.availableCount - fl));
            for (const g of new Set(inB.map((s) => s.placementGroupId).filter((x) => x !== null))) {
              const active = b.placementGroups.find((x) => x.name === g)?.activeCount ?? 0;
              const flying = sum(
                flights.filter((f) => f.placementGroupId === g && f.machineType === b.machineType),
                (f) => f.count,
              );
              expect(
                active +
                  flying +
                  sum(
                    inB.filter((s) => s.placementGroupId === g),
                    (s) => s.count,
                  ),
              ).toBeLessThanOrEqual(b.maxPlacementGroupSize);
            }
          }
        }
        const allUsed =
          sum(
            i.snapshot.nodearrays.flatMap((n) => n.buckets),
            (b) => b.activeCount,
          ) + sum(i.inFlight, (f) => f.count);
        const allUsedCores =
          sum(
            i.snapshot.nodearrays.flatMap((n) => n.buckets),
            (b) => b.activeCount * b.vcpuCount,
          ) + sum(i.inFlight, (f) => f.count * vcpuOf(f.nodearray, f.machineType));
        expect(clusterNew).toBeLessThanOrEqual(Math.max(0, i.snapshot.maxCount - allUsed));
        expect(clusterNewCores).toBeLessThanOrEqual(Math.max(0, i.snapshot.maxCoreCount - allUsedCores));
      }),
      RUNS,
    );
  });

  it('places colocated demands all or nothing, in one group', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const p = plan(i);
        for (const d of p.demands) {
          const demand = i.request.demands[d.index]!;
          if (!demand.colocated) continue;
          if (d.planned === 0) {
            expect(d.placements).toEqual([]);
            continue;
          }
          expect(d.planned).toBe(demand.count);
          expect(d.placements).toHaveLength(1);
          expect(d.placements[0]!.placementGroupId).not.toBeNull();
          if (demand.placementGroupId) expect(d.placements[0]!.placementGroupId).toBe(demand.placementGroupId);
          else expect(i.excludedPlacementGroups).not.toContain(d.placements[0]!.placementGroupId);
        }
      }),
      RUNS,
    );
  });

  it('plans no more than requested and accounts every node to a set and a demand', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const p = plan(i);
        expect(p.demands).toHaveLength(i.request.demands.length);
        let total = 0;
        for (const d of p.demands) {
          expect(d.planned).toBeLessThanOrEqual(i.request.demands[d.index]!.count);
          expect(d.planned).toBe(d.placements.reduce((a, x) => a + x.count, 0));
          if (d.status === 'placed') expect(d.planned).toBe(d.requested);
          else expect(d.reason).toBeTruthy();
          if (d.status === 'waiting' || d.status === 'rejected') expect(d.planned).toBe(0);
          total += d.planned;
        }
        expect(p.sets.reduce((a, s) => a + s.count, 0)).toBe(total);
        for (const s of p.sets) {
          expect(s.set.count).toBe(s.count);
          expect(s.demands.reduce((a, x) => a + x.count, 0)).toBe(s.count);
          expect(s.count).toBeGreaterThan(0);
        }
      }),
      RUNS,
    );
  });
});
