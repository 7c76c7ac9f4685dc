/**
 * scalelib's kind of workload, expressed natively (issue 11), from a seeded RNG so every run of the
 * bench and the tests sees the same cluster and jobs.
 *
 * Cluster: `nodearrays` nodearrays, each with 5 buckets whose vCPU counts are a sorted sample of
 * {4, 8, 16, 32, 44, 48, 64, 72, 96, 120}, `maxCount` 100 per bucket, `maxPlacementGroupSize` 40.
 * Jobs: 1–8 whole nodes with a per-node `minVcpus` drawn from {1, 2, 4, 8, 16, 32, 44, 64, 96, 120},
 * 30 % colocated, all-or-nothing, no nodearray given.
 */
import type { ClusterSnapshot } from '../../src/snapshots/model.ts';
import type { Demand, ScaleRequest } from '../../src/ledger/schemas.ts';
import { bucket, T0 } from './fixtures.ts';
import { prng as rng } from '../helpers/prng.ts';

export const VCPU_CHOICES = [4, 8, 16, 32, 44, 48, 64, 72, 96, 120] as const;
export const MIN_VCPU_CHOICES = [1, 2, 4, 8, 16, 32, 44, 64, 96, 120] as const;

const pickOne = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** The cluster of the scalelib-shaped bench. */
export function scalelibCluster(seed = 1, nodearrays = 200, bucketsPer = 5): ClusterSnapshot {
  const r = rng(seed);
  return {
    cluster: 'scalelib',
    takenAt: new Date(T0).toISOString(),
    maxCount: 1_000_000,
    maxCoreCount: 100_000_000,
    nodearrays: Array.from({ length: nodearrays }, (_, n) => {
      // A sorted sample without replacement (partial Fisher-Yates).
      const pool = [...VCPU_CHOICES];
      for (let i = 0; i < bucketsPer; i++) {
        const j = i + Math.floor(r() * (pool.length - i));
        [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      }
      const vcpus = pool.slice(0, bucketsPer).sort((a, b) => a - b);
      return {
        name: `na${n}`,
        maxCount: 100 * bucketsPer,
        maxCoreCount: 100 * bucketsPer * 120,
        buckets: vcpus.map((vcpu) =>
          bucket({
            bucketId: `na${n}-v${vcpu}`,
            machineType: `Standard_V${vcpu}`,
            vcpuCount: vcpu,
            memoryGB: vcpu * 4,
            infiniband: vcpu >= 44,
            maxCount: 100,
            availableCount: 100,
            quotaCount: 100,
            maxPlacementGroupSize: 40,
          }),
        ),
      };
    }),
  };
}

/** `count` jobs of the scalelib-shaped bench. */
export function scalelibJobs(count: number, seed = 2): Demand[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => {
    const nodes = 1 + Math.floor(r() * 8);
    const minVcpus = pickOne(r, MIN_VCPU_CHOICES);
    const colocated = r() < 0.3;
    return colocated ? { count: nodes, minVcpus, colocated: true } : { count: nodes, minVcpus, allOrNothing: true };
  });
}

export function scalelibRequest(demands: Demand[], requestId = 'scalelib'): ScaleRequest {
  return { kind: 'scale', requestId, cluster: 'scalelib', demands };
}
