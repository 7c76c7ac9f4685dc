/**
 * The scale and terminate messages of docs/api.md §3 and the request record of §5.
 *
 * One set of schemas validates the queue, the HTTP API and feeds the OpenAPI document.
 */
import { z } from 'zod';
import { CallbackUrl, LEASE_SECONDS, MAX_LIFETIME_SECONDS, NodeAttributes, nestingError } from './limits.ts';
import { TenantName } from '../platform/tenants.ts';
import type { Prices } from '../platform/prices.ts';
import { requestCost } from './cost.ts';

export const RequestId = z
  .string()
  .min(1, 'must be 1–128 characters')
  .max(128, 'must be 1–128 characters')
  .regex(/^[A-Za-z0-9._:-]+$/, 'may contain only letters, digits and . _ : -')
  // A URL path normalises these away: the status URL would point elsewhere and the record be unreadable.
  .refine((id) => id !== '.' && id !== '..', 'must not be "." or ".." (a URL path would normalise it away)');

/** `raw` when it is a valid requestId (safe as a storage key and in a URL path), else null. */
export function usableRequestId(raw: unknown): string | null {
  return RequestId.safeParse(raw).success ? (raw as string) : null;
}

export const ClusterName = z
  .string()
  .min(1)
  .max(128)
  // It becomes part of storage keys and URLs: well-formed text only (a lone surrogate cannot be encoded).
  .refine((name) => !/[\p{Cc}\p{Cs}]/u.test(name), 'must be text without control characters or lone surrogates');

/** https only; plain http is allowed to loopback hosts so a scheduler on the same machine can listen (see `limits.ts`). */
const httpsUrl = CallbackUrl;

/** The demand fields that select buckets (docs/api.md §3); a demand needs at least one. */
export const DEMAND_SELECTORS = ['nodearray', 'nodearrays', 'machineTypes', 'minVcpus', 'minMemoryGB', 'minGpus', 'infiniband'] as const;

const perNode = (what: string, max: number) =>
  z
    .number({ error: `must be a number from 0 to ${max} (${what} per node)` })
    .min(0, 'must be ≥ 0')
    .max(max, `must be ≤ ${max}`);

export const Demand = z
  .object({
    nodearray: z.string().min(1).max(256).optional().describe('Selector: the one nodearray to use.'),
    nodearrays: z
      .array(z.string().min(1).max(256))
      .min(1, 'needs at least one nodearray')
      .max(1000)
      .optional()
      .describe("Selector: the nodearrays allowed, in order of preference. Absent (and no nodearray): every nodearray of the cluster, in CycleCloud's order."),
    count: z.number({ error: 'must be a whole number from 1 to 10000' }).int('must be a whole number from 1 to 10000').min(1, 'must be ≥ 1').max(10_000, 'must be ≤ 10000'),
    machineTypes: z.array(z.string().min(1).max(128)).min(1).max(64).optional().describe('Selector: allowed machine types, in order of preference (case-insensitive).'),
    minVcpus: perNode('vCPUs', 100_000).int('must be a whole number of vCPUs').optional().describe('Selector: vCPUs per node at least (bucket virtualMachine.vcpuCount).'),
    minMemoryGB: perNode('GB of memory', 1_000_000).optional().describe('Selector: GB of memory per node at least (bucket virtualMachine.memory).'),
    minGpus: perNode('GPUs', 1_000).int('must be a whole number of GPUs').optional().describe('Selector: GPUs per node at least (bucket virtualMachine.gpuCount).'),
    infiniband: z.boolean().optional().describe('Selector when true: only buckets whose virtualMachine.infiniband is true. false = no requirement.'),
    allOrNothing: z
      .boolean()
      .optional()
      .describe(
        'Loose demand: all nodes from one bucket, or none (colocated implies it). Without it a loose demand still prefers one bucket and is spread first-fit only when none can take it whole.',
      ),
    pick: z
      .enum(['first', 'smallest'], { error: 'must be "first" or "smallest"' })
      .optional()
      .describe(
        "Among matching buckets: first (default) in CycleCloud's order (nodearray order, then machineTypes preference, then bucket order), or smallest: fewest vCPUs, then memory, then GPUs.",
      ),
    colocated: z.boolean().optional(),
    ownPlacementGroup: z
      .boolean()
      .optional()
      .describe(
        'Colocated: a new placement group of its own that no other demand joins. Without it a colocated demand joins the fullest group of its bucket with room (existing, in flight, or opened by an earlier demand of the request).',
      ),
    placementGroupId: z.string().min(1).max(256).optional(),
    nodeAttributes: NodeAttributes.optional(),
    jobId: z.string().max(256).optional(),
    spotFallbackSeconds: z
      .number({ error: 'must be a whole number of seconds from 30 to 86400' })
      .int('must be a whole number of seconds from 30 to 86400')
      .min(30, 'must be at least 30 seconds')
      .max(86_400, 'must be at most 86400 seconds')
      .optional()
      .describe(
        'With capacity "spot-first": spot nodes not Ready this long after their create are given up (terminated) and the demand is re-planned on regular buckets. Default 300.',
      ),
    replaceEvicted: z
      .boolean()
      .optional()
      .describe(
        'A spot node of this demand that Azure evicts is replaced by a new create, exactly once (a colocated demand is re-planned whole: its gang is broken). Without it an evicted node is recorded as Evicted and not replaced once the request is final.',
      ),
    capacity: z
      .enum(['regular', 'spot', 'spot-first'], { error: 'must be "regular", "spot" or "spot-first"' })
      .optional()
      .describe(
        "Spot or regular buckets (spot = the nodearray's Interruptible is true): regular only, spot only, or spot-first: spot buckets first and regular ones when no spot bucket has room. Absent: any bucket. A colocated demand's nodes are never split across the two.",
      ),
    /** Exact CycleCloud node names to create (`count` of them, each `<prefix><n>`), e.g. Slurm's power-saving node names. */
    names: z.array(z.string().min(1).max(256)).min(1).max(10_000).optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.nodearray !== undefined && d.nodearrays !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['nodearrays'], message: 'give either nodearray (one) or nodearrays (a list), not both' });
    }
    const selects =
      d.nodearray !== undefined ||
      d.nodearrays !== undefined ||
      d.machineTypes !== undefined ||
      d.minVcpus !== undefined ||
      d.minMemoryGB !== undefined ||
      d.minGpus !== undefined ||
      d.infiniband === true;
    if (!selects) {
      ctx.addIssue({ code: 'custom', path: [], message: `needs at least one selector: ${DEMAND_SELECTORS.slice(0, -1).join(', ')} or infiniband: true` });
    }
  })
  .describe(
    'One kind of node wanted: `count` plus at least one selector (nodearray or nodearrays, machineTypes, minVcpus, minMemoryGB, minGpus, infiniband: true). Selectors combine with AND; nodearray and nodearrays exclude each other. A demand without a selector is refused as `demands.<i>: needs at least one selector`.',
  );
