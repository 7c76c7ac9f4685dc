/**
 * What a batch needs to share a cluster between tenants (docs/api.md, Tenants): what each tenant
 * holds now (the snapshot's nodes tagged with it, plus its reservations the snapshot does not count
 * yet), the cluster's size (the shares' denominators), and the tenant's caps as planner quotas.
 * Pure: the batch reads the snapshot and the reservation row once and hands them here.
 */
import type { TenantShare } from '../planning/fair-share.ts';
import type { InFlightAllocation, TenantQuota } from '../planning/types.ts';
import { DEFAULT_TENANT, type Tenants } from '../platform/tenants.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import { countedBy, type Reservation } from './reservations.ts';

/**
 * How long after a create's answer its nodes may still be missing from a node list (the reference
 * leaves list lag open, §5.1); within it a reservation's unlisted nodes still count for its tenant.
 */
export const NODE_LIST_LAG_MS = 10_000;

/** Node statuses that hold no VM (or hold it no more): they count against no tenant. */
const GONE = new Set(['Terminated', 'Off', 'Deallocated']);

export interface Holding {
  nodes: number;
  cores: number;
}

/** Cores of one node of `machineType` in `nodearray` (0 when the snapshot has no such bucket). */
export function vcpuOf(snapshot: ClusterSnapshot, nodearray: string | null | undefined, machineType: string | null | undefined): number {
  if (!machineType) return 0;
  const mt = machineType.toLowerCase();
  for (const na of snapshot.nodearrays) {
    if (nodearray && na.name !== nodearray) continue;
    const b = na.buckets.find((x) => x.machineType.toLowerCase() === mt);
    if (b) return b.vcpuCount;
  }
  return 0;
}

/**
 * Per tenant: its live nodes in the snapshot, and the nodes of its reservations the snapshot does
 * not show yet. A reservation the snapshot counts by time still counts its nodes the node list does
 * not show (matched by create tag) for {@link NODE_LIST_LAG_MS}: a cap must not be passed while a
 * list lags its create.
 */
export function tenantHoldings(snapshot: ClusterSnapshot, reservations: readonly Reservation[], snapshotStartedAtMs: number): Map<string, Holding> {
  const out = new Map<string, Holding>();
  const add = (tenant: string, nodes: number, cores: number) => {
    const h = out.get(tenant) ?? { nodes: 0, cores: 0 };
    h.nodes += nodes;
    h.cores += cores;
    out.set(tenant, h);
  };
  // One lookup per nodearray and machine type, not per node (a snapshot may list thousands).
  const vcpus = new Map<string, number>();
  const vcpu = (nodearray: string | null | undefined, machineType: string | null | undefined): number => {
    const key = `${nodearray ?? ''}\u0000${machineType ?? ''}`;
    let v = vcpus.get(key);
    if (v === undefined) vcpus.set(key, (v = vcpuOf(snapshot, nodearray, machineType)));
    return v;
  };
  const listed = new Map<string, number>();
  for (const n of snapshot.nodes ?? []) {
    if (!n.mark) continue;
    listed.set(n.mark.cycleCloudRequestId, (listed.get(n.mark.cycleCloudRequestId) ?? 0) + 1);
    if (GONE.has(n.status)) continue;
    add(n.mark.tenant ?? DEFAULT_TENANT, 1, vcpu(n.nodearray, n.machineType));
  }
  for (const r of reservations) {
    // Not counted by the snapshot yet: all of it. Counted by time: what the node list does not show
    // yet, for as long as a list may lag its create; after that the list is right (nodes gone are gone).
    let seen = 0;
    if (countedBy(r, snapshotStartedAtMs)) {
      if (snapshot.nodes === undefined || (r.acceptedAtMs ?? 0) + NODE_LIST_LAG_MS < snapshotStartedAtMs) continue;
      seen = listed.get(r.cycleCloudRequestId) ?? 0;
    }
    for (const s of r.sets) {
      const unseen = Math.max(0, s.count - seen);
      seen = Math.max(0, seen - s.count);
      if (unseen > 0) add(r.tenant ?? DEFAULT_TENANT, unseen, unseen * vcpu(s.nodearray, s.machineType));
    }
  }
  return out;
}

/** The cluster's nodes and cores: active and still available, over every bucket. */
export function clusterSize(snapshot: ClusterSnapshot): Holding {
  let nodes = 0;
  let cores = 0;
  for (const na of snapshot.nodearrays)
    for (const b of na.buckets) {
      const n = b.activeCount + Math.max(0, b.availableCount);
      nodes += n;
      cores += n * b.vcpuCount;
    }
  return { nodes, cores };
}

/** Each tenant's weight and holdings, for the batch's fair queue. */
export function sharesOf(tenants: Tenants | undefined, holdings: ReadonlyMap<string, Holding>, names: Iterable<string>): Map<string, TenantShare> {
  const out = new Map<string, TenantShare>();
  for (const t of names) {
    const h = holdings.get(t) ?? { nodes: 0, cores: 0 };
    out.set(t, { weight: tenants?.get(t)?.weight ?? 1, nodes: h.nodes, cores: h.cores });
  }
  return out;
}

