/**
 * Response bodies of the HTTP API (docs/api.md §4). Requests are validated by the shared schemas in
 * `src/ledger/schemas.ts`; these describe what the API answers. Both feed the OpenAPI document,
 * and handlers pass their answers through them, so the document cannot drift from the wire.
 */
import { z } from 'zod';
import { RequestState } from '../ledger/schemas.ts';
import { NodeCreationRequestSet } from '../cyclecloud/schemas.ts';

/** RFC 9457 problem details, with the bad fields of a validation failure. */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    /** Stable machine-readable code, e.g. `HTTP_VALIDATION`. */
    code: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ description: 'application/problem+json (RFC 9457)' });
export type Problem = z.infer<typeof Problem>;

export const Accepted = z.object({
  requestId: z.string(),
  state: RequestState,
  /** Absolute URL of `GET /api/scale-requests/{requestId}`. */
  statusUrl: z.string(),
});
export type Accepted = z.infer<typeof Accepted>;

/** What renew and release answer: the request's state and its lease or release as now recorded. */
export const LifecycleAccepted = Accepted.extend({
  lease: z.object({ seconds: z.number().int(), expiresAt: z.string() }).optional(),
  maxLifetime: z.object({ seconds: z.number().int(), endsAt: z.string() }).optional(),
  released: z.object({ at: z.string(), reason: z.string() }).optional(),
});
export type LifecycleAccepted = z.infer<typeof LifecycleAccepted>;

export const PlacementGroupStatus = z.object({ name: z.string(), activeCount: z.number().int() });

export const BucketStatus = z.object({
  bucketId: z.string(),
  machineType: z.string(),
  vcpuCount: z.number(),
  memoryGB: z.number(),
  infiniband: z.boolean(),
  valid: z.boolean(),
  maxCount: z.number().int(),
  activeCount: z.number().int(),
  availableCount: z.number().int(),
  maxPlacementGroupSize: z.number().int(),
  placementGroups: z.array(PlacementGroupStatus),
  /** Its nodearray is `Interruptible` (Azure Spot); false = regular. */
  spot: z.boolean(),
});

/** `GET /api/clusters/{cluster}/status`: exactly the fields docs/api.md §4 names (extra keys are stripped). */
export const ClusterStatus = z.object({
  cluster: z.string(),
  takenAt: z.string(),
  ageSeconds: z.number(),
  stale: z.boolean(),
  nodearrays: z.array(z.object({ name: z.string(), buckets: z.array(BucketStatus) })),
});
export type ClusterStatus = z.infer<typeof ClusterStatus>;

export const ClusterHealth = z.object({
  cluster: z.string(),
  /** Null when the cluster was never snapshotted (which is not stale). */
  takenAt: z.string().nullable(),
  ageSeconds: z.number().nullable(),
  stale: z.boolean(),
  consecutiveFailures: z.number().int(),
});

export const Health = z.object({
  status: z.enum(['ok', 'degraded']),
  storage: z.object({ reachable: z.boolean() }),
  clusters: z.array(ClusterHealth),
  queue: z.object({ name: z.string(), depth: z.number().int().nullable() }),
  poison: z.object({ name: z.string(), count: z.number().int().nullable() }),
  rejectedMessages: z.number().int().nullable(),
  /** Live nodes carrying the scaler's tags that no record accounted for past the grace period. */
  orphans: z.object({ adopted: z.number().int(), terminated: z.number().int() }).nullable(),
  /** Create sets CycleCloud filled only in part (asked more than it had). */
  overAsk: z.number().int().nullable(),
  paused: z.boolean().nullable(),
  /** Leases (docs/api.md §3 "Leases"): requests tracked, due now, and their nodes still alive past the lease. Absent when not wired. */
  leases: z.object({ tracked: z.number().int(), due: z.number().int(), nodesPastLease: z.number().int() }).nullable().optional(),
  /** The fleet-wide CycleCloud governor (src/cyclecloud/governor.ts); null when its rows could not be read. */
  governor: z
    .object({
      maxConcurrentCreates: z.number().int(),
      pausedUntil: z.string().nullable(),
      pauseReason: z.string().nullable(),
      clusters: z.array(z.object({ cluster: z.string(), createsInFlight: z.number().int(), batchesInFlight: z.number().int(), createsPerMinute: z.number().int() })),
      callsPerMinute: z.number().int(),
    })
    .nullable()
    .optional(),
  /**
   * With a price table and budgets: the tenants whose spend this month reached their monthly budget
   * (their new demands wait; docs/api.md, Cost). Does not make the status degraded. null = could not be read.
   */
  budgets: z
    .object({ currency: z.string(), past: z.array(z.object({ tenant: z.string(), monthly: z.number(), spent: z.number() })) })
    .nullable()
    .optional(),
});
export type Health = z.infer<typeof Health>;

export const ScaleOutState = z.object({ paused: z.boolean() });

const PlanReasonCode = z.enum([
  'PLAN_UNKNOWN_NODEARRAY',
  'PLAN_UNKNOWN_MACHINE_TYPE',
  'PLAN_NO_VALID_BUCKET',
  'PLAN_NO_MATCHING_BUCKET',
  'PLAN_EXCEEDS_PLACEMENT_GROUP',
  'PLAN_NO_CAPACITY',
  'PLAN_CAPACITY_BACKOFF',
  'PLAN_NO_PLACEMENT_GROUP_ROOM',
  'PLAN_STALE_SNAPSHOT',
]);

const PlannedSetView = z.object({
  nodearray: z.string(),
  bucketId: z.string(),
  machineType: z.string(),
  placementGroupId: z.string().nullable(),
  count: z.number().int(),
  demands: z.array(z.object({ index: z.number().int(), count: z.number().int() })),
});

const DemandPlanView = z.object({
  index: z.number().int(),
  requested: z.number().int(),
  planned: z.number().int(),
  status: z.enum(['placed', 'partial', 'waiting', 'rejected', 'skipped']),
  reason: z.string().nullable(),
  code: PlanReasonCode.nullable(),
  boundBy: z.string().nullable(),
  placements: z.array(
    z.object({
      setIndex: z.number().int(),
      count: z.number().int(),
      nodearray: z.string(),
      bucketId: z.string(),
      machineType: z.string(),
      placementGroupId: z.string().nullable(),
    }),
  ),
  considered: z.array(
    z.object({
      nodearray: z.string(),
      bucketId: z.string(),
      machineType: z.string(),
      available: z.number().int(),
      verdict: z.enum(['chosen', 'full', 'invalid', 'backoff', 'not-preferred', 'no-pg-room', 'unsuitable']),
      note: z.string().optional(),
    }),
  ),
  /** Verdicts left out of `considered` (a demand across hundreds of nodearrays). */
  consideredOmitted: z.number().int().optional(),
  /** Nodearray and bucket the demand got (its first placement); null when nothing was placed. */
  nodearray: z.string().nullable(),
  bucketId: z.string().nullable(),
  /** Which bucket and placement group, and why the other buckets were not chosen, in words. */
  explanation: z.string().nullable(),
});

/** `POST /api/plan`: what CycleCloud would receive (`createRequest`) and why, per demand. */
export const PlanResponse = z.object({
  cluster: z.string(),
  snapshotTakenAt: z.string(),
  paused: z.boolean(),
  sets: z.array(PlannedSetView),
  demands: z.array(DemandPlanView),
  createRequest: z.object({ sets: z.array(NodeCreationRequestSet) }),
});
export type PlanResponse = z.infer<typeof PlanResponse>;