export type Demand = z.infer<typeof Demand>;

const wholeSeconds = (range: { min: number; max: number }) =>
  z
    .number({ error: `must be a whole number of seconds from ${range.min} to ${range.max}` })
    .int(`must be a whole number of seconds from ${range.min} to ${range.max}`)
    .min(range.min, `must be at least ${range.min} seconds`)
    .max(range.max, `must be at most ${range.max} seconds`);

/** `lease.seconds` and a renew's `seconds`: 60 s to 30 days. */
export const LeaseSeconds = wholeSeconds(LEASE_SECONDS);

export const Lease = z
  .object({ seconds: LeaseSeconds })
  .strict()
  .describe(
    "The request's nodes are shut down (each by its nodearray's ShutdownPolicy) when this many seconds pass after acceptance, or after the last renew, without a renew (`POST /api/scale-requests/{id}/renew`). Absent: `DEFAULT_LEASE_SECONDS`, unset = no lease.",
  );

export const ScaleRequest = z
  .object({
    kind: z.literal('scale').default('scale'),
    requestId: RequestId,
    cluster: ClusterName,
    demands: z.array(Demand).min(1, 'needs at least one demand').max(1000, 'at most 1000 demands'),
    callbackUrl: httpsUrl.optional(),
    /** Who goes first when one batch of a cluster cannot serve every member: higher first, then accept order. Default 0. */
    priority: z.number().int('must be an integer').min(-1000, 'at least -1000').max(1000, 'at most 1000').optional(),
    /** Whose request it is (docs/api.md, Tenants): its caps and fair share apply. Absent: by the function key it came with, else `default`. */
    tenant: TenantName.optional(),
    lease: Lease.optional(),
    maxLifetimeSeconds: wholeSeconds(MAX_LIFETIME_SECONDS)
      .optional()
      .describe("The request's nodes are shut down this many seconds after acceptance, whatever the renewals. Absent: `DEFAULT_MAX_LIFETIME_SECONDS`, unset = none."),
    /**
     * `wait` (default): a demand with no room waits, re-planned with backoff, until the deadline.
     * `fail`: a demand the planner cannot place for lack of capacity (no room, capacity backoff, no
     * placement group with room) is closed at once with that reason, so a scheduler that has its own
     * timeout (Slurm's ResumeTimeout) learns now instead of after it. Slurm's resumes use `fail`.
     */
    onNoCapacity: z.enum(['wait', 'fail']).optional(),
  })
  .strict();
