/** Snapshot and request builders for planner tests and benches. */
import type { BucketSnapshot, ClusterSnapshot, NodearraySnapshot } from '../../src/snapshots/model.ts';
import type { Demand, ScaleRequest } from '../../src/ledger/schemas.ts';
import type { PlanInput } from '../../src/planning/types.ts';

export const T0 = Date.parse('2026-11-28T01:00:00.000Z');

export function bucket(over: Partial<BucketSnapshot> & { machineType: string }): BucketSnapshot {
  return {
    bucketId: `b-${over.machineType.toLowerCase()}`,
    vcpuCount: 32,
    memoryGB: 64,
    infiniband: false,
    valid: true,
    maxCount: 100,
    activeCount: 0,
    availableCount: 100,
    quotaCount: 100,
    maxPlacementGroupSize: 40,
    placementGroups: [],
    lastCapacityFailureSec: null,
    ...over,
  };
}

/**
 * The seed's cluster (reference/cyclecloud-rest-api.md example, spelled as the simulator spells it)
 * plus the `mpi` InfiniBand nodearray whose placement groups hold at most 4 nodes.
 */
export function seedSnapshot(over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  const ondemand: NodearraySnapshot = {
    name: 'ondemand',
    maxCount: 100,
    maxCoreCount: 500,
    buckets: [
      bucket({ bucketId: 'cd56af52', machineType: 'Standard_F32s_v2', vcpuCount: 32, memoryGB: 64, maxCount: 3, availableCount: 3, quotaCount: 3 }),
      bucket({ bucketId: 'd81e001a', machineType: 'Standard_HC44rs', vcpuCount: 44, memoryGB: 327.83, infiniband: true, maxCount: 11, availableCount: 11, quotaCount: 200 }),
    ],
  };
  const mpi: NodearraySnapshot = {
    name: 'mpi',
    maxCount: 64,
    maxCoreCount: 64 * 120,
    buckets: [
      bucket({
        bucketId: 'e0a1',
        machineType: 'Standard_HB120rs_v3',
        vcpuCount: 120,
        memoryGB: 448,
        infiniband: true,
        maxCount: 64,
        availableCount: 64,
        quotaCount: 64,
        maxPlacementGroupSize: 4,
      }),
    ],
  };
  return { cluster: 'hpc', takenAt: new Date(T0).toISOString(), maxCount: 100, maxCoreCount: 10_000, nodearrays: [ondemand, mpi], ...over };
}

export function request(demands: Demand[], requestId = 'job-4711'): ScaleRequest {
  return { kind: 'scale', requestId, cluster: 'hpc', demands };
}

export function input(demands: Demand[], over: Partial<PlanInput> = {}): PlanInput {
  return { request: request(demands), snapshot: seedSnapshot(), inFlight: [], backoffs: [], nowMs: T0 + 10_000, ...over };
}

/** A large synthetic cluster: `nodearrays` × `buckets`, ample limits, a few groups per bucket. */
export function largeSnapshot(nodearrays: number, buckets: number): ClusterSnapshot {
  return {
    cluster: 'big',
    takenAt: new Date(T0).toISOString(),
    maxCount: 1_000_000,
    maxCoreCount: 100_000_000,
    nodearrays: Array.from({ length: nodearrays }, (_, n) => ({
      name: `na${n}`,
      maxCount: 5000,
      maxCoreCount: 5000 * 64,
      buckets: Array.from({ length: buckets }, (_, k) =>
        bucket({
          bucketId: `na${n}-b${k}`,
          machineType: `Standard_T${k}`,
          vcpuCount: 16 * (k + 1),
          infiniband: k % 2 === 1,
          maxCount: 1000,
          availableCount: 1000 - k * 10,
          maxPlacementGroupSize: 100,
          placementGroups: [
            { name: `na${n}-b${k}-pg0`, activeCount: 10 * k },
            { name: `na${n}-b${k}-pg1`, activeCount: 90 },
          ],
        }),
      ),
    })),
  };
}

/** `count` demands spread over the large cluster's nodearrays: loose, preferring, and colocated. */
export function largeDemands(count: number, nodearrays: number): Demand[] {
  return Array.from({ length: count }, (_, i) => {
    const nodearray = `na${(i * 7) % nodearrays}`;
    if (i % 3 === 0) return { nodearray, count: 1 + (i % 4) };
    if (i % 3 === 1) return { nodearray, count: 2 + (i % 5), machineTypes: ['Standard_T3', 'standard_t1'] };
    return { nodearray, count: 1 + (i % 8), colocated: true };
  });
}
