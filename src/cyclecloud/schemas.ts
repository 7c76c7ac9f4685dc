/**
 * CycleCloud REST wire format (reference/cyclecloud-rest-api.md §3–4).
 *
 * The only module that knows CycleCloud's JSON shapes. Lenient where the real API is: unknown
 * fields pass through, newer fields are optional. Shared by the client (parsing responses) and the
 * simulator (validating requests), so the two cannot drift apart.
 */
import { z } from 'zod';

const int = z.number().int();
const optInt = int.optional();

export const PlacementGroupStatus = z.object({ name: z.string(), activeCount: int, activeCoreCount: int }).passthrough();

export const VirtualMachine = z
  .object({
    vcpuCount: int,
    memory: z.number(),
    infiniband: z.boolean(),
    gpuCount: int.default(0),
    pcpuCount: optInt,
    vcpuQuotaCount: optInt,
  })
  .passthrough();

export const NodearrayBucketStatus = z
  .object({
    bucketId: z.string(),
    definition: z.object({ machineType: z.string() }).passthrough().optional(),
    maxCount: int,
    maxCoreCount: int,
    activeCount: int,
    activeCoreCount: int,
    activeNodes: z.array(z.string()).optional(),
    availableCount: int,
    availableCoreCount: int,
    quotaCount: int,
    quotaCoreCount: int,
    consumedCoreCount: int,
    familyQuotaCount: optInt,
    familyQuotaCoreCount: optInt,
    familyConsumedCoreCount: optInt,
    regionalQuotaCount: optInt,
    regionalQuotaCoreCount: optInt,
    regionalConsumedCoreCount: optInt,
    maxPlacementGroupSize: int,
    maxPlacementGroupCoreSize: int,
    placementGroups: z.array(PlacementGroupStatus).default([]),
    valid: z.boolean(),
    invalidReason: z.string().optional(),
    /** Seconds since the last capacity failure; negative = never. */
    lastCapacityFailure: z.number().optional(),
    spotPlacementScore: z.string().optional(),
    virtualMachine: VirtualMachine,
  })
  .passthrough();
export type NodearrayBucketStatus = z.infer<typeof NodearrayBucketStatus>;

/** A CycleCloud node record: free-form, PascalCase. Only `Name` is relied on. */
export const NodeRecord = z
  .object({
    Name: z.string(),
    NodeId: z.string().optional(),
    Template: z.string().optional(),
    MachineType: z.string().optional(),
    Status: z.string().optional(),
    TargetState: z.string().optional(),
    State: z.string().optional(),
    StatusMessage: z.string().optional(),
    Hostname: z.string().optional(),
    PrivateIp: z.string().optional(),
    InstanceId: z.string().optional(),
    PlacementGroupId: z.string().optional(),
  })
  .catchall(z.unknown());
export type NodeRecord = z.infer<typeof NodeRecord>;

const NODE_STRING_KEYS = [
  'NodeId',
  'Template',
  'MachineType',
  'Status',
  'TargetState',
  'State',
  'StatusMessage',
  'Hostname',
  'PrivateIp',
  'InstanceId',
  'PlacementGroupId',
] as const;

/** The same rule as {@link NodeRecord}, by hand: an object with a string `Name` and string-or-absent known keys. */
export function isNodeRecord(value: unknown): value is NodeRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  if (typeof record.Name !== 'string') return false;
  for (const key of NODE_STRING_KEYS) {
    const v = record[key];
    if (v !== undefined && typeof v !== 'string') return false;
  }
  return true;
}

/**
 * Node lists as they arrive in bulk (`status?nodes=true`, `GET …/nodes`): checked with
 * {@link isNodeRecord} instead of the {@link NodeRecord} object schema. Node records are large
 * free-form objects and a cluster can have 10,000 of them; zod's `catchall` copies every key of every
 * record, which made parsing a 10,000-node status ~1.6–1.9× `JSON.parse` alone (3× cold), while this
 * check keeps it at ~1.1× (`npm run bench`, `snapshot_parse_10000_nodes`). Same acceptance rule, same
 * output type; the record is passed through as parsed, and a bad record is still named by index.
 */