export type ScaleRequest = z.infer<typeof ScaleRequest>;

export const TerminateRequest = z
  .object({
    kind: z.literal('terminate'),
    requestId: RequestId,
    cluster: ClusterName,
    ids: z.array(z.string().min(1)).max(10_000).optional(),
    names: z.array(z.string().min(1)).max(10_000).optional(),
    hostnames: z.array(z.string().min(1)).max(10_000).optional(),
    ipAddresses: z.array(z.string().min(1)).max(10_000).optional(),
    filter: z.string().min(1).max(4096).optional(),
    /**
     * `terminate` (default); `shutdown`: CycleCloud applies each node's ShutdownPolicy (Terminate, or
     * Deallocate to keep the disk); `start`: start deallocated nodes (fulfilled when they are Ready).
     */
    action: z.enum(['terminate', 'shutdown', 'start']).optional(),
    callbackUrl: httpsUrl.optional(),
  })
  .strict()
  .refine((t) => Boolean(t.ids?.length || t.names?.length || t.hostnames?.length || t.ipAddresses?.length || t.filter), {
    message: 'needs at least one of ids, names, hostnames, ipAddresses, filter',
    path: ['ids'],
  });
export type TerminateRequest = z.infer<typeof TerminateRequest>;

/** A queue or HTTP message: `kind` absent means `scale`. */
export const RequestMessage = z.union([TerminateRequest, ScaleRequest]);
export type RequestMessage = ScaleRequest | TerminateRequest;

export interface FieldError {
  path: string;
  message: string;
}

/** Parses a message; on failure returns every bad field as `demands.0.count: message`. */
export function parseRequestMessage(input: unknown): { ok: true; value: RequestMessage } | { ok: false; errors: FieldError[] } {
  const kind = input && typeof input === 'object' && 'kind' in input ? (input as { kind: unknown }).kind : undefined;
  if (kind !== undefined && kind !== 'scale' && kind !== 'terminate') {
    return { ok: false, errors: [{ path: 'kind', message: 'must be "scale" or "terminate"' }] };
  }
  const schema: z.ZodType<RequestMessage> = kind === 'terminate' ? TerminateRequest : ScaleRequest;
  return parseWith(schema, input);
}

/** zod's message, except a missing field says so in words ("is required", not "expected string, received undefined"). */
function fieldMessage(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code !== 'invalid_type' || issue.path.length === 0) return issue.message;
  let value: unknown = input;
  for (const key of issue.path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value === undefined ? 'is required' : issue.message;
}

export const RequestState = z.enum(['queued', 'planning', 'submitted', 'fulfilled', 'partially_fulfilled', 'failed', 'rejected']);
export type RequestState = z.infer<typeof RequestState>;
export const FINAL_STATES: ReadonlySet<RequestState> = new Set(['fulfilled', 'partially_fulfilled', 'failed', 'rejected']);

export const DemandStatus = z.object({
  index: z.number().int(),
  requested: z.number().int(),
  created: z.number().int(),
  ready: z.number().int(),
  placementGroupId: z.string().nullable(),
  machineType: z.string().nullable(),
  reason: z.string().nullable(),
  /** The demand's `jobId` label (docs/api.md §3: carried into status); present only when the request gave one. */
  jobId: z.string().optional(),
  /** Where the planner put the demand (first placement): nodearray and bucket, once planned. */
  nodearray: z.string().optional(),
  bucketId: z.string().optional(),
  /** Why that bucket and group, and why not the others (issue 11). */
  explanation: z.string().optional(),
  /** `capacity: "spot-first"` that fell back to regular buckets: why spot could not take the nodes. */
  spotFallback: z.string().optional(),
});
export type DemandStatus = z.infer<typeof DemandStatus>;

/** The fields of a demand's choice: kept in the record, published only when asked (`?explain=true`). */
const CHOICE_FIELDS = { nodearray: true, bucketId: true, explanation: true } as const;

/** A demand exactly as docs/api.md §5 publishes it. */
export const PublicDemandStatus = DemandStatus.omit(CHOICE_FIELDS);

