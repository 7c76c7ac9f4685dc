/**
 * The planner: a scale request + a cluster snapshot + what is already in flight → the sets of ONE
 * CycleCloud `nodes/create` call, with a reason for every demand that is not fully placed.
 *
 * Pure: no I/O, no clock, no randomness; the same input always yields a deep-equal plan (the
 * submission path relies on this to re-derive the same create after a crash).
 *
 * Capacity model (reference/cyclecloud-rest-api.md §5.7): a bucket's `availableCount` already folds
 * in the bucket, quota, nodearray and cluster limits as of the snapshot. Nodes requested since then
 * (in-flight) and nodes placed by earlier demands of this plan are not in it, so the planner keeps
 * its own running usage of the limits that are SHARED: the bucket, the nodearray (count and cores,
 * across its buckets) and the cluster (count and cores, across nodearrays). Family and regional
 * quota are shared too but the snapshot does not say which buckets share a family, so those are left
 * to `availableCount` and to CycleCloud's partial `added` (which the tracker handles).
 */
import type {
  BucketVerdict,
  CapacityBackoff,
  DemandPlan,
  Placement,
  Plan,
  PlanInput,
  PlanReasonCode,
  PlannedSet,
} from './types.ts';
import type { BucketSnapshot, NodearraySnapshot } from '../snapshots/model.ts';
import type { Demand } from '../requests/schemas.ts';
import type { NodeCreationRequestSet } from '../cyclecloud/schemas.ts';

/** Default for {@link PlanInput.options} `capacityFailureWindowSec`. */
export const DEFAULT_CAPACITY_FAILURE_WINDOW_SEC = 300;
/** Default for {@link PlanInput.options} `maxSnapshotAgeSec`. */
export const DEFAULT_MAX_SNAPSHOT_AGE_SEC = 120;
/** Longest placement-group id the planner generates. */
export const MAX_PLACEMENT_GROUP_ID_LENGTH = 64;
/** How many names a "what exists" list shows before it says "… and N more". */
const LIST_LIMIT = 12;

interface BucketState {
  na: NodearrayState;
  bucket: BucketSnapshot;
  key: string;
  label: string;
  /** Nodes requested after the snapshot, whole bucket. */
  inFlight: number;
  /** Nodes placed in this plan so far. */
  planned: number;
  /** In-flight nodes per placement group, including groups the snapshot does not list yet. */
  inFlightByGroup: Map<string, number>;
  plannedByGroup: Map<string, number>;
  activeByGroup: Map<string, number>;
}