/** The planner quotas of `tenant` on `cluster`, given what it holds (and took earlier in the batch). */
export function quotasFor(tenants: Tenants | undefined, tenant: string, cluster: string, used: Holding, overBudget?: string, elsewhere?: Holding): TenantQuota[] {
  const t = tenants?.get(tenant);
  const out: TenantQuota[] = [];
  const maxCores = t?.maxCores?.[cluster];
  const maxNodes = t?.maxNodes?.[cluster];
  if (maxCores !== undefined || maxNodes !== undefined || overBudget !== undefined) {
    out.push({
      tenant,
      scope: `on ${cluster}`,
      ...(maxCores !== undefined ? { maxCores } : {}),
      ...(maxNodes !== undefined ? { maxNodes } : {}),
      usedNodes: used.nodes,
      usedCores: used.cores,
      ...(overBudget !== undefined ? { blocked: overBudget } : {}),
    });
  }
  // `*`: a cap over every cluster, counting what the tenant holds on the others too.
  const allCores = t?.maxCores?.[ALL_CLUSTERS];
  const allNodes = t?.maxNodes?.[ALL_CLUSTERS];
  if (allCores !== undefined || allNodes !== undefined) {
    out.push({
      tenant,
      scope: 'in all clusters',
      ...(allCores !== undefined ? { maxCores: allCores } : {}),
      ...(allNodes !== undefined ? { maxNodes: allNodes } : {}),
      usedNodes: used.nodes + (elsewhere?.nodes ?? 0),
      usedCores: used.cores + (elsewhere?.cores ?? 0),
    });
  }
  return out;
}

/** The key of a cap over every cluster in `maxCores` and `maxNodes`. */
export const ALL_CLUSTERS = '*';

/** Whether the tenant has a cap over every cluster (its batches then count the other clusters). */
export function capsAllClusters(tenants: Tenants | undefined, tenant: string): boolean {
  const t = tenants?.get(tenant);
  return t?.maxCores?.[ALL_CLUSTERS] !== undefined || t?.maxNodes?.[ALL_CLUSTERS] !== undefined;
}

/** Spend of a tenant this month, as the meter counts it (src/tracking/meter.ts). */
export type TenantSpend = ReadonlyMap<string, { today: number; month: number }>;

/**
 * Why `tenant` may take no more nodes now, or undefined: its month's spend reached its monthly
 * budget (`tenant cfd past its monthly budget: 1012.40 of 1000 USD spent this month`).
 */
export function budgetBlock(tenants: Tenants | undefined, tenant: string, spend: TenantSpend | undefined, currency: string): string | undefined {
  const budget = tenants?.get(tenant)?.budget?.monthly;
  if (budget === undefined || !spend) return undefined;
  const spent = spend.get(tenant)?.month ?? 0;
  if (spent < budget) return undefined;
  return `tenant ${tenant} past its monthly budget: ${spent.toFixed(2)} of ${budget} ${currency} spent this month`;
}

/**
 * Adds `x` to `list`, merged into the entry of the same bucket and placement group: the planner only
 * sums them, and a batch of 1,000 members would otherwise hand each plan a list that grows by one
 * entry per member (quadratic in the batch).
 */
export function addInFlight(list: InFlightAllocation[], x: InFlightAllocation): void {
  const same = list.find((e) => e.nodearray === x.nodearray && e.machineType === x.machineType && e.placementGroupId === x.placementGroupId);
  if (same) same.count += x.count;
  else list.push({ nodearray: x.nodearray, machineType: x.machineType, placementGroupId: x.placementGroupId, count: x.count });
}

/**
 * Per tenant, what it holds over `clusters` (each one's newest stored snapshot and its reservations),
 * for caps over all clusters. A cluster whose snapshot cannot be read counts its reservations only.
 */
export async function holdingsOn(
  clusters: readonly string[],
  snapshots: { getFresh(cluster: string, maxAgeMs: number): Promise<ClusterSnapshot | null> },
  reservations: { read(cluster: string): Promise<{ items: Reservation[] }> },
): Promise<Map<string, Holding>> {
  const total = new Map<string, Holding>();
  await Promise.all(
    clusters.map(async (cluster) => {
      const [snapshot, { items }] = await Promise.all([snapshots.getFresh(cluster, Number.POSITIVE_INFINITY).catch(() => null), reservations.read(cluster)]);
      const empty: ClusterSnapshot = { cluster, takenAt: new Date(0).toISOString(), maxCount: 0, maxCoreCount: 0, nodearrays: [] };
      const held = tenantHoldings(snapshot ?? empty, items, snapshot ? Date.parse(snapshot.takenAt) : 0);
      for (const [tenant, h] of held) {
        const t = total.get(tenant) ?? { nodes: 0, cores: 0 };
        total.set(tenant, { nodes: t.nodes + h.nodes, cores: t.cores + h.cores });
      }
    }),
  );
  return total;
}
