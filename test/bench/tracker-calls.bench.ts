/**
 * CycleCloud calls per tracked operation (goal ≤ 12 for a 10-minute boot with the default backoff):
 * the pure machine driven by a simulated clock — no waiting, no I/O. Nodes are Acquiring for 3 min,
 * Preparing until 10 min, then Ready; the first-poll jitter is swept over its whole range.
 */
import { DEFAULT_MACHINE_CONFIG, initialState, step, type ObservedNode, type TrackerState } from '../../src/tracking/machine.ts';
import type { TrackStart } from '../../src/tracking/types.ts';

const start: TrackStart = {
  cluster: 'hpc',
  operationId: 'op',
  cycleCloudRequestId: 'r-g0',
  requestId: 'r',
  action: 'create',
  generation: 0,
  sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count: 4, added: 4, colocated: false, demands: [{ index: 0, count: 4 }] }],
};

/** Polls until final; returns the CycleCloud calls (one per poll) and when the op was seen final. */
function simulate(bootMs: number, jitter: number): { calls: number; noticedAfterMs: number } {
  const t0 = 0;
  let s: TrackerState = initialState(start, t0, DEFAULT_MACHINE_CONFIG, jitter);
  let calls = 0;
  while (!s.final && calls < 1000) {
    const now = s.nextPollAtMs;
    const status = now - t0 >= bootMs ? 'Ready' : now - t0 >= 180_000 ? 'Preparing' : 'Acquiring';
    const nodes: ObservedNode[] = [1, 2, 3, 4].map((i) => ({ name: `ondemand-${i}`, id: `id-${i}`, status, nodearray: 'ondemand', machineType: 'Standard_F32s_v2' }));
    s = step(s, { nowMs: now, nodes }).state;
    calls += 1;
    if (s.final) return { calls, noticedAfterMs: now - t0 - bootMs };
  }
  return { calls, noticedAfterMs: Number.NaN };
}

export async function run(): Promise<object[]> {
  const out: object[] = [];
  for (const [bench, bootMs, goal] of [
    ['tracker_calls_boot_10min', 600_000, 12],
    ['tracker_calls_boot_3min', 180_000, null],
  ] as const) {
    const runs = Array.from({ length: 101 }, (_, i) => simulate(bootMs, i / 101));
    const calls = runs.map((r) => r.calls);
    const lag = runs.map((r) => r.noticedAfterMs);
    out.push({
      bench,
      max_calls: Math.max(...calls),
      mean_calls: Math.round((calls.reduce((a, b) => a + b, 0) / calls.length) * 100) / 100,
      max_notice_lag_ms: Math.max(...lag),
      runs: runs.length,
      ...(goal !== null ? { goal_calls: goal } : {}),
      backoff: `${DEFAULT_MACHINE_CONFIG.pollMinMs / 1000}s x${DEFAULT_MACHINE_CONFIG.backoffFactor} cap ${DEFAULT_MACHINE_CONFIG.pollMaxMs / 1000}s`,
    });
  }
  return out;
}
