/**
 * Who is offered capacity next when a batch cannot serve every waiting request: weighted dominant
 * resource fairness (DRF, Ghodsi et al. 2011) between tenants over two resources, nodes and cores,
 * FIFO inside a tenant with `priority` first (docs/api.md, Tenants).
 *
 * A tenant's dominant share is the larger of its nodes and its cores as a fraction of the cluster's
 * (active, in flight and free), divided by its weight. The next request offered capacity is the
 * first of the tenant with the smallest dominant share; the caller charges what the planner actually
 * gave it. A request that got nothing charges nothing, so its tenant stays first and offers its next
 * request: capacity a tenant cannot use goes to the others (work-conserving, like Kueue's
 * borrowing). Nothing already running is taken back. Pure: no I/O, no clock.
 */

export interface FairClaim {
  /** The caller's handle (a batch member's index). */
  key: number;
  tenant: string;
  /** Higher first inside a tenant (default 0). */
  priority: number;
  /** Accept time (ISO 8601): FIFO inside a tenant, and the tie-break between equal shares. */
  acceptedAt: string;
}

export interface TenantShare {
  weight: number;
  /** Nodes and cores the tenant holds now on this cluster (active and in flight). */
  nodes: number;
  cores: number;
}

interface Lane {
  tenant: string;
  weight: number;
  nodes: number;
  cores: number;
  claims: FairClaim[];
  next: number;
}

/** The order in which claims are offered capacity, decided one claim at a time as capacity is charged. */
export class FairQueue {
  readonly #lanes: Lane[] = [];
  readonly #totalNodes: number;
  readonly #totalCores: number;
  #heap: Lane[] = [];

  /**
   * @param shares each tenant's weight and holdings; a tenant not named gets weight 1 and nothing held
   * @param totals the cluster's nodes and cores (the denominators of the shares; at least 1 each)
   */
  constructor(claims: readonly FairClaim[], shares: ReadonlyMap<string, TenantShare>, totals: { nodes: number; cores: number }) {
    this.#totalNodes = Math.max(1, totals.nodes);
    this.#totalCores = Math.max(1, totals.cores);
    const byTenant = new Map<string, Lane>();
    for (const c of claims) {
      let lane = byTenant.get(c.tenant);
      if (!lane) {
        const s = shares.get(c.tenant);
        lane = { tenant: c.tenant, weight: s && s.weight > 0 ? s.weight : 1, nodes: s?.nodes ?? 0, cores: s?.cores ?? 0, claims: [], next: 0 };
        byTenant.set(c.tenant, lane);
        this.#lanes.push(lane);
      }
      lane.claims.push(c);
    }
    for (const lane of this.#lanes) lane.claims.sort((a, b) => b.priority - a.priority || (a.acceptedAt < b.acceptedAt ? -1 : a.acceptedAt > b.acceptedAt ? 1 : a.key - b.key));
    for (const lane of this.#lanes) this.#push(lane);
  }

  /** The next claim to offer capacity to, or undefined when every claim was offered. */
  next(): FairClaim | undefined {
    if (this.#current) this.charge(0, 0); // the last claim was offered and got nothing
    const lane = this.#pop();
    if (!lane) return undefined;
    const claim = lane.claims[lane.next++]!;
    this.#current = lane;
    return claim;
  }

  /** What the planner gave the claim {@link next} returned last (0 and 0 when it got nothing). */
  charge(nodes: number, cores: number): void {
    const lane = this.#current;
    if (!lane) return;
    this.#current = undefined;
    lane.nodes += nodes;
    lane.cores += cores;
    if (lane.next < lane.claims.length) this.#push(lane);
  }

  /** The dominant share of `tenant` now (for a record's or the tenants route's words). */
  shareOf(tenant: string): number {
    const lane = this.#lanes.find((l) => l.tenant === tenant);
    return lane ? this.#share(lane) : 0;
  }

  #current: Lane | undefined;

  #share(l: Lane): number {
    return Math.max(l.nodes / this.#totalNodes, l.cores / this.#totalCores) / l.weight;
  }

  /** Smaller share first; equal shares: the lane whose next claim was accepted first. */
  #before(a: Lane, b: Lane): boolean {
    const sa = this.#share(a);
    const sb = this.#share(b);
    if (sa !== sb) return sa < sb;
    const ca = a.claims[a.next]!;
    const cb = b.claims[b.next]!;
    return ca.acceptedAt < cb.acceptedAt || (ca.acceptedAt === cb.acceptedAt && ca.key < cb.key);
  }

  #push(lane: Lane): void {
    const h = this.#heap;
    h.push(lane);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): Lane | undefined {
    const h = this.#heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.#before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
