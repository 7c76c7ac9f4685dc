/**
 * scalelib's own kind of workload, expressed natively (issue 11; generator in
 * `test/planning/workload.ts`): 200 nodearrays × 5 buckets, jobs of 1–8 nodes with a per-node
 * `minVcpus`, 30 % colocated, all-or-nothing, no nodearray given.
 * - Case A: 1,000 jobs in one request (goal ≤ 2 ms median after warm-up).
 * - Case B: 10,000 jobs, as 10 requests of 1,000 chained through in-flight capacity, and as one
 *   call (goal ≤ 25 ms each).
 * Quality from the independent checker (`test/planning/checker.ts`): violations (must be 0), nodes
 * placed against a plain first-fit in CycleCloud's order, and placement groups used. The first plan
 * in a fresh process (a cold Function) is reported beside the warm figure.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { plan } from '../../src/planning/planner.ts';
import type { InFlightAllocation, Plan, PlanInput } from '../../src/planning/types.ts';
import { checkPlan, firstFit, planStats } from '../planning/checker.ts';
import { T0 } from '../planning/fixtures.ts';
import { scalelibCluster, scalelibJobs, scalelibRequest } from '../planning/workload.ts';
import { measure, summarise } from './measure.ts';

const here = dirname(fileURLToPath(import.meta.url));
const snapshot = scalelibCluster();
const inputOf = (jobs: number, seed: number, requestId: string, inFlight: InFlightAllocation[] = []): PlanInput => ({
  request: scalelibRequest(scalelibJobs(jobs, seed), requestId),
  snapshot,
  inFlight,
  backoffs: [],
  nowMs: T0 + 5_000,
});

/** 10 requests of 1,000, each seeing the earlier ones' sets as in flight; `ms` = the 10 plan calls only. */
function chained(): { plans: Plan[]; inputs: PlanInput[]; ms: number } {
  const inFlight: InFlightAllocation[] = [];
  const plans: Plan[] = [];
  const inputs: PlanInput[] = [];
  let ms = 0;
  for (let r = 0; r < 10; r++) {
    const i = inputOf(1000, 100 + r, `scalelib-${r}`, [...inFlight]);
    const t = performance.now();
    const p = plan(i);
    ms += performance.now() - t;
    inputs.push(i);
    plans.push(p);
    for (const s of p.sets) inFlight.push({ nodearray: s.nodearray, machineType: s.machineType, placementGroupId: s.placementGroupId, count: s.count });
  }
  return { plans, inputs, ms };
}

function quality(i: PlanInput, p: Plan) {
  const ours = planStats(p);
  const base = firstFit(i);
  return {
    violations: checkPlan(i, p).length,
    nodes_placed: ours.nodes,
    first_fit_nodes: base.nodes,
    demands_placed: ours.demandsPlaced,
    placement_groups: ours.groups,
    first_fit_placement_groups: base.groups,
  };
}

function cold(jobs: number, runs: number) {
  const samples = Array.from(
    { length: runs },
    () =>
      JSON.parse(execFileSync(process.execPath, [join(here, 'planner-cold.ts'), String(jobs)], { encoding: 'utf8' })) as { importMs: number; firstMs: number; secondMs: number },
  );
  return {
    cold_first_plan_ms: summarise(samples.map((s) => s.firstMs)).median_ms,
    cold_second_plan_ms: summarise(samples.map((s) => s.secondMs)).median_ms,
    cold_import_ms: summarise(samples.map((s) => s.importMs)).median_ms,
    cold_runs: runs,
  };
}

export async function run(): Promise<object[]> {
  const a = inputOf(1000, 2, 'scalelib-a');
  const b = inputOf(10_000, 3, 'scalelib-b');
  const ta = await measure(() => plan(a), { runs: 60, warmup: 20 });
  const tb = await measure(() => plan(b), { runs: 15, warmup: 3 });
  for (let w = 0; w < 2; w++) chained();
  const tc = summarise(Array.from({ length: 10 }, () => chained().ms));
  // What /api/plan pays: verdicts and an explanation for every demand (no goal; diagnostics only).
  const explained = { ...a, options: { explain: 'all' as const } };
  const te = await measure(() => plan(explained), { runs: 10, warmup: 2 });
  const chain = chained();
  const chainQuality = chain.plans.map((p, r) => quality(chain.inputs[r]!, p));
  const sum = (k: keyof ReturnType<typeof quality>) => chainQuality.reduce((x, q) => x + q[k], 0);
  return [
    { bench: 'planner_scalelib_a_1000_jobs', ...ta, goal_ms: 2, ...quality(a, plan(a)), ...cold(1000, 3) },
    { bench: 'planner_scalelib_a_explain_all', ...te, answer_kb: Math.round(JSON.stringify(plan(explained)).length / 1024) },
    { bench: 'planner_scalelib_b_10000_jobs_one_call', ...tb, goal_ms: 25, ...quality(b, plan(b)), ...cold(10_000, 2) },
    {
      bench: 'planner_scalelib_b_10x1000_chained',
      ...tc,
      goal_ms: 25,
      violations: sum('violations'),
      nodes_placed: sum('nodes_placed'),
      first_fit_nodes: sum('first_fit_nodes'),
      demands_placed: sum('demands_placed'),
      placement_groups: sum('placement_groups'),
      first_fit_placement_groups: sum('first_fit_placement_groups'),
    },
  ];
}
