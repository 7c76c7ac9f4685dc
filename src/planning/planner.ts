/**
 * The planner: a scale request + a cluster snapshot + what is already in flight → the sets of ONE
 * CycleCloud `nodes/create` call, with a reason for every demand that is not fully placed.
 *
 * Pure: no I/O, no clock, no randomness; the same input always yields a deep-equal plan (the
 * submission path relies on this to re-derive the same create after a crash).
 *
 * Selection (docs/api.md §3): a demand's selectors (`nodearray`/`nodearrays`, `machineTypes`,
 * `minVcpus`, `minMemoryGB`, `minGpus`, `infiniband`) combine with AND into a candidate list of
 * valid buckets, in CycleCloud's order (nodearray order, then `machineTypes` preference, then bucket
 * order), or smallest machine first with `pick: "smallest"`. A colocated or `allOrNothing` demand
 * goes whole into the first candidate with room; a loose demand prefers one bucket that takes it
 * whole and is spread first-fit only when none can. Colocated demands pack into the fullest
 * placement group of that bucket with room (existing, in flight, or opened by an earlier demand of
 * the same request) unless `ownPlacementGroup` or a `placementGroupId` says otherwise.
 *
 * Spot (`capacity`): a bucket is spot when its nodearray is `Interruptible`. `regular` and `spot` are
 * one more filter; `spot-first` keeps every bucket but moves the spot ones ahead, so the usual rules
 * (one bucket whole, then first-fit) meet spot room first and regular buckets only when spot has none.
 * A gang takes one bucket and so one kind; its placement group never mixes spot and regular.
 *
 * Hot path: candidate lists are built once per distinct selector set and walked with a cursor that
 * skips buckets already out of room (room only shrinks during a plan). Per-bucket verdicts and
 * sentences are written only for demands not fully placed, or for all with `explain: 'all'`.
 *
 * Capacity model (reference/cyclecloud-rest-api.md §5.7): a bucket's `availableCount` already folds
 * in the bucket, quota, nodearray and cluster limits as of the snapshot. Nodes requested since then
 * (in-flight) and nodes placed by earlier demands of this plan are not in it, so the planner keeps
 * its own running usage of the limits that are SHARED: the bucket, the nodearray (count and cores,
 * across its buckets) and the cluster (count and cores, across nodearrays). Family and regional
 * quota are shared too but the snapshot does not say which buckets share a family, so those are left
 * to `availableCount` and to CycleCloud's partial `added` (which the tracker handles).
 */
import type { BucketVerdict, CapacityBackoff, DemandChoice, DemandPlan, Placement, Plan, PlanInput, PlanReasonCode, PlannedSet } from './types.ts';
import type { BucketSnapshot, NodearraySnapshot } from '../snapshots/model.ts';
import type { Demand } from '../ledger/schemas.ts';
import type { NodeCreationRequestSet } from '../cyclecloud/schemas.ts';

/** Default for {@link PlanInput.options} `capacityFailureWindowSec`. */
export const DEFAULT_CAPACITY_FAILURE_WINDOW_SEC = 300;
/** Default for {@link PlanInput.options} `maxSnapshotAgeSec`. */
export const DEFAULT_MAX_SNAPSHOT_AGE_SEC = 120;
/** Longest placement-group id the planner generates. */
export const MAX_PLACEMENT_GROUP_ID_LENGTH = 64;
/** How many names a "what exists" list shows before it says "… and N more". */
const LIST_LIMIT = 12;
/** Verdicts kept per demand for candidate buckets, and (at least) for unsuitable ones. */
const MAX_CANDIDATE_VERDICTS = 50;
const MIN_UNSUITABLE_VERDICTS = 5;
const MAX_VERDICTS = 50;

class BucketState {
  /** Nodes requested after the snapshot, whole bucket. */
  inFlight = 0;
  /** Nodes placed in this plan so far. */
  planned = 0;
  /** In-flight nodes per placement group, including groups the snapshot does not list yet. */
  inFlightByGroup: Map<string, number> | null = null;
  plannedByGroup: Map<string, number> | null = null;
  activeByGroup: Map<string, number> | null = null;
  /** Groups opened by this plan that later colocated demands may join (not own, not given). */
  shared: string[] | null = null;
  /** Backoff sentence, computed once: undefined = not yet, null = not backing off. */
  backoff: string | null | undefined = undefined;
  /** Index of this plan's set for loose nodes without attributes here, or -1. */
  looseSet = -1;
  readonly na: NodearrayState;
  readonly bucket: BucketSnapshot;
  /** Position in the snapshot (CycleCloud's order across nodearrays); keys sets. */
  readonly id: number;
  readonly gpuCount: number;
  constructor(na: NodearrayState, bucket: BucketSnapshot, id: number) {
    this.na = na;
    this.bucket = bucket;
    this.id = id;
    this.gpuCount = bucket.gpuCount ?? 0;
  }

  /** `nodearray/machineType`, for sentences (built only when one is written). */
  get label(): string {
    return `${this.na.snapshot.name}/${this.bucket.machineType}`;
  }
}

interface NodearrayState {
  snapshot: NodearraySnapshot;
  buckets: BucketState[];
  /** Lower-cased machine type → buckets, in CycleCloud order (built on first use). */
  byMachineType: Map<string, BucketState[]> | null;
  /** Active + in-flight + planned. */
  usedCount: number;
  usedCores: number;
}

interface ClusterState {
  maxCount: number;
  maxCoreCount: number;
  usedCount: number;
  usedCores: number;
}

interface Room {
  room: number;
  /** Short name of the binding limit (`DemandPlan.boundBy`). */
  bound: string;
  /** A clause explaining it, for reasons. */
  detail: string;
}

interface Rejection {
  code: PlanReasonCode;
  boundBy: string;
  /** The sentence, for demand `index`. */
  reason: (index: number) => string;
  considered: (index: number) => BucketVerdict[];
}

/** The buckets one selector set may use, shared by every demand with the same selectors. */
interface Candidates {
  /** Every bucket of the allowed nodearrays, machineTypes-preferred first (explanations only). */
  scope: BucketState[];
  /** Valid, matching, not backing off, in pick order. */
  ready: BucketState[];
  /**
   * Per need (negative for gangs): every `ready` bucket before this index can no longer take that
   * many nodes (room only shrinks during a plan, so the first fit for a given need only moves on).
   */
  cursors: Map<number, number>;
  /** Every `ready` bucket before this index has no room at all (shared by all needs). */
  full: number;
  backingOff: BucketState[];
  /** Valid matching buckets (ready + backing off). */
  valid: number;
  unsuitable: number;
  /** Largest `maxPlacementGroupSize` of a valid matching bucket, and that bucket. */
  maxPg: number;
  maxPgBucket: BucketState | null;
  rejection: Rejection | null;
  /** `scope` in pick order (for explanations of `pick: "smallest"`), built on first use. */
  pickOrder?: BucketState[];
}

/** What the fast path decided for one demand (applied after explanations are taken). */
interface Decision {
  takes: { b: BucketState; count: number; group: string | null }[];
  passedOver: number;
  /** Came from the first-fit spread (no single bucket had room for the whole loose demand). */
  spread: boolean;
  split: boolean;
  group: DemandChoice['group'];
  /** Room the chosen group had for the gang (for its note). */
  groupRoom: number;
}

const lower = (s: string): string => s.toLowerCase();

/** The decision that places nothing (shared: never changed). */
const NOTHING: Decision = Object.freeze({ takes: [], passedOver: 0, spread: false, split: false, group: null, groupRoom: 0 }) as Decision;

