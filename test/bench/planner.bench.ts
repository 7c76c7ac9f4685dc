/** The planner against 200 nodearrays × 5 buckets: 1,000 demands (goal ≤ 10 ms median) and 10,000 (≤ 12× that). */
import { plan } from '../../src/planning/planner.ts';
import type { PlanInput } from '../../src/planning/types.ts';
import { largeDemands, largeSnapshot, T0 } from '../planning/fixtures.ts';
import { measure } from './measure.ts';

const NODEARRAYS = 200;
const BUCKETS = 5;

function inputFor(demands: number): PlanInput {
  return {
    request: { kind: 'scale', requestId: `bench-${demands}`, cluster: 'big', demands: largeDemands(demands, NODEARRAYS) },
    snapshot: largeSnapshot(NODEARRAYS, BUCKETS),
    inFlight: Array.from({ length: 200 }, (_, i) => ({ nodearray: `na${i}`, machineType: 'Standard_T1', placementGroupId: i % 2 ? `na${i}-b1-pg0` : null, count: 3 })),
    backoffs: Array.from({ length: 20 }, (_, i) => ({ nodearray: `na${i * 10}`, machineType: 'Standard_T0', untilMs: T0 + 3_600_000, reason: 'bench' })),
    nowMs: T0 + 5_000,
  };
}

export async function run(): Promise<object[]> {
  const small = inputFor(1000);
  const large = inputFor(10_000);
  const placed = (p: ReturnType<typeof plan>) => p.demands.filter((d) => d.status === 'placed').length;
  const t1 = await measure(() => plan(small), { runs: 60, warmup: 10 });
  const t2 = await measure(() => plan(large), { runs: 15, warmup: 3 });
  const ratio = Math.round((t2.median_ms / t1.median_ms) * 100) / 100;
  return [
    { bench: 'planner_1000_demands', ...t1, goal_ms: 10, nodearrays: NODEARRAYS, buckets_per_nodearray: BUCKETS, demands_placed: placed(plan(small)) },
    { bench: 'planner_10000_demands', ...t2, goal_ms: Math.round(t1.median_ms * 12 * 1000) / 1000, ratio_vs_1000: ratio, goal_ratio: 12, demands_placed: placed(plan(large)) },
  ];
}