export const OperationRef = z.object({
  /** CycleCloud's operation id; null while the create's answer was lost (followed by `cycleCloudRequestId`). */
  operationId: z.string().nullable(),
  cycleCloudRequestId: z.string(),
  state: z.enum(['pending', 'done', 'failed']),
  /** Internal: which kind of CycleCloud call the operation is; not part of the public record. */
  action: z.string().optional(),
  /**
   * Internal: the CycleCloud requestId of the batch create this operation came from. The public
   * record shows it as the operation's `cycleCloudRequestId` (the id CycleCloud knows the create by);
   * `cycleCloudRequestId` stays the member's own `<requestId>-g<n>` (its nodes' `ccscale-create` tag).
   */
  batch: z.string().optional(),
});
export type OperationRef = z.infer<typeof OperationRef>;

/** An operation as the public record shows it: exactly the docs/api.md §5 fields. */
export const PublicOperationRef = OperationRef.omit({ action: true, batch: true });

/** An operation's public fields: the create's CycleCloud requestId is the batch's when it was batched. */
const publicOperation = ({ action: _action, batch, ...op }: OperationRef): z.infer<typeof PublicOperationRef> => ({ ...op, cycleCloudRequestId: batch ?? op.cycleCloudRequestId });

export const NodeStatusRef = z.object({
  name: z.string(),
  id: z.string().nullable(),
  status: z.string(),
  demand: z.number().int().nullable(),
  /** Created in a spot bucket (its nodearray is `Interruptible`); absent = regular. */
  spot: z.literal(true).optional(),
  /** Its VM size and region, as CycleCloud listed them (what the price table prices it by). */
  machineType: z.string().optional(),
  region: z.string().optional(),
  /** When its create was accepted: the node costs from then (docs/api.md, Cost). */
  startedAt: z.string().optional(),
  /** When the scaler first saw it gone, failed or out of time: the node costs until then. */
  endedAt: z.string().optional(),
});
export type NodeStatusRef = z.infer<typeof NodeStatusRef>;

/** A request's cost so far: node-seconds × each node's hourly price / 3600 (docs/api.md, Cost). */
export const RequestCost = z.object({
  currency: z.string(),
  /** Rounded to 4 decimals. */
  amount: z.number(),
  /** Seconds its nodes ran (from create accepted to seen gone; the still running ones until `asOf`). */
  nodeSeconds: z.number(),
  asOf: z.string(),
  /** Machine types (`region/type`) the price table has no price for: their node-seconds are not in `amount`. */
  unpriced: z.array(z.string()),
});
export type RequestCost = z.infer<typeof RequestCost>;

/** Why a request's nodes were shut down by the scaler's own lifecycle (docs/api.md §5 `released.reason`). */
export const ReleaseReason = z.enum(['lease expired', 'released', 'max lifetime']);
export type ReleaseReason = z.infer<typeof ReleaseReason>;