function listNames(names: readonly string[]): string {
  if (names.length === 0) return '(none)';
  const shown = names.slice(0, LIST_LIMIT).join(', ');
  return names.length > LIST_LIMIT ? `${shown} … and ${names.length - LIST_LIMIT} more` : shown;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Stable JSON (sorted keys) so equal attribute objects group into one set whatever their key order. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** FNV-1a, 32 bit, hex: a short deterministic tag for ids that had to be shortened. */
function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * The placement-group id for a new group: `<requestId>-d<index>-g<generation>[-r<k>]`, restricted to
 * letters, digits, `-` and `_` (it ends up in Azure scale-set names) and at most 64 characters; a
 * long request id is shortened to its head plus a hash of the whole, so ids stay unique and stable.
 */
export function placementGroupIdFor(requestId: string, demandIndex: number, generation: number, retry = 0): string {
  const suffix = `-d${demandIndex}-g${generation}${retry > 0 ? `-r${retry}` : ''}`;
  const base = requestId.replace(/[^A-Za-z0-9_-]/g, '-');
  if (base.length + suffix.length <= MAX_PLACEMENT_GROUP_ID_LENGTH) return `${base}${suffix}`;
  const keep = MAX_PLACEMENT_GROUP_ID_LENGTH - suffix.length - 9;
  return `${base.slice(0, keep)}-${shortHash(requestId)}${suffix}`;
}

/** True when the demand names nothing but nodearrays (the behaviour before resource selectors). */
const onlyNodearrays = (d: Demand): boolean =>
  d.machineTypes === undefined && d.minVcpus === undefined && d.minMemoryGB === undefined && d.minGpus === undefined && d.infiniband !== true && d.pick === undefined;

const isColocated = (d: Demand): boolean => d.colocated === true || d.placementGroupId !== undefined;

/** The demand's per-node minimums in words, e.g. `minVcpus ≥ 44, infiniband`. */
export function describeSelectors(d: Demand): string {
  const parts: string[] = [];
  if (d.capacity === 'regular' || d.capacity === 'spot') parts.push(`capacity ${d.capacity}`);
  if (d.minVcpus !== undefined) parts.push(`minVcpus ≥ ${d.minVcpus}`);
  if (d.minMemoryGB !== undefined) parts.push(`minMemoryGB ≥ ${d.minMemoryGB}`);
  if (d.minGpus !== undefined) parts.push(`minGpus ≥ ${d.minGpus}`);
  if (d.infiniband === true) parts.push('infiniband');
  if (d.machineTypes !== undefined) parts.push(`machineTypes ${d.machineTypes.join(', ')}`);
  return parts.join(', ');
}

/** Why a bucket does not meet the demand's minimums, or null when it does. */
function unmetBy(b: BucketSnapshot, gpu: number, d: Demand): string | null {
  const why: string[] = [];
  if (d.minVcpus !== undefined && b.vcpuCount < d.minVcpus) why.push(`vcpuCount ${b.vcpuCount} < minVcpus ${d.minVcpus}`);
  if (d.minMemoryGB !== undefined && b.memoryGB < d.minMemoryGB) why.push(`memory ${b.memoryGB} GB < minMemoryGB ${d.minMemoryGB}`);
  if (d.minGpus !== undefined && gpu < d.minGpus) why.push(`gpuCount ${gpu} < minGpus ${d.minGpus}`);
  if (d.infiniband === true && !b.infiniband) why.push('no InfiniBand');
  if (!capacityAllows(b, d)) why.push(b.spot === true ? 'spot, capacity regular' : 'not spot, capacity spot');
  return why.length > 0 ? why.join(', ') : null;
}

/** `regular` and `spot` filter; absent and `spot-first` allow every bucket. */
const capacityAllows = (b: BucketSnapshot, d: Demand): boolean => d.capacity === undefined || d.capacity === 'spot-first' || (d.capacity === 'spot') === (b.spot === true);

const meetsResources = (b: BucketSnapshot, gpu: number, d: Demand): boolean =>
  (d.minVcpus === undefined || b.vcpuCount >= d.minVcpus) &&
  (d.minMemoryGB === undefined || b.memoryGB >= d.minMemoryGB) &&
  (d.minGpus === undefined || gpu >= d.minGpus) &&
  (d.infiniband !== true || b.infiniband);

const meets = (b: BucketSnapshot, gpu: number, d: Demand): boolean => meetsResources(b, gpu, d) && capacityAllows(b, d);

/**
 * The demand's choice in one sentence: which nodearray, bucket and group, and why the other buckets
 * were not chosen. Cheap enough for the submission path; the planner's hot path only counts.
 */
export function describeChoice(d: DemandPlan): string | null {
  const c = d.choice;
  const first = d.placements[0];
  if (!c || !first) return d.reason;
  const bucket = `${first.nodearray}/${first.machineType} (bucket ${first.bucketId})`;
  const where =
    c.spotFallback === undefined
      ? bucket
      : first.spot === true
        ? `spot had no room for all ${d.planned} (${c.spotFallback}), the rest went to regular buckets; ${bucket}`
        : `spot had no room (${c.spotFallback}); regular bucket ${bucket} used`;
  const how = c.split
    ? `spread over ${plural(new Set(d.placements.map((p) => `${p.nodearray}\u0000${p.bucketId}`)).size, 'bucket')} first-fit: no single matching bucket had room for all ${d.planned}`
    : c.pick === 'smallest'
      ? `the smallest of ${plural(c.candidates, 'matching bucket')} with room for all ${d.planned}`
      : `the first of ${plural(c.candidates, 'matching bucket')} in CycleCloud's order with room for all ${d.planned}`;
  const others: string[] = [];
  if (!c.split && c.passedOver > 0) others.push(`${plural(c.passedOver, 'earlier candidate')} had no room`);
  if (c.backingOff > 0) others.push(`${c.backingOff} backing off after a capacity failure`);
  if (c.unsuitable > 0) others.push(`${c.unsuitable} did not meet the selectors or are invalid`);
  const group =
    first.placementGroupId === null
      ? ''
      : `; placement group ${first.placementGroupId} (${
          c.group === 'shared'
            ? 'shared with an earlier demand of this request'
            : c.group === 'existing'
              ? 'existing, with room'
              : c.group === 'given'
                ? 'given'
                : c.group === 'own'
                  ? 'its own (ownPlacementGroup)'
                  : 'new'
        })`;
  return `${where}: ${how}${others.length > 0 ? `; of the other buckets ${others.join(', ')}` : ''}${group}`;
}

/** What the request record keeps of a demand's choice (docs/api.md §5 demand fields `nodearray`, `bucketId`, `explanation`). */
export function planChoice(d: DemandPlan): { nodearray?: string; bucketId?: string; explanation?: string; spotFallback?: string } {
  const explanation = d.explanation ?? describeChoice(d);
  return {
    ...(d.choice?.spotFallback ? { spotFallback: d.choice.spotFallback } : {}),
    ...(d.nodearray !== null ? { nodearray: d.nodearray } : {}),
    ...(d.bucketId !== null ? { bucketId: d.bucketId } : {}),
    ...(explanation ? { explanation } : {}),
  };
}

/**
 * Plans one scale request. Never throws for a demand that cannot be placed: every demand comes back
 * with a status (`placed`, `partial`, `waiting`, `rejected`, `skipped`), a stable `code`, the limit
 * that bound it and a sentence saying why.
 */
export function plan(input: PlanInput): Plan {
  const { request, snapshot, nowMs } = input;
  const windowSec = input.options?.capacityFailureWindowSec ?? DEFAULT_CAPACITY_FAILURE_WINDOW_SEC;
  const maxAgeSec = input.options?.maxSnapshotAgeSec ?? DEFAULT_MAX_SNAPSHOT_AGE_SEC;
  const explainAll = input.options?.explain === 'all';
  const generation = input.generation ?? 0;
  const excluded = new Set(input.excludedPlacementGroups ?? []);
  const takenAtMs = Date.parse(snapshot.takenAt);
  const snapshotAgeSec = Number.isFinite(takenAtMs) ? Math.max(0, (nowMs - takenAtMs) / 1000) : Number.POSITIVE_INFINITY;

  const remainingFor = (index: number, demand: Demand): number => (input.remaining === undefined ? demand.count : Math.max(0, Math.floor(input.remaining[index] ?? 0)));

  // Safety net: a stale snapshot plans nothing (callers refresh before planning).
  if (snapshotAgeSec > maxAgeSec) {
    const age = Number.isFinite(snapshotAgeSec) ? `${Math.round(snapshotAgeSec)} s old` : `unreadable (takenAt ${JSON.stringify(snapshot.takenAt)})`;
    return {
      sets: [],
      demands: request.demands.map((demand, index) => {
        const need = remainingFor(index, demand);
        if (need === 0) return skipped(index, demand);
        return {
          index,
          requested: need,
          planned: 0,
          placements: [],
          status: 'waiting',
          code: 'PLAN_STALE_SNAPSHOT',
          boundBy: `snapshot age (max ${maxAgeSec} s)`,
          reason: `the cluster snapshot of ${snapshot.cluster} is ${age}, older than the ${maxAgeSec} s the planner trusts; waiting for a fresh snapshot`,
          considered: [],
          nodearray: null,
          bucketId: null,
          choice: null,
        };
      }),
    };
  }

  // Index once: nodearrays by name, running usage of shared limits.
  const cluster: ClusterState = { maxCount: snapshot.maxCount, maxCoreCount: snapshot.maxCoreCount, usedCount: 0, usedCores: 0 };
  const nodearrays = new Map<string, NodearrayState>();
  const allNodearrays: NodearrayState[] = [];
  let bucketCount = 0;
  for (const na of snapshot.nodearrays) {
    const state: NodearrayState = { snapshot: na, buckets: [], byMachineType: null, usedCount: 0, usedCores: 0 };
    for (const bucket of na.buckets) {
      state.buckets.push(new BucketState(state, bucket, bucketCount++));
      state.usedCount += bucket.activeCount;
      state.usedCores += bucket.activeCount * bucket.vcpuCount;
    }
    cluster.usedCount += state.usedCount;
    cluster.usedCores += state.usedCores;
    if (!nodearrays.has(na.name)) nodearrays.set(na.name, state);
    allNodearrays.push(state);
  }

  function byMachineType(na: NodearrayState): Map<string, BucketState[]> {
    if (na.byMachineType) return na.byMachineType;
    const map = new Map<string, BucketState[]>();
    for (const b of na.buckets) {
      const mt = lower(b.bucket.machineType);
      const list = map.get(mt);
      if (list) list.push(b);
      else map.set(mt, [b]);
    }
    na.byMachineType = map;
    return map;
  }

  for (const f of input.inFlight) {
    if (f.count <= 0) continue;
    const na = nodearrays.get(f.nodearray);
    const candidates = na ? byMachineType(na).get(lower(f.machineType)) : undefined;
    // In-flight nodes belong to the valid bucket of their machine type (new nodes only go there).
    const b = candidates?.find((c) => c.bucket.valid) ?? candidates?.[0];
    const vcpu = b?.bucket.vcpuCount ?? 0;
    if (b) {
      b.inFlight += f.count;
      if (f.placementGroupId !== null) {
        b.inFlightByGroup ??= new Map();
        b.inFlightByGroup.set(f.placementGroupId, (b.inFlightByGroup.get(f.placementGroupId) ?? 0) + f.count);
      }
    }
    if (na) {
      na.usedCount += f.count;
      na.usedCores += f.count * vcpu;
    }
    cluster.usedCount += f.count;
    cluster.usedCores += f.count * vcpu;
  }

  // The tenant's caps, counted as this plan takes nodes (a copy: the input stays as given).
  const quotas = (input.quotas ?? []).map((q) => ({ ...q }));

  const backoffs = new Map<string, CapacityBackoff>();
  for (const b of input.backoffs) {
    if (b.untilMs <= nowMs) continue;
    const key = `${b.nodearray}\u0000${lower(b.machineType)}`;
    const prev = backoffs.get(key);
    if (!prev || prev.untilMs < b.untilMs) backoffs.set(key, b);
  }

  const sets: PlannedSet[] = [];
  const setIndexByKey = new Map<string, number>();
  const candidatesByKey = new Map<string, Candidates>();
  const candidatesByVcpus = new Map<number, Candidates>();
  const demands: DemandPlan[] = [];
  /** "What exists" for unknown-nodearray reasons, built once (a request may repeat the same typo 1,000 times). */
  let nodearrayList: string | undefined;

  const activeIn = (b: BucketState, id: string): number => {
    b.activeByGroup ??= new Map(b.bucket.placementGroups.map((g) => [g.name, g.activeCount]));
    return b.activeByGroup.get(id) ?? 0;
  };
  const knowsGroup = (b: BucketState, id: string): boolean =>
    activeIn(b, id) > 0 || b.activeByGroup!.has(id) || (b.inFlightByGroup?.has(id) ?? false) || (b.plannedByGroup?.has(id) ?? false);
  const groupRoom = (b: BucketState, id: string): number => b.bucket.maxPlacementGroupSize - activeIn(b, id) - (b.inFlightByGroup?.get(id) ?? 0) - (b.plannedByGroup?.get(id) ?? 0);

  /** How many more nodes a bucket can take now (the numbers of {@link roomOf}, without words). */
  function roomNum(b: BucketState): number {
    const { bucket, na } = b;
    const vcpu = bucket.vcpuCount > 1 ? bucket.vcpuCount : 1;
    let r = bucket.availableCount - b.inFlight - b.planned;
    const naCount = na.snapshot.maxCount - na.usedCount;
    if (naCount < r) r = naCount;
    const naCores = Math.floor((na.snapshot.maxCoreCount - na.usedCores) / vcpu);
    if (naCores < r) r = naCores;
    const clCount = cluster.maxCount - cluster.usedCount;
    if (clCount < r) r = clCount;
    const clCores = Math.floor((cluster.maxCoreCount - cluster.usedCores) / vcpu);
    if (clCores < r) r = clCores;
    for (const q of quotas) {
      if (q.blocked !== undefined) r = 0;
      if (q.maxNodes !== undefined && q.maxNodes - q.usedNodes < r) r = q.maxNodes - q.usedNodes;
      if (q.maxCores !== undefined) {
        const qCores = Math.floor((q.maxCores - q.usedCores) / vcpu);
        if (qCores < r) r = qCores;
      }
    }
    return r > 0 ? r : 0;
  }

  /** How many more nodes a bucket can take now, and which limit says so. */
  function roomOf(b: BucketState): Room {
    const { bucket, na } = b;
    const vcpu = Math.max(1, bucket.vcpuCount);
    const taken = b.inFlight + b.planned;
    const less = [...(b.inFlight > 0 ? [`${b.inFlight} in-flight`] : []), ...(b.planned > 0 ? [`${b.planned} planned for earlier demands`] : [])].join(', ');
    let best: Room = {
      room: bucket.availableCount - taken,
      bound: `bucket availableCount ${bucket.availableCount} (${b.label})${less ? ` less ${less}` : ''}`,
      detail: `availableCount ${bucket.availableCount}${less ? ` less ${less}` : ''}`,
    };
    const consider = (room: number, bound: string, detail: string): void => {
      if (room < best.room) best = { room, bound, detail };
    };
    const naName = na.snapshot.name;
    consider(
      na.snapshot.maxCount - na.usedCount,
      `nodearray maxCount ${na.snapshot.maxCount} (${naName})`,
      `nodearray ${naName} allows ${na.snapshot.maxCount} nodes; ${na.usedCount} are active, in flight or planned`,
    );
    consider(
      Math.floor((na.snapshot.maxCoreCount - na.usedCores) / vcpu),
      `nodearray maxCoreCount ${na.snapshot.maxCoreCount} (${naName})`,
      `nodearray ${naName} allows ${na.snapshot.maxCoreCount} cores; ${na.usedCores} are active, in flight or planned and ${bucket.machineType} needs ${bucket.vcpuCount} per node`,
    );
    consider(
      cluster.maxCount - cluster.usedCount,
      `cluster maxCount ${cluster.maxCount}`,
      `cluster ${snapshot.cluster} allows ${cluster.maxCount} nodes; ${cluster.usedCount} are active, in flight or planned`,
    );
    consider(
      Math.floor((cluster.maxCoreCount - cluster.usedCores) / vcpu),
      `cluster maxCoreCount ${cluster.maxCoreCount}`,
      `cluster ${snapshot.cluster} allows ${cluster.maxCoreCount} cores; ${cluster.usedCores} are active, in flight or planned and ${bucket.machineType} needs ${bucket.vcpuCount} per node`,
    );
    for (const q of quotas) {
      if (q.blocked !== undefined) consider(0, `tenant ${q.tenant} budget`, q.blocked);
      if (q.maxNodes !== undefined) {
        consider(q.maxNodes - q.usedNodes, `tenant ${q.tenant} maxNodes ${q.maxNodes} ${q.scope}`, `tenant ${q.tenant} at ${q.usedNodes} of ${q.maxNodes} nodes ${q.scope}`);
      }
      if (q.maxCores !== undefined) {
        consider(
          Math.floor((q.maxCores - q.usedCores) / vcpu),
          `tenant ${q.tenant} maxCores ${q.maxCores} ${q.scope}`,
          `tenant ${q.tenant} at ${q.usedCores} of ${q.maxCores} cores ${q.scope} and ${bucket.machineType} needs ${bucket.vcpuCount} per node`,
        );
      }
    }
    if (best.room < 0) best = { ...best, room: 0 };
    return best;
  }

  /** Why a bucket is backing off, or null (computed once per bucket and plan). */
  function backoffOf(b: BucketState): string | null {
    if (b.backoff !== undefined) return b.backoff;
    let why: string | null = null;
    const last = b.bucket.lastCapacityFailureSec;
    if (last !== null && last >= 0 && last + snapshotAgeSec < windowSec) {
      why = `CycleCloud reported a capacity failure on ${b.label} ${Math.round(last + snapshotAgeSec)} s ago (backing off for ${windowSec} s)`;
    } else if (backoffs.size > 0) {
      const memo = backoffs.get(`${b.na.snapshot.name}\u0000${lower(b.bucket.machineType)}`);
      if (memo) why = `${b.label} is backing off for ${Math.ceil((memo.untilMs - nowMs) / 1000)} s more after a capacity failure: ${memo.reason}`;
    }
    b.backoff = why;
    return why;
  }

  const verdictOf = (b: BucketState, verdict: BucketVerdict['verdict'], available: number, note?: string): BucketVerdict => ({
    nodearray: b.na.snapshot.name,
    bucketId: b.bucket.bucketId,
    machineType: b.bucket.machineType,
    available,
    verdict,
    ...(note !== undefined ? { note } : {}),
  });

  /** The candidates of a selector set, built on first use and shared by every demand with the same selectors. */
  function candidatesFor(demand: Demand): Candidates {
    // The common shape (only minVcpus, as a scheduler sends it) is keyed by the number alone.
    if (
      demand.minVcpus !== undefined &&
      demand.nodearray === undefined &&
      demand.nodearrays === undefined &&
      demand.machineTypes === undefined &&
      demand.minMemoryGB === undefined &&
      demand.minGpus === undefined &&
      demand.infiniband !== true &&
      demand.pick === undefined &&
      demand.capacity === undefined
    ) {
      let c = candidatesByVcpus.get(demand.minVcpus);
      if (!c) {
        c = buildCandidates(demand, false);
        candidatesByVcpus.set(demand.minVcpus, c);
      }
      return c;
    }
    const legacyIb = isColocated(demand) && onlyNodearrays(demand);
    const key = `${demand.nodearray ?? ''}\u0001${demand.nodearrays?.join('\u0000') ?? ''}\u0001${demand.machineTypes ? lower(demand.machineTypes.join('\u0000')) : ''}\u0001${demand.minVcpus ?? ''}\u0001${demand.minMemoryGB ?? ''}\u0001${demand.minGpus ?? ''}\u0001${demand.infiniband === true ? 1 : 0}\u0001${demand.pick ?? ''}\u0001${demand.capacity ?? ''}\u0001${legacyIb ? 1 : 0}`;
    let c = candidatesByKey.get(key);
    if (!c) {
      c = buildCandidates(demand, legacyIb);
      candidatesByKey.set(key, c);
    }
    return c;
  }

  function buildCandidates(demand: Demand, legacyIb: boolean): Candidates {
    const empty = (rejection: Rejection): Candidates => ({
      scope: [],
      ready: [],
      cursors: new Map(),
      full: 0,
      backingOff: [],
      valid: 0,
      unsuitable: 0,
      maxPg: 0,
      maxPgBucket: null,
      rejection,
    });
    // 1. Nodearrays.
    let scopeNas: NodearrayState[];
    if (demand.nodearray !== undefined || demand.nodearrays !== undefined) {
      const names = demand.nodearray !== undefined ? [demand.nodearray] : [...new Set(demand.nodearrays)];
      const unknown = names.filter((n) => !nodearrays.has(n));
      if (unknown.length > 0) {
        const what = unknown.map((n) => `"${n}"`).join(', ');
        return empty({
          code: 'PLAN_UNKNOWN_NODEARRAY',
          boundBy: `nodearray ${unknown.join(', ')}`,
          considered: () => [],
          reason: (i) =>
            `demand ${i} asks for nodearray ${what}, which cluster ${snapshot.cluster} does not have; it has: ${(nodearrayList ??= listNames(snapshot.nodearrays.map((n) => n.name)))}`,
        });
      }
      scopeNas = names.map((n) => nodearrays.get(n)!);
    } else {
      scopeNas = allNodearrays;
    }
    const scopeText =
      demand.nodearray !== undefined
        ? `nodearray ${demand.nodearray}`
        : demand.nodearrays !== undefined
          ? `nodearrays ${listNames(scopeNas.map((n) => n.snapshot.name))}`
          : `cluster ${snapshot.cluster}`;

    // 2. machineTypes: the preferred buckets of each nodearray in preference order; the rest are not preferred.
    const scope: BucketState[] = [];
    const ordered: BucketState[] = [];
    if (demand.machineTypes) {
      const wanted = demand.machineTypes.map(lower);
      const unknown = demand.machineTypes.filter((mt) => !scopeNas.some((na) => byMachineType(na).has(lower(mt))));
      if (unknown.length > 0) {
        const s = unknown.length > 1 ? 's' : '';
        const single = scopeNas.length === 1 ? scopeNas[0]! : null;
        return empty({
          code: 'PLAN_UNKNOWN_MACHINE_TYPE',
          boundBy: single ? `machineTypes of nodearray ${single.snapshot.name}` : `machineTypes of ${scopeText}`,
          considered: () => [],
          reason: (i) =>
            single
              ? `demand ${i} asks for machine type${s} ${unknown.join(', ')}, which nodearray ${single.snapshot.name} has no bucket for; its buckets are: ${listNames(single.buckets.map((b) => b.bucket.machineType))}`
              : `demand ${i} asks for machine type${s} ${unknown.join(', ')}, which no nodearray of ${scopeText} has a bucket for; they have: ${listNames([...new Set(scopeNas.flatMap((na) => na.buckets.map((b) => b.bucket.machineType)))])}`,
        });
      }
      for (const na of scopeNas) {
        const index = byMachineType(na);
        const seen = new Set<BucketState>();
        for (const mt of wanted) {
          for (const b of index.get(mt) ?? []) {
            if (!seen.has(b)) {
              seen.add(b);
              ordered.push(b);
              scope.push(b);
            }
          }
        }
        for (const b of na.buckets) if (!seen.has(b)) scope.push(b);
      }
    } else {
      for (const na of scopeNas) {
        if (legacyIb) {
          // A colocated demand naming only nodearrays: InfiniBand first (tightly coupled work), else CycleCloud's order.
          for (const b of na.buckets) if (b.bucket.infiniband) ordered.push(b);
          for (const b of na.buckets) if (!b.bucket.infiniband) ordered.push(b);
        } else {
          for (const b of na.buckets) ordered.push(b);
        }
        for (const b of na.buckets) scope.push(b);
      }
    }

    // 3. Minimums, validity, backoff.
    const matching = ordered.filter((b) => meets(b.bucket, b.gpuCount, demand));
    if (matching.length === 0 && ordered.some((b) => meetsResources(b.bucket, b.gpuCount, demand))) {
      const kind = demand.capacity === 'spot' ? 'spot (its nodearray Interruptible)' : 'regular';
      return empty({
        code: 'PLAN_NO_MATCHING_BUCKET',
        boundBy: `capacity ${demand.capacity}`,
        considered: () => scope.slice(0, MAX_VERDICTS).map((b) => verdictOf(b, 'unsuitable', 0, unmetBy(b.bucket, b.gpuCount, demand) ?? 'not in machineTypes')),
        reason: (i) => `demand ${i} asks for capacity ${demand.capacity}, and no bucket of ${scopeText} that meets its other selectors is ${kind}`,
      });
    }
    if (matching.length === 0) {
      const sel = describeSelectors(demand);
      const largest = ordered.reduce<BucketState | null>((a, b) => (a === null || b.bucket.vcpuCount > a.bucket.vcpuCount ? b : a), null);
      return empty({
        code: 'PLAN_NO_MATCHING_BUCKET',
        boundBy: `selectors (${sel})`,
        considered: () => scope.slice(0, MAX_VERDICTS).map((b) => verdictOf(b, 'unsuitable', 0, unmetBy(b.bucket, b.gpuCount, demand) ?? 'not in machineTypes')),
        reason: (i) =>
          `demand ${i} asks for ${sel}, which no bucket of ${scopeText} meets${largest ? `; the largest is ${largest.label} with ${largest.bucket.vcpuCount} vCPUs, ${largest.bucket.memoryGB} GB, ${largest.gpuCount} GPUs${largest.bucket.infiniband ? ', InfiniBand' : ''}` : ''}`,
      });
    }
    const valid = matching.filter((b) => b.bucket.valid);
    if (valid.length === 0) {
      const reasons = matching.map((b) => `${b.label}: ${b.bucket.invalidReason ?? 'invalid'}`);
      return empty({
        code: 'PLAN_NO_VALID_BUCKET',
        boundBy: `no valid bucket (${scopeNas.length === 1 ? scopeNas[0]!.snapshot.name : scopeText})`,
        considered: () => matching.slice(0, MAX_VERDICTS).map((b) => verdictOf(b, 'invalid', 0, `invalid: ${b.bucket.invalidReason ?? 'no reason given'}`)),
        reason: (i) => `demand ${i} has no valid bucket to create nodes in: ${listNames(reasons)}`,
      });
    }
    const ready: BucketState[] = [];
    const backingOff: BucketState[] = [];
    for (const b of valid) (backoffOf(b) === null ? ready : backingOff).push(b);
    if (demand.pick === 'smallest') {
      // Fewest wasted resources first; CycleCloud's order among equals (sort is stable).
      ready.sort((a, b) => a.bucket.vcpuCount - b.bucket.vcpuCount || a.bucket.memoryGB - b.bucket.memoryGB || a.gpuCount - b.gpuCount);
    }
    if (demand.capacity === 'spot-first') {
      // Spot ahead of regular, each kind in the order above (stable).
      ready.sort((a, b) => Number(b.bucket.spot === true) - Number(a.bucket.spot === true));
    }
    let maxPgBucket: BucketState | null = null;
    for (const b of valid) if (!maxPgBucket || b.bucket.maxPlacementGroupSize > maxPgBucket.bucket.maxPlacementGroupSize) maxPgBucket = b;
    let scopeSize = 0;
    for (const na of scopeNas) scopeSize += na.buckets.length;
    return {
      scope,
      ready,
      cursors: new Map(),
      full: 0,
      backingOff,
      valid: valid.length,
      unsuitable: scopeSize - valid.length,
      maxPg: maxPgBucket!.bucket.maxPlacementGroupSize,
      maxPgBucket,
      rejection: null,
    };
  }

  function place(b: BucketState, demand: Demand, index: number, count: number, group: string | null, ownSet: boolean): Placement {
    reserve(b, count);
    if (group !== null) {
      b.plannedByGroup ??= new Map();
      b.plannedByGroup.set(group, (b.plannedByGroup.get(group) ?? 0) + count);
    }
    const attrs = demand.nodeAttributes;
    // A gang gets a set of its own even in a shared group: CycleCloud's per-set `added` then says
    // which gang came up short, and compensating it never touches another demand's nodes. Loose
    // nodes share one set per bucket and attributes.
    let setIndex: number | undefined;
    let setKey: string | null = null;
    if (!ownSet) {
      if (attrs === undefined && group === null) setIndex = b.looseSet >= 0 ? b.looseSet : undefined;
      else {
        setKey = `${b.id}\u0000${group ?? ''}\u0000${attrs === undefined ? '' : stableJson(attrs)}`;
        setIndex = setIndexByKey.get(setKey);
      }
    }
    if (setIndex === undefined) {
      setIndex = sets.length;
      if (setKey !== null) setIndexByKey.set(setKey, setIndex);
      else if (!ownSet) b.looseSet = setIndex;
      const set: NodeCreationRequestSet = { nodearray: b.na.snapshot.name, count: 0, definition: { machineType: b.bucket.machineType } };
      if (group !== null) set.placementGroupId = group;
      if (attrs !== undefined) set.nodeAttributes = attrs;
      sets.push({ nodearray: b.na.snapshot.name, bucketId: b.bucket.bucketId, machineType: b.bucket.machineType, placementGroupId: group, count: 0, demands: [], set });
    }
    const ps = sets[setIndex]!;
    ps.count += count;
    ps.set.count = ps.count;
    const last = ps.demands[ps.demands.length - 1];
    if (last && last.index === index) last.count += count;
    else ps.demands.push({ index, count });
    const placement: Placement = { setIndex, count, nodearray: b.na.snapshot.name, bucketId: b.bucket.bucketId, machineType: b.bucket.machineType, placementGroupId: group };
    if (b.bucket.spot === true) placement.spot = true;
    return placement;
  }

  /** The placement group for a gang in bucket `b`, or null when none can hold it there. */
  function chooseGroup(b: BucketState, demand: Demand, index: number, need: number): { id: string; kind: DemandChoice['group']; room: number } | null {
    if (demand.placementGroupId !== undefined) {
      // The caller's group is used as given (CycleCloud creates it if new), even if listed as excluded:
      // the caller chose it, and excluding it would silently move the gang.
      const id = demand.placementGroupId;
      const room = groupRoom(b, id);
      if (room < need) return null;
      return { id, kind: 'given', room };
    }
    if (demand.ownPlacementGroup !== true) {
      // Packing: the fullest group that still fits the whole gang.
      let best: string | null = null;
      let bestRoom = Number.POSITIVE_INFINITY;
      let shared = false;
      for (const g of b.bucket.placementGroups) {
        const room = excluded.has(g.name) ? -1 : groupRoom(b, g.name);
        if (room >= need && room < bestRoom) {
          best = g.name;
          bestRoom = room;
        }
      }
      if (b.inFlightByGroup) {
        for (const id of b.inFlightByGroup.keys()) {
          if (activeIn(b, id) > 0 || b.activeByGroup!.has(id) || excluded.has(id)) continue;
          const room = groupRoom(b, id);
          if (room >= need && room < bestRoom) {
            best = id;
            bestRoom = room;
          }
        }
      }
      if (b.shared) {
        for (const id of b.shared) {
          const room = groupRoom(b, id);
          if (room >= need && room < bestRoom) {
            best = id;
            bestRoom = room;
            shared = true;
          }
        }
      }
      if (best !== null) return { id: best, kind: shared ? 'shared' : 'existing', room: bestRoom };
    }
    for (let retry = 0; ; retry++) {
      const id = placementGroupIdFor(request.requestId, index, generation, retry);
      const room = excluded.has(id) ? -1 : groupRoom(b, id);
      if (room >= need) return { id, kind: demand.ownPlacementGroup === true ? 'own' : 'new', room };
    }
  }

  /** How the group was chosen, in words (explanations only; the state is as at the decision). */
  function groupNoteOf(b: BucketState, id: string, kind: NonNullable<DemandChoice['group']>, room: number): string {
    switch (kind) {
      case 'given':
        return knowsGroup(b, id) ? `placement group ${id} (given) has room for ${room}` : `placement group ${id} (given) is new`;
      case 'shared':
        return `placement group ${id} (opened by an earlier demand) has room for ${room} (fullest that fits)`;
      case 'existing':
        return `existing placement group ${id} has room for ${room} (fullest that fits)`;
      case 'own':
        return `new placement group ${id} of its own`;
      case 'new':
        return `new placement group ${id}`;
    }
  }

  /** The fast path: where the demand goes, without words. Nothing is changed yet. */
  function decide(demand: Demand, index: number, need: number, c: Candidates, list: BucketState[], useCursor: boolean): Decision {
    if (useCursor) while (c.full < list.length && roomNum(list[c.full]!) === 0) c.full++;
    if (isColocated(demand)) {
      // A gang fits a bucket whose groups may hold `need` and that has room for all of it.
      const key = -need;
      let i = useCursor ? Math.max(c.cursors.get(key) ?? 0, c.full) : 0;
      let g: ReturnType<typeof chooseGroup> = null;
      for (; i < list.length; i++) {
        const b = list[i]!;
        if (b.bucket.maxPlacementGroupSize < need || roomNum(b) < need) continue;
        g = chooseGroup(b, demand, index, need);
        if (g !== null) break;
      }
      // Only the group search of a caller-named group can fail where a later demand's would not.
      if (useCursor && demand.placementGroupId === undefined) c.cursors.set(key, i);
      if (g === null) return NOTHING;
      return { takes: [{ b: list[i]!, count: need, group: g.id }], passedOver: i, spread: false, split: false, group: g.kind, groupRoom: g.room };
    }
    let i = useCursor ? Math.max(c.cursors.get(need) ?? 0, c.full) : 0;
    while (i < list.length && roomNum(list[i]!) < need) i++;
    if (useCursor) c.cursors.set(need, i);
    if (i < list.length) return { takes: [{ b: list[i]!, count: need, group: null }], passedOver: i, spread: false, split: false, group: null, groupRoom: 0 };
    if (demand.allOrNothing === true) return NOTHING;
    // No single bucket: spread first-fit, over one machine type (across nodearrays) when its buckets
    // together have room, else over every candidate.
    const from = useCursor ? c.full : 0;
    const rooms = new Map<string, number>();
    let sameType: string | null = null;
    for (let k = from; k < list.length; k++) {
      const b = list[k]!;
      const mt = lower(b.bucket.machineType);
      const total = (rooms.get(mt) ?? 0) + roomNum(b);
      rooms.set(mt, total);
      if (total >= need) {
        sameType = mt;
        break;
      }
    }
    if (sameType !== null) {
      const one = spread(list, from, need, sameType);
      if (one.left === 0) return { takes: one.takes, passedOver: 0, spread: true, split: one.takes.length > 1, group: null, groupRoom: 0 };
    }
    const all = spread(list, from, need, null);
    return { takes: all.takes, passedOver: 0, spread: true, split: all.takes.length > 1, group: null, groupRoom: 0 };
  }

  /** First-fit over `list` from `from` (only machine type `only` when given); changes nothing. */
  function spread(list: BucketState[], from: number, need: number, only: string | null): { takes: Decision['takes']; left: number } {
    const takes: Decision['takes'] = [];
    let left = need;
    for (let k = from; k < list.length && left > 0; k++) {
      const b = list[k]!;
      if (only !== null && lower(b.bucket.machineType) !== only) continue;
      const r = roomNum(b);
      if (r === 0) continue;
      const take = r < left ? r : left;
      // Count the take against the shared limits now, so the next bucket sees them; undone below.
      takes.push({ b, count: take, group: null });
      reserve(b, take);
      left -= take;
    }
    for (const t of takes) reserve(t.b, -t.count);
    return { takes, left };
  }

  /** Counts `count` nodes (negative: gives them back) against the bucket, nodearray and cluster. */
  function reserve(b: BucketState, count: number): void {
    const vcpu = b.bucket.vcpuCount;
    b.planned += count;
    b.na.usedCount += count;
    b.na.usedCores += count * vcpu;
    cluster.usedCount += count;
    cluster.usedCores += count * vcpu;
    for (const q of quotas) {
      q.usedNodes += count;
      q.usedCores += count * vcpu;
    }
  }

  for (let index = 0; index < request.demands.length; index++) {
    const demand = request.demands[index]!;
    const need = remainingFor(index, demand);
    if (need === 0) {
      demands.push(skipped(index, demand));
      continue;
    }
    const c = candidatesFor(demand);
    if (c.rejection) {
      demands.push(rejected(index, need, c.rejection.code, c.rejection.boundBy, c.rejection.reason(index), c.rejection.considered(index)));
      continue;
    }
    const colocated = isColocated(demand);
    const overCap = quotaRejection(index, need, c);
    if (overCap) {
      demands.push(overCap);
      continue;
    }
    if (colocated && need > c.maxPg) {
      // A gang that no placement group can ever hold is rejected, not left waiting forever.
      const sizes = [...c.ready, ...c.backingOff].slice(0, LIST_LIMIT).map((b) => `${b.label} allows at most ${b.bucket.maxPlacementGroupSize}`);
      const more = c.valid > LIST_LIMIT ? ` … and ${c.valid - LIST_LIMIT} more` : '';
      const largest = c.maxPgBucket!;
      demands.push(
        rejected(
          index,
          need,
          'PLAN_EXCEEDS_PLACEMENT_GROUP',
          `maxPlacementGroupSize=${largest.bucket.maxPlacementGroupSize} (${largest.label})`,
          `demand ${index} needs ${need} nodes in one placement group but ${sizes.join(', ')}${more} (maxPlacementGroupSize)`,
          [...c.ready, ...c.backingOff].slice(0, MAX_VERDICTS).map((b) => verdictOf(b, 'no-pg-room', 0, `maxPlacementGroupSize ${b.bucket.maxPlacementGroupSize} < ${need}`)),
        ),
      );
      continue;
    }
    // A given group that already exists (or is being filled) lives in one bucket: a scale set has one
    // VM size, so the gang must go there rather than start a same-named group of another size.
    let list = c.ready;
    let useCursor = true;
    let homes: BucketState[] | null = null;
    const given = demand.placementGroupId;
    if (given !== undefined) {
      const found = [...c.ready, ...c.backingOff].filter((b) => knowsGroup(b, given));
      if (found.length > 0 && found.length < c.valid) {
        homes = found;
        list = c.ready.filter((b) => found.includes(b));
        useCursor = false;
      }
    }
    const decision = decide(demand, index, need, c, list, useCursor);
    // Before the decision is applied, so the spot rooms are the ones it saw.
    const spotFallback = demand.capacity === 'spot-first' && decision.takes.some((t) => t.b.bucket.spot !== true) ? spotShortfall(c, demand, need) : undefined;
    const planned = decision.takes.reduce((a, t) => a + t.count, 0);
    const full = planned === need;
    let dp: DemandPlan;
    if (full && !explainAll) {
      dp = {
        index,
        requested: need,
        planned,
        placements: [],
        status: 'placed',
        reason: null,
        code: null,
        boundBy: null,
        considered: [],
        nodearray: null,
        bucketId: null,
        choice: null,
      };
    } else {
      dp = explain(demand, index, need, c, decision, homes);
    }
    // Apply.
    for (const t of decision.takes) {
      dp.placements.push(place(t.b, demand, index, t.count, t.group, colocated));
      if (t.group !== null && decision.group === 'new') (t.b.shared ??= []).push(t.group);
    }
    const first = decision.takes[0];
    if (first) {
      dp.nodearray = first.b.na.snapshot.name;
      dp.bucketId = first.b.bucket.bucketId;
      dp.choice = {
        pick: demand.pick ?? 'first',
        candidates: c.valid,
        passedOver: decision.passedOver,
        backingOff: c.backingOff.length,
        unsuitable: c.unsuitable,
        split: decision.split,
        group: decision.group,
        ...(spotFallback !== undefined ? { spotFallback } : {}),
      };
      if (explainAll && full) {
        const explanation = describeChoice(dp);
        if (explanation !== null) dp.explanation = explanation;
      }
    }
    demands.push(dp);
  }

  return { sets, demands };

  /**
   * A demand no tenant cap could ever hold: its whole count (a gang's, or any demand's on its
   * fewest-core bucket) is more than the cap allows with nothing else running. Rejected, not waiting.
   */
  function quotaRejection(index: number, need: number, c: Candidates): DemandPlan | null {
    if (quotas.length === 0) return null;
    const usable = [...c.ready, ...c.backingOff];
    if (usable.length === 0) return null;
    const fewest = usable.reduce((a, b) => (b.bucket.vcpuCount < a.bucket.vcpuCount ? b : a));
    const vcpu = Math.max(1, fewest.bucket.vcpuCount);
    for (const q of quotas) {
      const say = (what: string, bound: string) =>
        rejected(
          index,
          need,
          'PLAN_EXCEEDS_TENANT_QUOTA',
          bound,
          what,
          usable.slice(0, MAX_VERDICTS).map((b) => verdictOf(b, 'full', 0, bound)),
        );
      if (q.maxNodes !== undefined && need > q.maxNodes) {
        return say(
          `demand ${index} needs ${need} nodes but tenant ${q.tenant} may use at most ${q.maxNodes} nodes ${q.scope}`,
          `tenant ${q.tenant} maxNodes ${q.maxNodes} ${q.scope}`,
        );
      }
      if (q.maxCores !== undefined && need * vcpu > q.maxCores) {
        return say(
          `demand ${index} needs at least ${need * vcpu} cores (${need} nodes of ${vcpu}) but tenant ${q.tenant} may use at most ${q.maxCores} cores ${q.scope}`,
          `tenant ${q.tenant} maxCores ${q.maxCores} ${q.scope}`,
        );
      }
    }
    return null;
  }

  /**
   * The slow path, for a demand not fully placed (or every demand with `explain: 'all'`): a verdict
   * per bucket as things stand before the decision is applied, the limit that bound it and why.
   * Sentences are built only for the verdicts and clauses kept (capped), counts for the rest.
   */
  function explain(demand: Demand, index: number, need: number, c: Candidates, decision: Decision, homes: BucketState[] | null): DemandPlan {
    const colocated = isColocated(demand);
    const wholeOnly = colocated || demand.allOrNothing === true;
    const chosen = new Map(decision.takes.map((t) => [t.b, t]));
    const main: BucketVerdict[] = [];
    const unsuitable: BucketVerdict[] = [];
    let omitted = 0;
    const notes = capped();
    const limits = capped();
    let firstBound: string | null = null;
    let backoffCount = 0;
    let pgRoomShort = 0;
    let capacityShort = 0;
    const preferred = demand.machineTypes ? new Set(demand.machineTypes.map(lower)) : null;
    let left = need;
    const order = demand.pick === 'smallest' || demand.capacity === 'spot-first' ? pickOrder(c) : c.scope;
    const whole = decision.takes.length > 0 && !decision.spread;
    for (const b of order) {
      if (preferred && !preferred.has(lower(b.bucket.machineType))) {
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'not-preferred', 0, 'not in machineTypes'));
        else omitted++;
        continue;
      }
      if (!meets(b.bucket, b.gpuCount, demand)) {
        if (unsuitable.length < MAX_VERDICTS) unsuitable.push(verdictOf(b, 'unsuitable', 0, unmetBy(b.bucket, b.gpuCount, demand) ?? undefined));
        else omitted++;
        continue;
      }
      if (!b.bucket.valid) {
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'invalid', 0, `invalid: ${b.bucket.invalidReason ?? 'no reason given'}`));
        else omitted++;
        continue;
      }
      if (whole && left === 0) {
        // Placed whole: candidates after the chosen one were not needed; they are only counted.
        omitted++;
        continue;
      }
      if (homes && !homes.includes(b)) {
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'not-preferred', 0, `placement group ${demand.placementGroupId} already lives in ${homes[0]!.label}`));
        else omitted++;
        continue;
      }
      const why = backoffOf(b);
      if (why !== null) {
        backoffCount++;
        notes.add(() => why);
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'backoff', 0, why));
        else omitted++;
        continue;
      }
      const room = roomNum(b);
      const take = chosen.get(b);
      if (take) {
        const r = roomOf(b);
        if (main.length < MAX_CANDIDATE_VERDICTS)
          main.push(
            verdictOf(
              b,
              'chosen',
              room,
              (decision.group !== null && take.group !== null ? groupNoteOf(b, take.group, decision.group, decision.groupRoom) : null) ||
                (take.count < room ? `took ${take.count} of ${room}` : `took ${take.count}, all it had: ${r.detail}`),
            ),
          );
        else omitted++;
        if (decision.spread && take.count < left) {
          firstBound ??= r.bound;
          limits.add(() => `${b.label} took ${take.count} (${r.detail})`);
        }
        left -= take.count;
        continue;
      }
      if (colocated && b.bucket.maxPlacementGroupSize < need) {
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'no-pg-room', 0, `maxPlacementGroupSize ${b.bucket.maxPlacementGroupSize} < ${need}`));
        else omitted++;
        notes.add(() => `${b.label} allows at most ${b.bucket.maxPlacementGroupSize} nodes per placement group`);
        continue;
      }
      if (decision.takes.length > 0 && !decision.spread) {
        const by = decision.takes[0]!.b;
        if (main.length < MAX_CANDIDATE_VERDICTS)
          main.push(room >= need ? verdictOf(b, 'not-preferred', room, `not needed: ${by.label} took the whole demand`) : verdictOf(b, 'full', room, roomOf(b).detail));
        else omitted++;
        continue;
      }
      if (wholeOnly || !decision.spread) {
        if (room < need) {
          capacityShort++;
          if (firstBound === null) firstBound = roomOf(b).bound;
          if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'full', room, roomOf(b).detail));
          else omitted++;
          notes.add(() => (room > 0 ? `${b.label} has room for ${room} (${roomOf(b).detail})` : `${b.label} has no room (${roomOf(b).detail})`));
          continue;
        }
        if (colocated) {
          // Room enough, but no group could hold the gang (the given one is too full).
          pgRoomShort++;
          firstBound ??= `maxPlacementGroupSize=${b.bucket.maxPlacementGroupSize} (${b.label})`;
          const id = demand.placementGroupId ?? '';
          const note = `placement group ${id} on ${b.label} has room for ${Math.max(0, groupRoom(b, id))} of ${need} (maxPlacementGroupSize ${b.bucket.maxPlacementGroupSize}; ${activeIn(b, id)} active, ${b.inFlightByGroup?.get(id) ?? 0} in flight, ${b.plannedByGroup?.get(id) ?? 0} planned)`;
          if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'no-pg-room', room, note));
          else omitted++;
          notes.add(() => note);
          continue;
        }
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'not-preferred', room, 'not needed'));
        else omitted++;
        continue;
      }
      // A loose spread: a bucket it did not use had no room, or was not needed.
      if (room === 0) {
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'full', 0, roomOf(b).detail));
        else omitted++;
        if (left > 0) {
          if (firstBound === null) firstBound = roomOf(b).bound;
          limits.add(() => `${b.label} has no room (${roomOf(b).detail})`);
        }
      } else {
        if (main.length < MAX_CANDIDATE_VERDICTS) main.push(verdictOf(b, 'not-preferred', room, 'not needed: the demand was spread over other buckets'));
        else omitted++;
      }
    }
    const keepUnsuitable = Math.max(MIN_UNSUITABLE_VERDICTS, MAX_VERDICTS - main.length);
    const considered = unsuitable.length > keepUnsuitable ? [...main, ...unsuitable.slice(0, keepUnsuitable)] : [...main, ...unsuitable];
    omitted += unsuitable.length - (considered.length - main.length);
    const planned = decision.takes.reduce((a, t) => a + t.count, 0);
    const base = {
      index,
      requested: need,
      planned,
      placements: [] as Placement[],
      nodearray: null,
      bucketId: null,
      choice: null,
      ...(omitted > 0 ? { consideredOmitted: omitted } : {}),
    };
    if (planned === need) return { ...base, status: 'placed', reason: null, code: null, boundBy: null, considered };
    const unsuitableNote = c.unsuitable > 0 ? `; ${plural(c.unsuitable, 'other bucket')} of the allowed nodearrays do not meet the selectors or are invalid` : '';
    if (wholeOnly) {
      const code: PlanReasonCode =
        pgRoomShort > 0 ? 'PLAN_NO_PLACEMENT_GROUP_ROOM' : capacityShort > 0 ? 'PLAN_NO_CAPACITY' : backoffCount > 0 ? 'PLAN_CAPACITY_BACKOFF' : 'PLAN_NO_CAPACITY';
      const what = colocated ? `needs ${need} nodes together in one placement group` : `needs all ${need} nodes from one bucket (allOrNothing)`;
      const reason = `demand ${index} ${what} and no bucket can take them all now: ${joinCapped(notes)}; nothing is placed until one can (all or nothing)`;
      return {
        ...base,
        status: 'waiting',
        code,
        boundBy: firstBound ?? (backoffCount > 0 ? 'capacity-failure backoff' : null),
        reason,
        explanation: `${reason}${unsuitableNote}`,
        considered,
      };
    }
    const allBackoff = backoffCount === c.valid;
    const code: PlanReasonCode = allBackoff ? 'PLAN_CAPACITY_BACKOFF' : 'PLAN_NO_CAPACITY';
    const head = planned > 0 ? `demand ${index} got ${planned} of ${need} nodes` : `demand ${index} cannot place any of its ${plural(need, 'node')} now`;
    const reason = `${head}: ${joinCapped(limits, notes)}; ${plural(need - planned, 'node')} wait for capacity`;
    return {
      ...base,
      status: planned > 0 ? 'partial' : 'waiting',
      code,
      boundBy: firstBound ?? (allBackoff ? 'capacity-failure backoff' : null),
      reason,
      explanation: `${reason}${unsuitableNote}`,
      considered,
    };
  }

  /** Why the spot candidates could not take the whole demand, as a spot-first fallback says it. */
  function spotShortfall(c: Candidates, demand: Demand, need: number): string {
    const spot = [...c.ready, ...c.backingOff].filter((b) => b.bucket.spot === true);
    if (spot.length === 0) return 'no spot bucket meets the demand';
    return listNames(
      spot.map((b) => {
        if (backoffOf(b) !== null) return `${b.label} is backing off after a capacity failure`;
        const room = roomNum(b);
        if (isColocated(demand) && room >= need) return `${b.label} has no placement group with room for ${need}`;
        return `${b.label} has room for ${room} of ${need}`;
      }),
    );
  }

  /** The candidates' scope in pick order (ready first, in `ready` order; the rest in scope order), built once. */
  function pickOrder(c: Candidates): BucketState[] {
    if (c.pickOrder) return c.pickOrder;
    const inReady = new Set(c.ready);
    c.pickOrder = [...c.ready, ...c.scope.filter((b) => !inReady.has(b))];
    return c.pickOrder;
  }
}

