/**
 * From CycleCloud's cluster status to the compact snapshot the planner reads and the API shows.
 */
import { markOf } from '../cyclecloud/tags.ts';
import type { ClusterStatus } from '../cyclecloud/schemas.ts';
import type { BucketSnapshot, ClusterSnapshot, ClusterStatusView } from './model.ts';

/**
 * The compact snapshot of a zod-parsed `GET /clusters/{c}/status`. `nodes` is present only when the
 * status carried node records (`?nodes=true`). A bucket without `definition.machineType` keeps an
 * empty machine type (it cannot be asked for by name). A negative `lastCapacityFailure` means never.
 * Every bucket of a nodearray whose record says `Interruptible` is spot; without it, regular.
 */
export function toSnapshot(cluster: string, status: ClusterStatus, takenAtMs: number): ClusterSnapshot {
  const snapshot: ClusterSnapshot = {
    cluster,
    takenAt: new Date(takenAtMs).toISOString(),
    maxCount: status.maxCount,
    maxCoreCount: status.maxCoreCount,
    nodearrays: status.nodearrays.map((na) => ({
      name: na.name,
      ...(typeof na.nodearray.Region === 'string' && na.nodearray.Region !== '' ? { region: na.nodearray.Region } : {}),
      maxCount: na.maxCount,
      maxCoreCount: na.maxCoreCount,
      buckets: na.buckets.map((b): BucketSnapshot => {
        const last = b.lastCapacityFailure;
        return {
          bucketId: b.bucketId,
          machineType: b.definition?.machineType ?? '',
          vcpuCount: b.virtualMachine.vcpuCount,
          memoryGB: b.virtualMachine.memory,
          infiniband: b.virtualMachine.infiniband,
          gpuCount: b.virtualMachine.gpuCount,
          valid: b.valid,
          ...(b.invalidReason !== undefined ? { invalidReason: b.invalidReason } : {}),
          maxCount: b.maxCount,
          activeCount: b.activeCount,
          availableCount: b.availableCount,
          quotaCount: b.quotaCount,
          maxPlacementGroupSize: b.maxPlacementGroupSize,
          placementGroups: (b.placementGroups ?? []).map((g) => ({ name: g.name, activeCount: g.activeCount })),
          lastCapacityFailureSec: last === undefined || last < 0 ? null : last,
          spot: na.nodearray.Interruptible === true,
        };
      }),
    })),
  };
  if (status.nodes) {
    const arrays = new Map(status.nodearrays.map((na) => [na.name, na.nodearray]));
    const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
    snapshot.nodes = status.nodes.map((n) => {
      const mark = markOf(n);
      const array = n.Template !== undefined ? arrays.get(n.Template) : undefined;
      const region = mark ? (text(n.Region) ?? text(array?.Region)) : undefined;
      return {
        ...(region ? { region } : {}),
        ...(mark && array?.Interruptible === true ? { spot: true as const } : {}),
        name: n.Name,
        id: n.NodeId ?? null,
        status: n.Status ?? 'Unknown',
        nodearray: n.Template ?? null,
        placementGroupId: n.PlacementGroupId ?? null,
        ...(mark ? { mark, machineType: n.MachineType ?? null } : {}),
        ...(mark && n.Status === 'Failed' && n.StatusMessage ? { statusMessage: n.StatusMessage } : {}),
      };
    });
  }
  return snapshot;
}

export interface StatusViewOptions {
  /** The store's verdict (consecutive capture failures). Default false. */
  stale?: boolean;
  /** Also stale when older than this. Default: age alone never makes it stale. */
  staleAfterMs?: number;
}

/**
 * What `GET /api/clusters/{cluster}/status` answers (docs/api.md §4): the snapshot without its node list
 * and cluster limits, plus its age at `nowMs` and whether it is stale.
 */
export function statusView(snapshot: ClusterSnapshot, nowMs: number, options: StatusViewOptions = {}): ClusterStatusView {
  const ageMs = Math.max(0, nowMs - Date.parse(snapshot.takenAt));
  const tooOld = options.staleAfterMs !== undefined && ageMs > options.staleAfterMs;
  return {
    cluster: snapshot.cluster,
    takenAt: snapshot.takenAt,
    ageSeconds: Math.round(ageMs / 1000),
    stale: options.stale === true || tooOld,
    nodearrays: snapshot.nodearrays.map((na) => ({
      name: na.name,
      maxCount: na.maxCount,
      maxCoreCount: na.maxCoreCount,
      buckets: na.buckets.map((b) => ({ ...b, spot: b.spot === true, placementGroups: b.placementGroups.map((g) => ({ ...g })) })),
    })),
  };
}