const NodeRecordList = z.array(z.custom<NodeRecord>(isNodeRecord, { message: 'must be a node record with a string Name' }));

/**
 * `Interruptible` of a nodearray record: true marks spot (scalelib reads it as
 * `nodearray.get("Interruptible", False)`, reference §3.2). The record is free-form and carries template
 * attributes as the template set them; a parameterised `Interruptible = $UseSpot` is typed by its
 * parameter, so a string is possible (UNCONFIRMED). Only `true` or `"true"` (any case) is spot:
 * Python's truthiness would read the string `"false"` as spot, the costly mistake; anything else,
 * absent included, is regular, and an odd value never fails the whole status.
 */
const Interruptible = z
  .unknown()
  .transform((v) => v === true || (typeof v === 'string' && v.trim().toLowerCase() === 'true'))
  .optional();

/** The nodearray's attribute record: free-form, only `Interruptible` is read. */
const NodearrayRecord = z.object({ Interruptible }).catchall(z.unknown());

export const ClusterNodearrayStatus = z
  .object({
    name: z.string(),
    maxCount: int,
    maxCoreCount: int,
    buckets: z.array(NodearrayBucketStatus),
    nodearray: NodearrayRecord.default({}),
  })
  .passthrough();
export type ClusterNodearrayStatus = z.infer<typeof ClusterNodearrayStatus>;

export const ClusterStatus = z
  .object({
    state: z.string().optional(),
    targetState: z.string().optional(),
    maxCount: int,
    maxCoreCount: int,
    nodearrays: z.array(ClusterNodearrayStatus),
    nodes: NodeRecordList.optional(),
  })
  .passthrough();
export type ClusterStatus = z.infer<typeof ClusterStatus>;

export const OperationStatus = z.object({ action: z.string(), startTime: z.string() }).passthrough();
export type OperationStatus = z.infer<typeof OperationStatus>;

export const NodeList = z.object({ nodes: NodeRecordList, operation: OperationStatus.optional() }).passthrough();
export type NodeList = z.infer<typeof NodeList>;

export const NodeCreationRequestSet = z
  .object({
    nodearray: z.string().min(1),
    count: int.min(1),
    definition: z.object({ machineType: z.string().optional() }).passthrough().optional(),
    nameFormat: z.string().optional(),
    nameOffset: optInt,
    nodeAttributes: z.record(z.string(), z.unknown()).optional(),
    placementGroupId: z.string().optional(),
  })
  .passthrough();
export type NodeCreationRequestSet = z.infer<typeof NodeCreationRequestSet>;

export const NodeCreationRequest = z.object({ requestId: z.string().optional(), sets: z.array(NodeCreationRequestSet).min(1) }).passthrough();
export type NodeCreationRequest = z.infer<typeof NodeCreationRequest>;

export const NodeCreationResult = z
  .object({
    operationId: z.string(),
    sets: z.array(z.object({ added: int, message: z.string().optional() }).passthrough()),
  })
  .passthrough();
export type NodeCreationResult = z.infer<typeof NodeCreationResult>;

export const NodeManagementRequest = z
  .object({
    ids: z.array(z.string()).optional(),
    names: z.array(z.string()).optional(),
    hostnames: z.array(z.string()).optional(),
    ip_addresses: z.array(z.string()).optional(),
    filter: z.string().optional(),
    requestId: z.string().optional(),
  })
  .passthrough();
export type NodeManagementRequest = z.infer<typeof NodeManagementRequest>;

export const NodeManagementResult = z
  .object({
    operationId: z.string(),
    nodes: z.array(
      z
        .object({
          id: z.string(),
          name: z.string(),
          status: z.enum(['OK', 'Error']).optional(),
          error: z.string().optional(),
        })
        .passthrough(),
    ),
  })
  .passthrough();
export type NodeManagementResult = z.infer<typeof NodeManagementResult>;

export const OperationList = z.array(OperationStatus);

/** CycleCloud's error body, when it sends JSON (az-hop#221). */
export const CycleCloudErrorBody = z.object({ Exception: z.string(), Message: z.string(), Detail: z.string() }).partial().passthrough();
export type CycleCloudErrorBody = z.infer<typeof CycleCloudErrorBody>;
