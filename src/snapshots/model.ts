/**
 * The compact cluster snapshot: what the timer stores, the planner reads and
 * `GET /api/clusters/{cluster}/status` returns (docs/api.md §4).
 */
export interface PlacementGroupSnapshot {
  name: string;
  activeCount: number;
}

export interface BucketSnapshot {
  bucketId: string;
  machineType: string;
  vcpuCount: number;
  memoryGB: number;
  infiniband: boolean;
  /** `virtualMachine.gpuCount` (documented; absent in older snapshots and some answers = 0). */
  gpuCount?: number;
  valid: boolean;
  invalidReason?: string;
  maxCount: number;
  activeCount: number;
  availableCount: number;
  quotaCount: number;
  maxPlacementGroupSize: number;
  placementGroups: PlacementGroupSnapshot[];
  /** Seconds since CycleCloud last saw a capacity failure at `takenAt`; null = never. */
  lastCapacityFailureSec: number | null;
  /** Spot: its nodearray's `Interruptible` is true. Absent in snapshots stored before it was read = regular. */
  spot?: boolean;
}

export interface NodearraySnapshot {
  name: string;
  /** The nodearray record's `Region` (what its nodes are priced by); absent when it has none. */
  region?: string;
  maxCount: number;
  maxCoreCount: number;
  buckets: BucketSnapshot[];
}

/** A node of the snapshot, reduced to what reconciliation reads. */
export interface SnapshotNodeRef {
  name: string;
  id: string | null;
  status: string;
  nodearray: string | null;
  placementGroupId: string | null;
  /** The scaler's tags (src/cyclecloud/tags.ts), on nodes the scaler created. */
  mark?: { requestId: string; cycleCloudRequestId: string; tenant?: string };
  machineType?: string | null;
  /** On nodes the scaler created: the node's `Region`, else its nodearray's (what prices it). */
  region?: string;
  /** On nodes the scaler created in a spot bucket (`Interruptible` nodearray). */
  spot?: true;
  /** CycleCloud's StatusMessage, kept only for a Failed node the scaler created (an eviction says so there). */
  statusMessage?: string;
}

export interface ClusterSnapshot {
  cluster: string;
  /** ISO time the status was read. */
  takenAt: string;
  maxCount: number;
  maxCoreCount: number;
  nodearrays: NodearraySnapshot[];
  /** Node names by CycleCloud Status; for reconciliation. Optional in tests. */
  nodes?: SnapshotNodeRef[];
}

/** What the API answers: the snapshot plus its age, as of now. */
export interface ClusterStatusView extends Omit<ClusterSnapshot, 'nodes' | 'maxCount' | 'maxCoreCount'> {
  ageSeconds: number;
  stale: boolean;
}