/** The public request record (docs/api.md §5): what GET returns and callbacks POST. */
export const RequestRecord = z.object({
  requestId: z.string(),
  cluster: z.string(),
  /** `start`: a terminate message with `action: "start"` (a deallocated node brought back). */
  kind: z.enum(['scale', 'terminate', 'start']),
  state: RequestState,
  demands: z.array(DemandStatus),
  operations: z.array(OperationRef),
  nodes: z.array(NodeStatusRef),
  reason: z.string().nullable(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** The request's tenant when it is not `default` (docs/api.md, Tenants). */
  tenant: z.string().optional(),
  /** While leased and not released: the lease's length and when it passes unless renewed. */
  lease: z.object({ seconds: z.number().int(), expiresAt: z.string() }).optional(),
  /** With `maxLifetimeSeconds` (or its default): when the nodes are shut down whatever the renewals. */
  maxLifetime: z.object({ seconds: z.number().int(), endsAt: z.string() }).optional(),
  /** Once the scaler shut the request's nodes down of its own (lease, release, max lifetime): when and why. */
  released: z.object({ at: z.string(), reason: ReleaseReason }).optional(),
  /** With a price table: what its nodes cost so far (computed when read; docs/api.md, Cost). */
  cost: RequestCost.optional(),
});
export type RequestRecord = z.infer<typeof RequestRecord>;

/** A node's fields that price it: in the record, published only with `?cost=true`. */
const NODE_COST_FIELDS = { machineType: true, region: true, startedAt: true, endedAt: true } as const;

/** A node exactly as docs/api.md §5 publishes it. */
export const PublicNodeStatusRef = NodeStatusRef.omit(NODE_COST_FIELDS);

/**
 * The record exactly as docs/api.md §5 publishes it (GET and callbacks): internal fields stripped.
 * It changes only when the request does, so a callback's body equals a GET made after it.
 */
export const PublicRequestRecord = RequestRecord.omit({ cost: true }).extend({
  operations: z.array(PublicOperationRef),
  demands: z.array(PublicDemandStatus),
  nodes: z.array(PublicNodeStatusRef),
});
export type PublicRequestRecord = z.infer<typeof PublicRequestRecord>;

/** `?cost=true`: the public record plus its `cost` as of now and each node's machine type, region and times. */
export const CostedRequestRecord = PublicRequestRecord.extend({ nodes: z.array(NodeStatusRef), cost: RequestCost.optional() });

/**
 * `GET /api/scale-requests/{id}?explain=true`: the public record whose demands also say where the
 * planner put them and why (`nodearray`, `bucketId`, `explanation`; issue 11).
 */
export const ExplainedRequestRecord = PublicRequestRecord.extend({ demands: z.array(DemandStatus) });
export type ExplainedRequestRecord = z.infer<typeof ExplainedRequestRecord>;

/**
 * The public view of a stored record: unknown and internal keys dropped (the demands' choice too,
 * unless `explain`). A record that does not parse (an older stored shape) is returned with only
 * `operations[].action` and the demands' choice removed.
 */
export function publicRecord(record: RequestRecord, options: { explain?: boolean; cost?: { prices: Prices | undefined; nowMs: number } } = {}): PublishedRecord {
  const { cost: _stored, ...plain } = record;
  let shown: RequestRecord = plain;
  // What its nodes cost so far, as of now (scale requests only: a terminate's nodes are others').
  if (options.cost?.prices && record.kind === 'scale') shown = { ...plain, cost: requestCost(record, options.cost.prices, options.cost.nowMs) };
  const parsed = recordSchema({ explain: options.explain === true, cost: options.cost !== undefined }).safeParse({ ...shown, operations: shown.operations.map(publicOperation) });
  if (parsed.success) return parsed.data;
  return {
    ...shown,
    operations: shown.operations.map(publicOperation),
    demands: options.explain ? shown.demands : shown.demands.map(({ nodearray: _n, bucketId: _b, explanation: _e, ...d }) => d),
    nodes: options.cost ? shown.nodes : shown.nodes.map(({ machineType: _m, region: _r, startedAt: _s, endedAt: _e, ...n }) => n),
  };
}

/** A record as published: §5, with the demands' choice (`explain`) and cost and node times (`cost`) when asked. */
export type PublishedRecord = Omit<PublicRequestRecord, 'nodes' | 'demands'> & { demands: DemandStatus[]; nodes: NodeStatusRef[]; cost?: RequestCost | undefined };

/** The schema of a published record: §5, plus the demands' choice with `explain`, plus cost and node times with `cost`. */
export function recordSchema(options: { explain: boolean; cost: boolean }): z.ZodType<PublishedRecord> {
  if (!options.cost) return options.explain ? ExplainedRequestRecord : PublicRequestRecord;
  return options.explain ? CostedRequestRecord.extend({ demands: z.array(DemandStatus) }) : CostedRequestRecord;
}

/** `POST /api/scale-requests/{id}/renew`: `{}` renews for the lease's own length, `{"seconds": N}` for N. */
export const RenewBody = z.object({ seconds: LeaseSeconds.optional() }).strict();
/** `POST /api/scale-requests/{id}/release`: `{}`. */
export const ReleaseBody = z.object({}).strict();

/** The queue's form of renew and release (docs/api.md §3): the request they act on is `requestId`. */
export const LifecycleCommand = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('renew'), requestId: RequestId, seconds: LeaseSeconds.optional() }).strict(),
  z.object({ kind: z.literal('release'), requestId: RequestId }).strict(),
]);
export type LifecycleCommand = z.infer<typeof LifecycleCommand>;

/** Parses a queue `renew` or `release`, every bad field named like {@link parseRequestMessage} does. */
export function parseLifecycleCommand(input: unknown): { ok: true; value: LifecycleCommand } | { ok: false; errors: FieldError[] } {
  return parseWith(LifecycleCommand, input);
}

/**
 * Parses against `schema`, naming every bad field: an unknown key by its own path (`demands.0.colour`),
 * a missing one as "is required". Nesting is checked first: a body thousands deep is a field error,
 * not a stack overflow.
 */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown): { ok: true; value: T } | { ok: false; errors: FieldError[] } {
  const deep = nestingError(input);
  if (deep) return { ok: false, errors: [deep] };
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  return {
    ok: false,
    errors: result.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => ({ path: [...i.path, k].map(String).join('.'), message: 'is not a known field' }))
        : [{ path: i.path.map(String).join('.'), message: fieldMessage(i, input) }],
    ),
  };
}