/** Clauses for a sentence: the first {@link LIST_LIMIT} are written, the rest only counted. */
interface Capped {
  items: string[];
  more: number;
  add(text: () => string): void;
}

function capped(): Capped {
  const c: Capped = {
    items: [],
    more: 0,
    add(text) {
      if (c.items.length < LIST_LIMIT) c.items.push(text());
      else c.more++;
    },
  };
  return c;
}

/** Joins clause lists in order, at most {@link LIST_LIMIT} written, then "… and N more". */
function joinCapped(...lists: Capped[]): string {
  const items = lists.flatMap((l) => l.items);
  const total = items.length + lists.reduce((a, l) => a + l.more, 0);
  const shown = items.slice(0, LIST_LIMIT);
  return total > shown.length ? `${shown.join('; ')}; … and ${total - shown.length} more` : shown.join('; ');
}

function skipped(index: number, demand: Demand): DemandPlan {
  return {
    index,
    requested: 0,
    planned: 0,
    placements: [],
    status: 'skipped',
    reason: `demand ${index} has nothing left to place (of ${demand.count})`,
    code: null,
    boundBy: null,
    considered: [],
    nodearray: null,
    bucketId: null,
    choice: null,
  };
}

function rejected(index: number, need: number, code: PlanReasonCode, boundBy: string, reason: string, considered: BucketVerdict[]): DemandPlan {
  return { index, requested: need, planned: 0, placements: [], status: 'rejected', reason, code, boundBy, considered, nodearray: null, bucketId: null, choice: null };
}
