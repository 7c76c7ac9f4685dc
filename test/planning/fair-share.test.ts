/** Weighted DRF between tenants (src/planning/fair-share.ts), driven as a batch drives it: offer, plan, charge. */
import { describe, expect, it } from 'vitest';
import { type FairClaim, FairQueue, type TenantShare } from '../../src/planning/fair-share.ts';

const at = (n: number) => new Date(Date.UTC(2026, 11, 8, 0, 0, 0, n)).toISOString();

/** `counts` one-node requests per tenant, accepted in the order given (all of A's first, then B's…). */
function claims(counts: Record<string, number>, priority: Record<string, number> = {}): FairClaim[] {
  const out: FairClaim[] = [];
  for (const [tenant, n] of Object.entries(counts)) for (let i = 0; i < n; i++) out.push({ key: out.length, tenant, priority: priority[tenant] ?? 0, acceptedAt: at(out.length) });
  return out;
}

/** Offers capacity one claim at a time like the batch's planner: each claim takes 1 node of `vcpu` while `free` lasts. */
function run(q: FairQueue, free: number, vcpu = 32, byKey?: FairClaim[]): Record<string, number> {
  const given: Record<string, number> = {};
  for (let c = q.next(); c; c = q.next()) {
    if (free > 0) {
      free--;
      given[c.tenant] = (given[c.tenant] ?? 0) + 1;
      q.charge(1, vcpu);
    } else q.charge(0, 0);
    if (byKey) byKey.push(c);
  }
  return given;
}

const weights = (w: Record<string, number>, held: Record<string, number> = {}): Map<string, TenantShare> =>
  new Map(Object.entries(w).map(([t, weight]) => [t, { weight, nodes: held[t] ?? 0, cores: (held[t] ?? 0) * 32 }]));

describe('fair share between tenants', () => {
  it('divides 40 free nodes 10 / 10 / 20 between weights 1:1:2 although A asked first and most', () => {
    const q = new FairQueue(claims({ A: 1000, B: 100, C: 100 }), weights({ A: 1, B: 1, C: 2 }), { nodes: 40, cores: 40 * 32 });
    expect(run(q, 40)).toEqual({ A: 10, B: 10, C: 20 });
  });

  it('lends what a tenant does not ask for: B asks 3, so A and C share the rest by weight', () => {
    const q = new FairQueue(claims({ A: 1000, B: 3, C: 100 }), weights({ A: 1, B: 1, C: 2 }), { nodes: 40, cores: 40 * 32 });
    const got = run(q, 40);
    expect(got.B).toBe(3);
    expect(got.A! + got.C!).toBe(37);
    expect(Math.abs(got.C! - 2 * got.A!)).toBeLessThanOrEqual(2);
  });

  it('gives a tenant alone everything (work-conserving)', () => {
    expect(run(new FairQueue(claims({ A: 100 }), weights({ A: 1, B: 5 }), { nodes: 40, cores: 1280 }), 40)).toEqual({ A: 40 });
  });

  it('counts what a tenant already holds: B with 20 running gets nothing until A has 20', () => {
    const q = new FairQueue(claims({ A: 100, B: 100 }), weights({ A: 1, B: 1 }, { B: 20 }), { nodes: 60, cores: 60 * 32 });
    expect(run(q, 30)).toEqual({ A: 25, B: 5 });
  });

  it('keeps FIFO inside a tenant with priority first, and offers every claim exactly once', () => {
    const cs = claims({ A: 5, B: 5 });
    cs[4]!.priority = 10; // A's last one jumps A's queue, not B's
    const order: FairClaim[] = [];
    run(new FairQueue(cs, weights({ A: 1, B: 1 }), { nodes: 10, cores: 320 }), 10, 32, order);
    expect(order.filter((c) => c.tenant === 'A').map((c) => c.key)).toEqual([4, 0, 1, 2, 3]);
    expect(order.filter((c) => c.tenant === 'B').map((c) => c.key)).toEqual([5, 6, 7, 8, 9]);
    expect(order.map((c) => c.tenant).slice(0, 4)).toEqual(['A', 'B', 'A', 'B']);
    expect(new Set(order.map((c) => c.key)).size).toBe(10);
  });

  it('uses the dominant resource: a tenant of big nodes is charged by its cores', () => {
    // A takes 120-core nodes, B 4-core ones: with 1,200 cores and 100 nodes, A's share is its cores
    const cs = claims({ A: 50, B: 50 });
    const q = new FairQueue(cs, weights({ A: 1, B: 1 }), { nodes: 100, cores: 1200 });
    const given: Record<string, number> = { A: 0, B: 0 };
    let cores = 1200;
    for (let c = q.next(); c; c = q.next()) {
      const need = c.tenant === 'A' ? 120 : 4;
      if (cores >= need) {
        cores -= need;
        given[c.tenant]!++;
        q.charge(1, need);
      }
    }
    // B: each node is 1 % of the nodes, A: each node 10 % of the cores; equal shares near A 5, B 50 (all B asked)
    expect(given.B).toBe(50);
    expect(given.A).toBeGreaterThanOrEqual(5);
  });

  it('an offer not charged counts as nothing given', () => {
    const q = new FairQueue(claims({ A: 2, B: 2 }), weights({ A: 1, B: 1 }), { nodes: 4, cores: 128 });
    const seen = [q.next()!.tenant, q.next()!.tenant, q.next()!.tenant, q.next()!.tenant];
    expect(seen.sort()).toEqual(['A', 'A', 'B', 'B']);
    expect(q.next()).toBeUndefined();
  });
});