interface NodearrayState {
  snapshot: NodearraySnapshot;
  buckets: BucketState[];
  /** Lower-cased machine type → buckets, in CycleCloud order. */
  byMachineType: Map<string, BucketState[]>;
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

const lower = (s: string): string => s.toLowerCase();

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

/**
 * Plans one scale request. Never throws for a demand that cannot be placed: every demand comes back
 * with a status (`placed`, `partial`, `waiting`, `rejected`, `skipped`), a stable `code`, the limit
 * that bound it and a sentence saying why.
 */
export function plan(input: PlanInput): Plan {
  const { request, snapshot, nowMs } = input;
  const windowSec = input.options?.capacityFailureWindowSec ?? DEFAULT_CAPACITY_FAILURE_WINDOW_SEC;
  const maxAgeSec = input.options?.maxSnapshotAgeSec ?? DEFAULT_MAX_SNAPSHOT_AGE_SEC;
  const generation = input.generation ?? 0;
  const excluded = new Set(input.excludedPlacementGroups ?? []);
  const takenAtMs = Date.parse(snapshot.takenAt);
  const snapshotAgeSec = Number.isFinite(takenAtMs) ? Math.max(0, (nowMs - takenAtMs) / 1000) : Number.POSITIVE_INFINITY;

  const remainingFor = (index: number, demand: Demand): number =>
    input.remaining === undefined ? demand.count : Math.max(0, Math.floor(input.remaining[index] ?? 0));

  // Safety net: a stale snapshot plans nothing (callers refresh before planning).
  if (snapshotAgeSec > maxAgeSec) {
    const age = Number.isFinite(snapshotAgeSec) ? `${Math.round(snapshotAgeSec)} s old` : `unreadable (takenAt ${JSON.stringify(snapshot.takenAt)})`;
    return {
      sets: [],
      demands: request.demands.map((demand, index) => {
        const need = remainingFor(index, demand);
        if (need === 0) return skipped(index, demand);
        return {
          index, requested: need, planned: 0, placements: [], status: 'waiting', code: 'PLAN_STALE_SNAPSHOT',
          boundBy: `snapshot age (max ${maxAgeSec} s)`,
          reason: `the cluster snapshot of ${snapshot.cluster} is ${age}, older than the ${maxAgeSec} s the planner trusts; waiting for a fresh snapshot`,
          considered: [],
        };
      }),
    };
  }

  // Index once: nodearrays by name, buckets by machine type, running usage of shared limits.
  const cluster: ClusterState = { maxCount: snapshot.maxCount, maxCoreCount: snapshot.maxCoreCount, usedCount: 0, usedCores: 0 };
  const nodearrays = new Map<string, NodearrayState>();
  for (const na of snapshot.nodearrays) {
    const state: NodearrayState = { snapshot: na, buckets: [], byMachineType: new Map(), usedCount: 0, usedCores: 0 };
    for (const bucket of na.buckets) {
      const b: BucketState = {
        na: state, bucket, key: `${na.name}\u0000${bucket.bucketId}`, label: `${na.name}/${bucket.machineType}`,
        inFlight: 0, planned: 0, inFlightByGroup: new Map(), plannedByGroup: new Map(),
        activeByGroup: new Map(bucket.placementGroups.map((g) => [g.name, g.activeCount])),
      };
      state.buckets.push(b);
      const mt = lower(bucket.machineType);
      const list = state.byMachineType.get(mt);
      if (list) list.push(b);
      else state.byMachineType.set(mt, [b]);
      state.usedCount += bucket.activeCount;
      state.usedCores += bucket.activeCount * bucket.vcpuCount;
    }
    cluster.usedCount += state.usedCount;
    cluster.usedCores += state.usedCores;
    nodearrays.set(na.name, state);
  }

  for (const f of input.inFlight) {
    if (f.count <= 0) continue;
    const na = nodearrays.get(f.nodearray);
    const candidates = na?.byMachineType.get(lower(f.machineType));
    // In-flight nodes belong to the valid bucket of their machine type (new nodes only go there).
    const b = candidates?.find((c) => c.bucket.valid) ?? candidates?.[0];
    const vcpu = b?.bucket.vcpuCount ?? 0;
    if (b) {
      b.inFlight += f.count;
      if (f.placementGroupId !== null) b.inFlightByGroup.set(f.placementGroupId, (b.inFlightByGroup.get(f.placementGroupId) ?? 0) + f.count);
    }
    if (na) {
      na.usedCount += f.count;
      na.usedCores += f.count * vcpu;
    }
    cluster.usedCount += f.count;
    cluster.usedCores += f.count * vcpu;
  }

  const backoffs = new Map<string, CapacityBackoff>();
  for (const b of input.backoffs) {
    if (b.untilMs <= nowMs) continue;
    const key = `${b.nodearray}\u0000${lower(b.machineType)}`;
    const prev = backoffs.get(key);
    if (!prev || prev.untilMs < b.untilMs) backoffs.set(key, b);
  }

  const sets: PlannedSet[] = [];
  /** "What exists" for unknown-nodearray reasons, built once (a request may repeat the same typo 1,000 times). */
  let nodearrayList: string | undefined;
  const setIndexByKey = new Map<string, number>();
  const demands: DemandPlan[] = [];

  /** How many more nodes a bucket can take now, and which limit says so. */
  function roomOf(b: BucketState): Room {
    const { bucket, na } = b;
    const vcpu = Math.max(1, bucket.vcpuCount);
    const taken = b.inFlight + b.planned;
    const less = [
      ...(b.inFlight > 0 ? [`${b.inFlight} in-flight`] : []),
      ...(b.planned > 0 ? [`${b.planned} planned for earlier demands`] : []),
    ].join(', ');
    let best: Room = {
      room: bucket.availableCount - taken,
      bound: `bucket availableCount ${bucket.availableCount} (${b.label})${less ? ` less ${less}` : ''}`,
      detail: `availableCount ${bucket.availableCount}${less ? ` less ${less}` : ''}`,
    };
    const consider = (room: number, bound: string, detail: string): void => {
      if (room < best.room) best = { room, bound, detail };
    };
    const naName = na.snapshot.name;
    consider(na.snapshot.maxCount - na.usedCount, `nodearray maxCount ${na.snapshot.maxCount} (${naName})`,
      `nodearray ${naName} allows ${na.snapshot.maxCount} nodes; ${na.usedCount} are active, in flight or planned`);
    consider(Math.floor((na.snapshot.maxCoreCount - na.usedCores) / vcpu), `nodearray maxCoreCount ${na.snapshot.maxCoreCount} (${naName})`,
      `nodearray ${naName} allows ${na.snapshot.maxCoreCount} cores; ${na.usedCores} are active, in flight or planned and ${bucket.machineType} needs ${bucket.vcpuCount} per node`);
    consider(cluster.maxCount - cluster.usedCount, `cluster maxCount ${cluster.maxCount}`,
      `cluster ${snapshot.cluster} allows ${cluster.maxCount} nodes; ${cluster.usedCount} are active, in flight or planned`);
    consider(Math.floor((cluster.maxCoreCount - cluster.usedCores) / vcpu), `cluster maxCoreCount ${cluster.maxCoreCount}`,
      `cluster ${snapshot.cluster} allows ${cluster.maxCoreCount} cores; ${cluster.usedCores} are active, in flight or planned and ${bucket.machineType} needs ${bucket.vcpuCount} per node`);
    if (best.room < 0) best = { ...best, room: 0 };
    return best;
  }

  /** Why a bucket is backing off, or null. */
  function backoffOf(b: BucketState): string | null {
    const last = b.bucket.lastCapacityFailureSec;
    if (last !== null && last >= 0) {
      const sinceSec = last + snapshotAgeSec;
      if (sinceSec < windowSec) {
        return `CycleCloud reported a capacity failure on ${b.label} ${Math.round(sinceSec)} s ago (backing off for ${windowSec} s)`;
      }
    }
    const memo = backoffs.get(`${b.na.snapshot.name}\u0000${lower(b.bucket.machineType)}`);
    if (memo) return `${b.label} is backing off for ${Math.ceil((memo.untilMs - nowMs) / 1000)} s more after a capacity failure: ${memo.reason}`;
    return null;
  }

  function place(b: BucketState, demand: Demand, index: number, count: number, group: string | null): Placement {
    const vcpu = b.bucket.vcpuCount;
    b.planned += count;
    b.na.usedCount += count;
    b.na.usedCores += count * vcpu;
    cluster.usedCount += count;
    cluster.usedCores += count * vcpu;
    if (group !== null) b.plannedByGroup.set(group, (b.plannedByGroup.get(group) ?? 0) + count);
    const attrs = demand.nodeAttributes;
    const setKey = `${b.key}\u0000${group ?? ''}\u0000${attrs === undefined ? '' : stableJson(attrs)}`;
    let setIndex = setIndexByKey.get(setKey);
    if (setIndex === undefined) {
      setIndex = sets.length;
      setIndexByKey.set(setKey, setIndex);
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
    return { setIndex, count, bucketId: b.bucket.bucketId, machineType: b.bucket.machineType, placementGroupId: group };
  }

  for (let index = 0; index < request.demands.length; index++) {
    const demand = request.demands[index]!;
    const need = remainingFor(index, demand);
    if (need === 0) {
      demands.push(skipped(index, demand));
      continue;
    }
    const na = nodearrays.get(demand.nodearray);
    if (!na) {
      demands.push(rejected(index, need, 'PLAN_UNKNOWN_NODEARRAY', `nodearray ${demand.nodearray}`,
        `demand ${index} asks for nodearray "${demand.nodearray}", which cluster ${snapshot.cluster} does not have; it has: ${(nodearrayList ??= listNames(snapshot.nodearrays.map((n) => n.name)))}`, []));
      continue;
    }

    // Candidate buckets in preference order, and the ones left out.
    const considered: BucketVerdict[] = [];
    let candidates: BucketState[];
    if (demand.machineTypes) {
      const unknown = demand.machineTypes.filter((mt) => !na.byMachineType.has(lower(mt)));
      if (unknown.length > 0) {
        demands.push(rejected(index, need, 'PLAN_UNKNOWN_MACHINE_TYPE', `machineTypes of nodearray ${na.snapshot.name}`,
          `demand ${index} asks for machine type${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}, which nodearray ${na.snapshot.name} has no bucket for; its buckets are: ${listNames(na.buckets.map((b) => b.bucket.machineType))}`, []));
        continue;
      }
      const seen = new Set<BucketState>();
      candidates = [];
      for (const mt of demand.machineTypes) {
        for (const b of na.byMachineType.get(lower(mt)) ?? []) {
          if (!seen.has(b)) {
            seen.add(b);
            candidates.push(b);
          }
        }
      }
      for (const b of na.buckets) {
        if (!seen.has(b)) considered.push({ bucketId: b.bucket.bucketId, machineType: b.bucket.machineType, available: 0, verdict: 'not-preferred', note: 'not in machineTypes' });
      }
    } else {
      candidates = na.buckets;
    }
    const colocated = demand.colocated === true || demand.placementGroupId !== undefined;
    if (colocated && !demand.machineTypes) {
      // InfiniBand first for tightly coupled work; stable otherwise (CycleCloud's order).
      candidates = [...candidates.filter((b) => b.bucket.infiniband), ...candidates.filter((b) => !b.bucket.infiniband)];
    }

    const valid: BucketState[] = [];
    for (const b of candidates) {
      if (b.bucket.valid) valid.push(b);
      else considered.push({ bucketId: b.bucket.bucketId, machineType: b.bucket.machineType, available: 0, verdict: 'invalid', note: `invalid: ${b.bucket.invalidReason ?? 'no reason given'}` });
    }
    if (valid.length === 0) {
      const reasons = candidates.map((b) => `${b.label}: ${b.bucket.invalidReason ?? 'invalid'}`).join('; ');
      demands.push(rejected(index, need, 'PLAN_NO_VALID_BUCKET', `no valid bucket (${na.snapshot.name})`,
        `demand ${index} has no valid bucket to create nodes in: ${reasons || `nodearray ${na.snapshot.name} has no buckets`}`, considered));
      continue;
    }

    if (colocated) demands.push(planColocated(index, demand, need, valid, considered));
    else demands.push(planLoose(index, demand, need, valid, considered));
  }

  return { sets, demands };

  function planLoose(index: number, demand: Demand, need: number, valid: BucketState[], considered: BucketVerdict[]): DemandPlan {
    const placements: Placement[] = [];
    const limits: string[] = [];
    let firstBound: string | null = null;
    let left = need;
    let backoffCount = 0;
    const backoffNotes: string[] = [];
    for (const b of valid) {
      const verdictBase = { bucketId: b.bucket.bucketId, machineType: b.bucket.machineType };
      const why = backoffOf(b);
      if (why) {
        backoffCount++;
        backoffNotes.push(why);
        considered.push({ ...verdictBase, available: 0, verdict: 'backoff', note: why });
        continue;
      }
      const room = roomOf(b);
      if (left === 0) {
        considered.push({ ...verdictBase, available: room.room, verdict: 'not-preferred', note: 'not needed: earlier buckets took the demand' });
        continue;
      }
      const before = left;
      const take = Math.min(left, room.room);
      if (take > 0) {
        placements.push(place(b, demand, index, take, null));
        left -= take;
        considered.push({ ...verdictBase, available: room.room, verdict: 'chosen', note: take < room.room ? `took ${take} of ${room.room}` : `took ${take}, all it had: ${room.detail}` });
      } else {
        considered.push({ ...verdictBase, available: 0, verdict: 'full', note: room.detail });
      }
      if (take < before) {
        firstBound ??= room.bound;
        limits.push(take > 0 ? `${b.label} took ${take} (${room.detail})` : `${b.label} has no room (${room.detail})`);
      }
    }
    const planned = need - left;
    if (left === 0) return { index, requested: need, planned, placements, status: 'placed', reason: null, code: null, boundBy: null, considered };
    const allBackoff = backoffCount === valid.length;
    const code: PlanReasonCode = allBackoff ? 'PLAN_CAPACITY_BACKOFF' : 'PLAN_NO_CAPACITY';
    const parts = [...limits, ...backoffNotes];
    const head = planned > 0 ? `demand ${index} got ${planned} of ${need} nodes` : `demand ${index} cannot place any of its ${plural(need, 'node')} now`;
    return {
      index, requested: need, planned, placements, status: planned > 0 ? 'partial' : 'waiting', code,
      boundBy: firstBound ?? (allBackoff ? 'capacity-failure backoff' : null),
      reason: `${head}: ${parts.join('; ')}; ${plural(left, 'node')} wait for capacity`,
      considered,
    };
  }

  function planColocated(index: number, demand: Demand, need: number, candidates: BucketState[], considered: BucketVerdict[]): DemandPlan {
    // A given group that already exists (or is being filled) lives in one bucket: a scale set has one
    // VM size, so the gang must go there rather than start a same-named group of another size.
    let valid = candidates;
    const given = demand.placementGroupId;
    if (given !== undefined) {
      const homes = candidates.filter((b) => b.activeByGroup.has(given) || b.inFlightByGroup.has(given) || b.plannedByGroup.has(given));
      if (homes.length > 0 && homes.length < candidates.length) {
        for (const b of candidates) {
          if (!homes.includes(b)) considered.push({ bucketId: b.bucket.bucketId, machineType: b.bucket.machineType, available: 0, verdict: 'not-preferred', note: `placement group ${given} already lives in ${homes[0]!.label}` });
        }
        valid = homes;
      }
    }
    // A gang that no placement group can ever hold is rejected, not left waiting forever.
    const fits = valid.filter((b) => b.bucket.maxPlacementGroupSize >= need);
    if (fits.length === 0) {
      const sizes = valid.map((b) => `${b.label} allows at most ${b.bucket.maxPlacementGroupSize}`);
      const largest = valid.reduce((a, b) => (b.bucket.maxPlacementGroupSize > a.bucket.maxPlacementGroupSize ? b : a));
      for (const b of valid) considered.push({ bucketId: b.bucket.bucketId, machineType: b.bucket.machineType, available: 0, verdict: 'no-pg-room', note: `maxPlacementGroupSize ${b.bucket.maxPlacementGroupSize} < ${need}` });
      return rejected(index, need, 'PLAN_EXCEEDS_PLACEMENT_GROUP', `maxPlacementGroupSize=${largest.bucket.maxPlacementGroupSize} (${largest.label})`,
        `demand ${index} needs ${need} nodes in one placement group but ${sizes.join(', ')} (maxPlacementGroupSize)`, considered);
    }

    const notes: string[] = [];
    let firstBound: string | null = null;
    let backoffCount = 0;
    let pgRoomShort = 0;
    let capacityShort = 0;
    for (const b of valid) {
      const verdictBase = { bucketId: b.bucket.bucketId, machineType: b.bucket.machineType };
      const size = b.bucket.maxPlacementGroupSize;
      if (size < need) {
        considered.push({ ...verdictBase, available: 0, verdict: 'no-pg-room', note: `maxPlacementGroupSize ${size} < ${need}` });
        notes.push(`${b.label} allows at most ${size} nodes per placement group`);
        continue;
      }
      const why = backoffOf(b);
      if (why) {
        backoffCount++;
        considered.push({ ...verdictBase, available: 0, verdict: 'backoff', note: why });
        notes.push(why);
        continue;
      }
      const room = roomOf(b);
      if (room.room < need) {
        capacityShort++;
        firstBound ??= room.bound;
        considered.push({ ...verdictBase, available: room.room, verdict: 'full', note: room.detail });
        notes.push(`${b.label} has room for ${room.room} (${room.detail})`);
        continue;
      }
      const group = chooseGroup(b, demand, index, need);
      if (group.id === null) {
        pgRoomShort++;
        firstBound ??= `maxPlacementGroupSize=${size} (${b.label})`;
        considered.push({ ...verdictBase, available: room.room, verdict: 'no-pg-room', note: group.note });
        notes.push(group.note);
        continue;
      }
      const placement = place(b, demand, index, need, group.id);
      considered.push({ ...verdictBase, available: room.room, verdict: 'chosen', note: group.note });
      for (const rest of valid.slice(valid.indexOf(b) + 1)) {
        considered.push({ bucketId: rest.bucket.bucketId, machineType: rest.bucket.machineType, available: 0, verdict: 'not-preferred', note: 'not needed: an earlier bucket took the whole demand' });
      }
      return { index, requested: need, planned: need, placements: [placement], status: 'placed', reason: null, code: null, boundBy: null, considered };
    }
    const code: PlanReasonCode =
      pgRoomShort > 0 ? 'PLAN_NO_PLACEMENT_GROUP_ROOM' : capacityShort > 0 ? 'PLAN_NO_CAPACITY' : backoffCount > 0 ? 'PLAN_CAPACITY_BACKOFF' : 'PLAN_NO_CAPACITY';
    return {
      index, requested: need, planned: 0, placements: [], status: 'waiting', code,
      boundBy: firstBound ?? (backoffCount > 0 ? 'capacity-failure backoff' : null),
      reason: `demand ${index} needs ${need} nodes together in one placement group and no bucket can take them all now: ${notes.join('; ')}; nothing is placed until one can (all or nothing)`,
      considered,
    };
  }

  /** The placement group for a gang in bucket `b`: the caller's, the fullest existing one that fits, or a new one. */
  function chooseGroup(b: BucketState, demand: Demand, index: number, need: number): { id: string | null; note: string } {
    const size = b.bucket.maxPlacementGroupSize;
    const groupRoom = (id: string): number =>
      size - (b.activeByGroup.get(id) ?? 0) - (b.inFlightByGroup.get(id) ?? 0) - (b.plannedByGroup.get(id) ?? 0);
    if (demand.placementGroupId !== undefined) {
      // The caller's group is used as given (CycleCloud creates it if new), even if listed as excluded:
      // the caller chose it, and excluding it would silently move the gang.
      const id = demand.placementGroupId;
      const room = groupRoom(id);
      return room >= need
        ? { id, note: b.activeByGroup.has(id) || b.inFlightByGroup.has(id) ? `placement group ${id} (given) has room for ${room}` : `placement group ${id} (given) is new` }
        : { id: null, note: `placement group ${id} on ${b.label} has room for ${Math.max(0, room)} of ${need} (maxPlacementGroupSize ${size}; ${b.activeByGroup.get(id) ?? 0} active, ${b.inFlightByGroup.get(id) ?? 0} in flight, ${b.plannedByGroup.get(id) ?? 0} planned)` };
    }
    // Packing: the fullest existing group that still fits the whole gang.
    let best: string | null = null;
    let bestRoom = Number.POSITIVE_INFINITY;
    const consider = (id: string): void => {
      if (excluded.has(id)) return;
      const room = groupRoom(id);
      if (room >= need && room < bestRoom) {
        best = id;
        bestRoom = room;
      }
    };
    for (const g of b.bucket.placementGroups) consider(g.name);
    for (const id of b.inFlightByGroup.keys()) if (!b.activeByGroup.has(id)) consider(id);
    if (best !== null) return { id: best, note: `existing placement group ${best} has room for ${bestRoom} (fullest that fits)` };
    for (let retry = 0; ; retry++) {
      const id = placementGroupIdFor(request.requestId, index, generation, retry);
      if (!excluded.has(id) && groupRoom(id) >= need) return { id, note: `new placement group ${id}` };
    }
  }
}

function skipped(index: number, demand: Demand): DemandPlan {
  return { index, requested: 0, planned: 0, placements: [], status: 'skipped', reason: `demand ${index} has nothing left to place (of ${demand.count})`, code: null, boundBy: null, considered: [] };
}

function rejected(index: number, need: number, code: PlanReasonCode, boundBy: string, reason: string, considered: BucketVerdict[]): DemandPlan {
  return { index, requested: need, planned: 0, placements: [], status: 'rejected', reason, code, boundBy, considered };
}
