/**
 * Fair share between tenants (docs/api.md, Tenants), the batch's way: a weighted-DRF queue offers
 * capacity one request at a time, the real planner places it against one snapshot and what earlier
 * requests took, and the tenant is charged what it got.
 *  - 3 tenants, weights 1:1:2, one bucket with 40 free nodes; A's 1,000 one-node requests were
 *    accepted first, then B's 100, then C's 100 → goal A 10, B 10, C 20 (each ±1); then, B and C
 *    done, 40 more nodes free → A takes all 40 (work-conserving).
 *  - one pass over 1,000 tenants (one request each, weights 1–4, 500 free): goal ≤ 10 ms median.
 */
import { FairQueue, type FairClaim, type TenantShare } from '../../src/planning/fair-share.ts';
import { plan } from '../../src/planning/planner.ts';
import type { InFlightAllocation } from '../../src/planning/types.ts';
import type { ClusterSnapshot } from '../../src/snapshots/model.ts';
import { bucket, T0 } from '../planning/fixtures.ts';
import { addInFlight } from '../../src/requests/tenant-share.ts';
import { measure } from './measure.ts';

function snapshotWith(free: number, active = 0): ClusterSnapshot {
  return {
    cluster: 'hpc',
    takenAt: new Date(T0).toISOString(),
    maxCount: 100_000,
    maxCoreCount: 10_000_000,
    nodearrays: [
      {
        name: 'ondemand',
        maxCount: 100_000,
        maxCoreCount: 10_000_000,
        buckets: [bucket({ machineType: 'Standard_F32s_v2', vcpuCount: 32, maxCount: free + active, activeCount: active, availableCount: free, quotaCount: free + active })],
      },
    ],
  };
}

/** One batch pass; returns nodes given per tenant. */
function pass(claims: FairClaim[], shares: Map<string, TenantShare>, snapshot: ClusterSnapshot): Record<string, number> {
  const size = snapshot.nodearrays[0]!.buckets[0]!;
  const q = new FairQueue(claims, shares, { nodes: size.activeCount + size.availableCount, cores: (size.activeCount + size.availableCount) * 32 });
  const inFlight: InFlightAllocation[] = [];
  const given: Record<string, number> = {};
  for (let c = q.next(); c; c = q.next()) {
    const p = plan({
      request: { kind: 'scale', requestId: `r${c.key}`, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] },
      snapshot,
      inFlight: [...inFlight],
      backoffs: [],
      nowMs: T0 + 1_000,
    });
    const n = p.sets.reduce((a, s) => a + s.count, 0);
    for (const s of p.sets) addInFlight(inFlight, { nodearray: s.nodearray, machineType: s.machineType, placementGroupId: s.placementGroupId, count: s.count });
    if (n > 0) given[c.tenant] = (given[c.tenant] ?? 0) + n;
    q.charge(n, n * 32);
  }
  return given;
}

const claimsOf = (counts: [string, number][]): FairClaim[] => {
  const out: FairClaim[] = [];
  for (const [tenant, n] of counts) for (let i = 0; i < n; i++) out.push({ key: out.length, tenant, priority: 0, acceptedAt: new Date(T0 + out.length).toISOString() });
  return out;
};

export async function run(): Promise<object[]> {
  const weights = new Map<string, TenantShare>([
    ['A', { weight: 1, nodes: 0, cores: 0 }],
    ['B', { weight: 1, nodes: 0, cores: 0 }],
    ['C', { weight: 2, nodes: 0, cores: 0 }],
  ]);
  const first = pass(
    claimsOf([
      ['A', 1000],
      ['B', 100],
      ['C', 100],
    ]),
    weights,
    snapshotWith(40),
  );
  // B and C are done; their 30 nodes stay theirs; 40 more free: only A still asks
  const held = new Map<string, TenantShare>([
    ['A', { weight: 1, nodes: first.A ?? 0, cores: (first.A ?? 0) * 32 }],
    ['B', { weight: 1, nodes: first.B ?? 0, cores: (first.B ?? 0) * 32 }],
    ['C', { weight: 2, nodes: first.C ?? 0, cores: (first.C ?? 0) * 32 }],
  ]);
  const second = pass(claimsOf([['A', 990]]), held, snapshotWith(40, 40));
  const within = (got: number | undefined, want: number) => Math.abs((got ?? 0) - want) <= 1;

  const many = claimsOf(Array.from({ length: 1000 }, (_, i) => [`t${i}`, 1] as [string, number]));
  const manyShares = new Map<string, TenantShare>(Array.from({ length: 1000 }, (_, i) => [`t${i}`, { weight: 1 + (i % 4), nodes: i % 7, cores: (i % 7) * 32 }]));
  const snap = snapshotWith(500, 2000);
  const t = await measure(() => pass(many, manyShares, snap), { runs: 30, warmup: 5 });
  return [
    {
      bench: 'fairness_1_1_2_40_free',
      given: first,
      goal: { A: 10, B: 10, C: 20 },
      met: within(first.A, 10) && within(first.B, 10) && within(first.C, 20),
      then_work_conserving: { given: second, goal: { A: 40 }, met: second.A === 40 },
    },
    { bench: 'fairness_pass_1000_tenants', ...t, goal_ms: 10, requests: many.length, free: 500 },
  ];
}
