/**
 * Fair share across batches (docs/api.md, Tenants): requests that wait for room sleep on their own
 * backoffs, so without help the room that frees goes to whichever wakes first, and a tenant with
 * 1,000 requests waiting wins it by numbers. Each snapshot tick, for each cluster, this goes over
 * the sleeping requests in the batch's own order (weighted dominant resource fairness between
 * tenants, `priority` then accept order inside one), plans each against the snapshot, the
 * reservations and what the ones before it would take (the planner, dry: nothing is reserved), and
 * wakes at once those that would get nodes now. They meet in the next batch, which shares the room
 * out in the same order; the rest sleep on.
 */
import type { LedgerEntry } from '../ledger/types.ts';
import type { ScaleRequest } from '../ledger/schemas.ts';
import { excludedPlacementGroups, isFinal, openRemaining } from '../ledger/record.ts';
import { type FairClaim, FairQueue } from '../planning/fair-share.ts';
import { planNamed } from '../planning/named.ts';
import type { CapacityBackoff, InFlightAllocation } from '../planning/types.ts';
import { DEFAULT_TENANT, type Tenants } from '../platform/tenants.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import { inFlightAttempt, nextGeneration } from './context.ts';
import { inFlightOf, type Reservation } from './reservations.ts';
import { planned } from './submit.ts';
import { addInFlight, clusterSize, quotasFor, sharesOf, tenantHoldings, vcpuOf } from './tenant-share.ts';

/** Requests due within this long wake by themselves: not woken again. */
const DUE_SOON_MS = 2_000;
/** At most this many wake-ups per cluster per tick. */
export const MAX_WAKES = 500;

export interface FairWakeInput {
  cluster: string;
  snapshot: ClusterSnapshot;
  reservations: readonly Reservation[];
  backoffs: CapacityBackoff[];
  /** The cluster's open entries (the tick reads them once). */
  open: readonly LedgerEntry[];
  tenants?: Tenants | undefined;
  /** Why a tenant takes nothing now (its budget), if so. */
  blocked?: (tenant: string) => string | undefined;
  nowMs: number;
}

/** The sleeping requests to wake now, in the order they would be served. Pure. */
export function fairWakes(input: FairWakeInput): string[] {
  const { snapshot, nowMs } = input;
  const sleeping = input.open.filter(
    (e): e is LedgerEntry & { request: ScaleRequest } =>
      e.record.cluster === input.cluster &&
      e.request?.kind === 'scale' &&
      !isFinal(e) &&
      !e.record.released &&
      e.nextAttemptAtMs !== null &&
      e.nextAttemptAtMs > nowMs + DUE_SOON_MS &&
      !e.attempts.some(inFlightAttempt) &&
      Object.keys(openRemaining(e)).length > 0,
  );
  if (sleeping.length === 0) return [];
  const takenAtMs = Date.parse(snapshot.takenAt);
  const inFlight: InFlightAllocation[] = inFlightOf(input.reservations, takenAtMs);
  const held = tenantHoldings(snapshot, input.reservations, takenAtMs);
  const claims: FairClaim[] = sleeping.map((e, key) => ({ key, tenant: e.request.tenant ?? DEFAULT_TENANT, priority: e.request.priority ?? 0, acceptedAt: e.record.createdAt }));
  const fair = new FairQueue(claims, sharesOf(input.tenants, held, new Set(claims.map((c) => c.tenant))), clusterSize(snapshot));
  const wake: string[] = [];
  for (let claim = fair.next(); claim && wake.length < MAX_WAKES; claim = fair.next()) {
    const e = sleeping[claim.key]!;
    const used = held.get(claim.tenant) ?? { nodes: 0, cores: 0 };
    const quotas = quotasFor(input.tenants, claim.tenant, input.cluster, used, input.blocked?.(claim.tenant));
    const p = planNamed({
      request: planned(e.request, e),
      snapshot,
      inFlight: [...inFlight],
      backoffs: input.backoffs,
      nowMs,
      generation: nextGeneration(e),
      remaining: openRemaining(e),
      excludedPlacementGroups: excludedPlacementGroups(e),
      ...(quotas.length > 0 ? { quotas } : {}),
    });
    let nodes = 0;
    let cores = 0;
    for (const x of p.sets) {
      if (x.count <= 0) continue;
      addInFlight(inFlight, { nodearray: x.nodearray, machineType: x.machineType, placementGroupId: x.placementGroupId, count: x.count });
      nodes += x.count;
      cores += x.count * vcpuOf(snapshot, x.nodearray, x.machineType);
    }
    if (nodes > 0) {
      wake.push(e.record.requestId);
      held.set(claim.tenant, { nodes: used.nodes + nodes, cores: used.cores + cores });
    }
    fair.charge(nodes, cores);
  }
  return wake;
}
