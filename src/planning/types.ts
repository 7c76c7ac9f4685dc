/**
 * Planner input and output. Planning is pure: no I/O, time comes in as `nowMs`.
 */
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { ScaleRequest } from '../ledger/schemas.ts';
import type { NodeCreationRequestSet } from '../cyclecloud/schemas.ts';

/** Nodes this service asked for that the snapshot does not count yet (created after `takenAt`). */
export interface InFlightAllocation {
  nodearray: string;
  /** The bucket's machine type (CycleCloud `definition.machineType`). */
  machineType: string;
  placementGroupId: string | null;
  count: number;
}

/** A bucket this service saw fail for capacity, backing off until `untilMs`. */
export interface CapacityBackoff {
  nodearray: string;
  machineType: string;
  untilMs: number;
  reason: string;
}

/**
 * A cap of the request's tenant that binds its demands like a cluster limit (docs/api.md, Tenants):
 * nodes and cores of the tenant already active, in flight or planned earlier in the batch are in
 * `usedNodes` / `usedCores`; what this plan takes is counted on top.
 */
export interface TenantQuota {
  tenant: string;
  /** Where the cap counts, in words: `on hpc` (this cluster) or `in all` (every cluster). */
  scope: string;
  maxNodes?: number;
  maxCores?: number;
  usedNodes: number;
  usedCores: number;
  /** Set when the tenant may take nothing now whatever its caps (past its monthly budget): the words why. */
  blocked?: string;
}

export interface PlanOptions {
  /** Skip a bucket whose CycleCloud `lastCapacityFailure` is younger than this. Default 300 s. */
  capacityFailureWindowSec?: number;
  /** Snapshot older than this is stale: nothing is planned, demands wait. Default 120 s. */
  maxSnapshotAgeSec?: number;
  /**
   * Which demands get per-bucket verdicts (`considered`) and an `explanation`: `unplaced` (default,
   * the hot path: only demands not fully placed) or `all` (what `/api/plan` asks for).
   */
  explain?: 'unplaced' | 'all';
}

export interface PlanInput {
  request: ScaleRequest;
  snapshot: ClusterSnapshot;
  inFlight: InFlightAllocation[];
  backoffs: CapacityBackoff[];
  nowMs: number;
  /** Re-plan generation (0 first); part of new placement-group ids so a re-plan does not reuse a failed group. */
  generation?: number;
  /** Per demand index, how many nodes are still to place (default: the demand's `count`). Demands absent or 0 are skipped. */
  remaining?: Record<number, number>;
  /** Placement groups never to use again for this request (a partial gang was compensated there). */
  excludedPlacementGroups?: string[];
  /** The request's tenant caps (none: no tenant limit). */
  quotas?: TenantQuota[];
  options?: PlanOptions;
}

export type DemandPlanStatus = 'placed' | 'partial' | 'waiting' | 'rejected' | 'skipped';

export type PlanReasonCode =
  | 'PLAN_UNKNOWN_NODEARRAY'
  | 'PLAN_UNKNOWN_MACHINE_TYPE'
  | 'PLAN_NO_VALID_BUCKET'
  | 'PLAN_NO_MATCHING_BUCKET'
  | 'PLAN_EXCEEDS_PLACEMENT_GROUP'
  | 'PLAN_EXCEEDS_TENANT_QUOTA'
  | 'PLAN_NO_CAPACITY'
  | 'PLAN_CAPACITY_BACKOFF'
  | 'PLAN_NO_PLACEMENT_GROUP_ROOM'
  | 'PLAN_STALE_SNAPSHOT';

export interface BucketVerdict {
  nodearray: string;
  bucketId: string;
  machineType: string;
  /** Nodes the bucket could take for this demand after in-flight and shared limits. */
  available: number;
  /** `unsuitable`: does not meet the demand's minimums or `infiniband`; `not-preferred`: outside `machineTypes`, or not needed. */
  verdict: 'chosen' | 'full' | 'invalid' | 'backoff' | 'not-preferred' | 'no-pg-room' | 'unsuitable';
  note?: string;
}

export interface Placement {
  /** Index into `Plan.sets`. */
  setIndex: number;
  count: number;
  nodearray: string;
  bucketId: string;
  machineType: string;
  placementGroupId: string | null;
  /** The bucket is spot (its nodearray is `Interruptible`); absent = regular. */
  spot?: true;
}

export interface DemandPlan {
  index: number;
  requested: number;
  /** Nodes placed by this plan. */
  planned: number;
  placements: Placement[];
  status: DemandPlanStatus;
  /** Words: which limit bound the demand, which bucket, what to wait for. Null when fully placed. */
  reason: string | null;
  code: PlanReasonCode | null;
  /** The limit that bound the demand, e.g. `maxPlacementGroupSize=4 (mpi/Standard_HB120rs_v3)`. */
  boundBy: string | null;
  /** Per-bucket verdicts: for demands not fully placed, or every demand with `explain: 'all'`. */
  considered: BucketVerdict[];
  /** Verdicts left out of `considered` to keep it short (a demand across hundreds of nodearrays). */
  consideredOmitted?: number;
  /** Nodearray and bucket of the first placement; null when nothing was placed. */
  nodearray: string | null;
  bucketId: string | null;
  /** How the bucket was chosen, in numbers (cheap); {@link DemandPlan.explanation} or `describeChoice` say it in words. */
  choice: DemandChoice | null;
  /** Which bucket and group, and why the others were not chosen; with `explain: 'all'` or when not fully placed. */
  explanation?: string;
}

/** Why a demand went where it went, counted during the search (no per-bucket objects on the hot path). */
export interface DemandChoice {
  pick: 'first' | 'smallest';
  /** Valid buckets that meet every selector of the demand. */
  candidates: number;
  /** Candidates before the chosen one (in pick order) that had no room for the demand or its group. */
  passedOver: number;
  /** Candidates skipped because they are backing off after a capacity failure. */
  backingOff: number;
  /** Buckets of the allowed nodearrays that do not meet the selectors, or are invalid. */
  unsuitable: number;
  /** True when no single bucket had room and a loose demand was spread over several. */
  split: boolean;
  /** Colocated: the group is new, the demand's own (`ownPlacementGroup`), the caller's, an existing one, or shared with an earlier demand of this request. */
  group: 'new' | 'own' | 'given' | 'existing' | 'shared' | null;
  /** `capacity: "spot-first"` that placed nodes in regular buckets: why spot could not take them all. */
  spotFallback?: string;
}

export interface PlannedSet {
  nodearray: string;
  bucketId: string;
  machineType: string;
  placementGroupId: string | null;
  count: number;
  /** Which demands the set's nodes belong to, in node order. */
  demands: { index: number; count: number }[];
  /** CycleCloud's set, ready for `nodes/create` (the request id is added at submission). */
  set: NodeCreationRequestSet;
}

export interface Plan {
  sets: PlannedSet[];
  demands: DemandPlan[];
}
