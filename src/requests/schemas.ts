/**
 * The scale and terminate messages of docs/api.md §3 and the request record of §5.
 *
 * One set of schemas validates the queue, the HTTP API and feeds the OpenAPI document.
 */
import { z } from 'zod';

export const RequestId = z
  .string()
  .min(1, 'must be 1–128 characters')
  .max(128, 'must be 1–128 characters')
  .regex(/^[A-Za-z0-9._:-]+$/, 'may contain only letters, digits and . _ : -');

export const ClusterName = z.string().min(1).max(128);

/** https only; plain http is allowed to loopback hosts so a scheduler on the same machine can listen. */
const httpsUrl = z
  .url({ protocol: /^https?$/, error: 'must be an https URL' })
  .max(2048)
  .refine((u) => {
    const url = new URL(u);
    return url.protocol === 'https:' || ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  }, 'must be an https URL (http is accepted only for loopback hosts)');

export const Demand = z
  .object({
    nodearray: z.string().min(1).max(256),
    count: z
      .number({ error: 'must be a whole number from 1 to 10000' })
      .int('must be a whole number from 1 to 10000')
      .min(1, 'must be ≥ 1')
      .max(10_000, 'must be ≤ 10000'),
    machineTypes: z.array(z.string().min(1).max(128)).min(1).max(64).optional(),
    colocated: z.boolean().optional(),
    placementGroupId: z.string().min(1).max(256).optional(),
    nodeAttributes: z.record(z.string(), z.unknown()).optional(),
    jobId: z.string().max(256).optional(),
  })
  .strict();
export type Demand = z.infer<typeof Demand>;

export const ScaleRequest = z
  .object({
    kind: z.literal('scale').default('scale'),
    requestId: RequestId,
    cluster: ClusterName,
    demands: z.array(Demand).min(1, 'needs at least one demand').max(1000, 'at most 1000 demands'),
    callbackUrl: httpsUrl.optional(),
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
    callbackUrl: httpsUrl.optional(),
  })
  .strict()
  .refine(
    (t) => Boolean(t.ids?.length || t.names?.length || t.hostnames?.length || t.ipAddresses?.length || t.filter),
    { message: 'needs at least one of ids, names, hostnames, ipAddresses, filter', path: ['ids'] },
  );
export type TerminateRequest = z.infer<typeof TerminateRequest>;

/** A queue or HTTP message: `kind` absent means `scale`. */
export const RequestMessage = z.union([TerminateRequest, ScaleRequest]);
export type RequestMessage = ScaleRequest | TerminateRequest;

export interface FieldError {
  path: string;
  message: string;
}

/** Parses a message; on failure returns every bad field as `demands.0.count: message`. */
export function parseRequestMessage(
  input: unknown,
): { ok: true; value: RequestMessage } | { ok: false; errors: FieldError[] } {
  const kind =
    input && typeof input === 'object' && 'kind' in input ? (input as { kind: unknown }).kind : undefined;
  if (kind !== undefined && kind !== 'scale' && kind !== 'terminate') {
    return { ok: false, errors: [{ path: 'kind', message: 'must be "scale" or "terminate"' }] };
  }
  const schema = kind === 'terminate' ? TerminateRequest : ScaleRequest;
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  return {
    ok: false,
    // An unknown key is reported at the object holding it; name the key itself (`demands.0.colour`).
    errors: result.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => ({ path: [...i.path, k].map(String).join('.'), message: 'is not a known field' }))
        : [{ path: i.path.map(String).join('.'), message: fieldMessage(i, input) }],
    ),
  };
}

/** zod's message, except a missing field says so in words ("is required", not "expected string, received undefined"). */
function fieldMessage(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code !== 'invalid_type' || issue.path.length === 0) return issue.message;
  let value: unknown = input;
  for (const key of issue.path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value === undefined ? 'is required' : issue.message;
}

export const RequestState = z.enum([
  'queued',
  'planning',
  'submitted',
  'fulfilled',
  'partially_fulfilled',
  'failed',
  'rejected',
]);
export type RequestState = z.infer<typeof RequestState>;
export const FINAL_STATES: ReadonlySet<RequestState> = new Set([
  'fulfilled',
  'partially_fulfilled',
  'failed',
  'rejected',
]);

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
});
export type DemandStatus = z.infer<typeof DemandStatus>;

export const OperationRef = z.object({
  operationId: z.string(),
  cycleCloudRequestId: z.string(),
  state: z.enum(['pending', 'done', 'failed']),
  /** Internal: which kind of CycleCloud call the operation is; not part of the public record. */
  action: z.string().optional(),
});
export type OperationRef = z.infer<typeof OperationRef>;

/** An operation as the public record shows it: exactly the docs/api.md §5 fields. */
export const PublicOperationRef = OperationRef.omit({ action: true });

export const NodeStatusRef = z.object({
  name: z.string(),
  id: z.string().nullable(),
  status: z.string(),
  demand: z.number().int().nullable(),
});
export type NodeStatusRef = z.infer<typeof NodeStatusRef>;

/** The public request record (docs/api.md §5): what GET returns and callbacks POST. */
export const RequestRecord = z.object({
  requestId: z.string(),
  cluster: z.string(),
  kind: z.enum(['scale', 'terminate']),
  state: RequestState,
  demands: z.array(DemandStatus),
  operations: z.array(OperationRef),
  nodes: z.array(NodeStatusRef),
  reason: z.string().nullable(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type RequestRecord = z.infer<typeof RequestRecord>;

/** The record exactly as docs/api.md §5 publishes it (GET and callbacks): internal fields stripped. */
export const PublicRequestRecord = RequestRecord.extend({ operations: z.array(PublicOperationRef) });
export type PublicRequestRecord = z.infer<typeof PublicRequestRecord>;

/**
 * The public view of a stored record: unknown and internal keys dropped. A record that does not
 * parse (an older stored shape) is returned with only `operations[].action` removed.
 */
export function publicRecord(record: RequestRecord): PublicRequestRecord {
  const parsed = PublicRequestRecord.safeParse(record);
  if (parsed.success) return parsed.data;
  return { ...record, operations: record.operations.map(({ action: _action, ...op }) => op) };
}
