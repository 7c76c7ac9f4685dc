/**
 * The tracker's state machine: pure data in, data out. No I/O, no clock, no randomness (the caller
 * passes `nowMs` and, at start, a jitter fraction), so every rule is tested with a fake clock.
 *
 * One state per CycleCloud operation (a create, a terminate request, or a compensation terminate).
 * Each poll feeds the operation's node list (or `null` when the poll failed) into {@link step},
 * which returns the next state and a list of actions for the tracker to perform.
 *
 * Polling cadence: the first poll comes after `pollMinMs` stretched by up to 20 % jitter (so
 * operations started in one burst do not poll in lockstep; the phase offset persists because later
 * intervals are deterministic), then the interval grows by `backoffFactor` up to `pollMaxMs`
 * (defaults 5 s × 3 → 15 s → 45 s → 60 s). A factor of 3 rather than 2 keeps a 10-minute boot at
 * 12 CycleCloud calls instead of 13. A throttled poll (429) waits exactly what `Retry-After` says
 * and does not advance the backoff. There is deliberately no reset on progress: boot phases
 * (Acquiring, Preparing) each last minutes, so a reset would mostly double the calls while the
 * delay to notice Ready stays bounded by the cap either way. A poll is never scheduled past the
 * boot deadline, so timeouts are acted on promptly.
 */
import type { NodeOutcome } from '../ledger/types.ts';
import type { TrackStart } from './types.ts';

/** Tuning of the machine. Defaults: {@link DEFAULT_MACHINE_CONFIG}. */
export interface MachineConfig {
  /** First poll delay. Default 5 000 (`TRACKER_POLL_MIN_SECONDS`). */
  pollMinMs: number;
  /** Cap of the poll interval. Default 60 000 (`TRACKER_POLL_MAX_SECONDS`). */
  pollMaxMs: number;
  /** Growth of the interval per poll. Default 3. */
  backoffFactor: number;
  /** Boot deadline per operation, from its start. Default 30 min (`BOOT_TIMEOUT_MINUTES`). */
  bootTimeoutMs: number;
  /** Terminate nodes not Ready by the deadline. Default true (`TERMINATE_ON_BOOT_TIMEOUT`). */
  terminateOnBootTimeout: boolean;
  /** Re-plans allowed per request after a broken gang (generation bound). Default 3 (`MAX_REPLAN_ATTEMPTS`). */
  maxReplanAttempts: number;
}

export const DEFAULT_MACHINE_CONFIG: Readonly<MachineConfig> = Object.freeze({
  pollMinMs: 5_000,
  pollMaxMs: 60_000,
  backoffFactor: 3,
  bootTimeoutMs: 30 * 60_000,
  terminateOnBootTimeout: true,
  maxReplanAttempts: 3,
});

/** How a spot node given up at its set's fallback deadline is described (its StatusMessage in the tracker). */
export const SPOT_FALLBACK_NOTE = 'spot node not Ready';

/** The pseudo-status reported for a node that missed the boot deadline (CycleCloud has none). */
export const TIMED_OUT_STATUS = 'TimedOut';
/** The status reported for a node that is no longer in CycleCloud's list. */
export const REMOVED_STATUS = 'Terminated';

/** One node as CycleCloud lists it for the operation (already mapped from the wire record). */
export interface ObservedNode {
  name: string;
  id: string | null;
  /** CycleCloud `Status`; empty when absent. */
  status: string;
  statusMessage?: string | null;
  /** CycleCloud `Template` (the nodearray). */
  nodearray?: string | null;
  machineType?: string | null;
  /** CycleCloud `Region` (undocumented on node records, read where present: it prices the node). */
  region?: string | null;
  placementGroupId?: string | null;
  privateIp?: string | null;
}

export interface TrackedNode {
  name: string;
  id: string | null;
  /** Last status to report (CycleCloud `Status`, or {@link TIMED_OUT_STATUS}). */
  status: string;
  outcome: NodeOutcome;
  statusMessage: string | null;
  /** Index into `sets` (creates only). */
  setIndex: number | null;
  demandIndex: number | null;
  placementGroupId: string | null;
  /** Seen in at least one CycleCloud listing. */
  seen: boolean;
  /** This tracker asked CycleCloud to terminate it (timeout or broken gang): its outcome is settled here. */
  terminating: boolean;
  changedAtMs: number;
  /** As listed (kept once seen): what the price table prices the node by. */
  machineType?: string;
  region?: string;
}

/** What the operation is (as handed over at start) plus what the tracker learned about it. */
export interface TrackerState extends Pick<TrackStart, 'cluster' | 'operationId' | 'cycleCloudRequestId' | 'requestId' | 'action' | 'generation' | 'sets' | 'traceparent'> {
  nodes: TrackedNode[];
  startedAtMs: number;
  deadlineAtMs: number;
  /** Delay to use for the next regular poll (the backoff level). */
  intervalMs: number;
  nextPollAtMs: number;
  /** Completed polls (successful or not): CycleCloud calls spent on listing. */
  polls: number;
  /** Every CycleCloud call made for this operation (polls, terminates, look-ups). */
  cycleCloudCalls: number;
  /** Demands whose gang this tracker has compensated (terminate + re-plan or close). */
  compensatedDemands: number[];
  timedOut: boolean;
  /** Spot sets whose fallback deadline (`spotFallbackMs`) has been acted on. */
  spotGivenUp?: number[];
  final: boolean;
  finalAtMs: number | null;
}

export type TrackerAction =
  | {
      type: 'terminate';
      names: string[];
      /** Why: a missed boot deadline (loose nodes) or a broken gang. */
      cause: 'timeout' | 'gang';
      /** Stable per operation and cause: part of the deterministic CycleCloud requestId. */
      key: string;
      demandIndex?: number;
      placementGroupId?: string | null;
    }
  | { type: 'replan'; demandIndex: number; placementGroupId: string | null; nodeNames: string[]; nodeKeys?: string[]; reason: string }
  | { type: 'close'; demandIndex: number; placementGroupId: string | null; nodeNames: string[]; nodeKeys?: string[]; reason: string }
  /** Late members of a group the submission already wrote off: add them to its compensation. */
  | { type: 'written-off'; demandIndex: number; placementGroupId: string; nodeNames: string[]; nodeKeys: string[] }
  | { type: 'schedule'; atMs: number }
  | { type: 'final' };

export interface StepInput {
  nowMs: number;
  /** The operation's nodes now, or null when the poll failed (the deadline still applies). */
  nodes: ObservedNode[] | null;
  /** From a 429: wait exactly this long before the next poll. */
  retryAfterMs?: number;
  /**
   * Nodes already compensated elsewhere (the submission's partial-set compensation), by node key
   * (`id:<NodeId>`, or the name for a node recorded without id; see `nodeKey` in `record.ts`).
   */
  compensated?: ReadonlySet<string>;
  /**
   * Gangs the submission compensated, as {@link gangKey} (or a bare group name: every gang in it):
   * another operation terminates their nodes, so this one does not wait to see them (CycleCloud may
   * have removed them before the first poll; waiting would poll until the boot deadline for nodes
   * that never show). Keyed per demand because colocated demands may share a group.
   */
  compensatedGroups?: ReadonlySet<string>;
  /**
   * The nodes this create's own compensation terminated, with the gang each was taken from. They
   * keep their slot in their set when attributing (a node terminated before the first poll is never
   * listed): otherwise the next node in name order would take the gone node's slot and another
   * demand of the same placement group would lose it.
   */
  compensatedNodes?: readonly { key: string; placementGroupId: string; demandIndex: number }[];
}

export interface StepResult {
  state: TrackerState;
  actions: TrackerAction[];
  /** True when a node's status or outcome changed (the ledger needs an update). */
  changed: boolean;
}

const PENDING = new Set(['acquiring', 'preparing', 'allocation', 'allocating', 'validation', 'initialization', 'configuration', 'installation', 'starting', 'creating', 'booting']);
const FAILED = new Set(['failed', 'unavailable', 'error']);
const GONE = new Set(['terminated', 'off', 'deallocated', 'removed']);

/**
 * CycleCloud `Status` → outcome for a node of a create. Ready, and Started with an IP, are ready;
 * Failed and Unavailable failed; Terminated/Off/Deallocated gone; everything else (Acquiring,
 * Preparing, Allocation, Terminating, unknown values) pending — the deadline bounds it.
 */
export function createOutcome(status: string, privateIp?: string | null): NodeOutcome {
  const s = status.trim().toLowerCase();
  if (s === 'ready') return 'ready';
  if (s === 'started') return privateIp ? 'ready' : 'pending';
  if (FAILED.has(s)) return 'failed';
  if (GONE.has(s)) return 'gone';
  return 'pending';
}

/**
 * CycleCloud `Status` → outcome for a deallocated node being started: Ready as for a create; still
 * Deallocated (not yet picked up) or Deallocating is pending; Terminated/Off/removed failed.
 */
export function startOutcome(status: string, privateIp?: string | null): NodeOutcome {
  const s = status.trim().toLowerCase();
  if (s === 'deallocated' || s === 'deallocating') return 'pending';
  if (GONE.has(s)) return 'failed';
  return createOutcome(status, privateIp);
}

/** CycleCloud `Status` → outcome for a node being terminated: done when gone; Failed = termination failed. */
export function terminateOutcome(status: string): NodeOutcome {
  const s = status.trim().toLowerCase();
  if (GONE.has(s)) return 'gone';
  if (FAILED.has(s)) return 'failed';
  return 'pending';
}

const CAPACITY_MESSAGE = /capacity|allocationfailed|skunotavailable|overconstrained|zonalallocationfailed|quota/i;

/** Whether a failed node's StatusMessage says "no capacity here now" (Azure allocation errors). */
export function isCapacityFailureMessage(message: string | null | undefined): boolean {
  return CAPACITY_MESSAGE.test(message ?? '');
}

/** Whether a status is one the machine knows (for logging unknown values). */
export function isKnownStatus(status: string): boolean {
  const s = status.trim().toLowerCase();
  return s === 'ready' || s === 'started' || PENDING.has(s) || FAILED.has(s) || GONE.has(s) || s === 'terminating' || s === 'deallocating' || s === 'stopping';
}

const isFinalOutcome = (o: NodeOutcome): boolean => o !== 'pending';
const isBad = (o: NodeOutcome): boolean => o === 'failed' || o === 'timed_out';

/**
 * The state for a newly started operation. `jitter` ∈ [0, 1) stretches the first delay by up to 20 %.
 */
export function initialState(start: TrackStart, nowMs: number, config: MachineConfig = DEFAULT_MACHINE_CONFIG, jitter = 0): TrackerState {
  const first = Math.round(config.pollMinMs * (1 + 0.2 * Math.min(Math.max(jitter, 0), 1)));
  const nodes: TrackedNode[] =
    start.action !== 'create'
      ? [...new Set(start.nodeNames ?? [])].map((name) => ({
          name,
          id: start.nodeIds?.[name] ?? null,
          status: '',
          outcome: 'pending' as NodeOutcome,
          statusMessage: null,
          setIndex: null,
          demandIndex: null,
          placementGroupId: null,
          seen: false,
          terminating: false,
          changedAtMs: nowMs,
        }))
      : [];
  return {
    cluster: start.cluster,
    operationId: start.operationId,
    cycleCloudRequestId: start.cycleCloudRequestId,
    requestId: start.requestId,
    action: start.action,
    generation: start.generation,
    ...(start.traceparent ? { traceparent: start.traceparent } : {}),
    sets: structuredClone(start.sets),
    nodes,
    startedAtMs: nowMs,
    deadlineAtMs: nowMs + config.bootTimeoutMs,
    intervalMs: Math.min(config.pollMaxMs, Math.max(config.pollMinMs, Math.round(config.pollMinMs * config.backoffFactor))),
    nextPollAtMs: Math.min(nowMs + first, nowMs + config.bootTimeoutMs),
    polls: 0,
    cycleCloudCalls: 0,
    compensatedDemands: [],
    timedOut: false,
    final: false,
    finalAtMs: null,
  };
}

/** One demand's gang in one placement group (a group may hold several demands' gangs). */
export function gangKey(placementGroupId: string, demandIndex: number): string {
  return `${placementGroupId}\u0000${demandIndex}`;
}

/** Natural order of node names (`ondemand-2` before `ondemand-10`): CycleCloud numbers nodes per set in order. */
export function compareNodeNames(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

const eqi = (a: string | null | undefined, b: string | null | undefined): boolean => (a ?? '').toLowerCase() === (b ?? '').toLowerCase();

/**
 * Attributes newly seen nodes of a create to a set (by nodearray, machine type and placement group)
 * and, in name order, to the set's demands, filling each demand's share of `added` in turn. Earlier
 * attributions are never changed, so the mapping is stable across polls.
 */
function attribute(
  state: TrackerState,
  fresh: { node: TrackedNode; observed: ObservedNode }[],
  compensatedNodes: readonly { key: string; placementGroupId: string; demandIndex: number }[] = [],
): void {
  if (state.sets.length === 0) return;
  const used = state.sets.map(() => 0);
  const perDemand = state.sets.map(() => new Map<number, number>());
  const count = (i: number, demandIndex: number | null): void => {
    used[i] = (used[i] ?? 0) + 1;
    if (demandIndex !== null) perDemand[i]!.set(demandIndex, (perDemand[i]!.get(demandIndex) ?? 0) + 1);
  };
  // A compensated node goes to the gang it was taken from: listed now (fresh) it is attributed there,
  // never listed (terminated before this create's first poll) it still holds its slot.
  const gangSet = (c: { placementGroupId: string; demandIndex: number }): number =>
    state.sets.findIndex((x) => x.placementGroupId === c.placementGroupId && x.demands.some((d) => d.index === c.demandIndex));
  const keyOf = (n: TrackedNode): string[] => (n.id ? [`id:${n.id}`, n.name] : [n.name]);
  for (const c of compensatedNodes) {
    const i = gangSet(c);
    if (i < 0) continue;
    const node = state.nodes.find((n) => keyOf(n).includes(c.key));
    if (!node) count(i, c.demandIndex);
    else if (node.setIndex === null) {
      node.setIndex = i;
      node.demandIndex = c.demandIndex;
      node.placementGroupId = c.placementGroupId;
    }
  }
  for (const n of state.nodes) {
    if (n.setIndex === null) continue;
    count(n.setIndex, n.demandIndex);
  }
  fresh.sort((a, b) => compareNodeNames(a.node.name, b.node.name));
  for (const { node, observed } of fresh) {
    if (node.setIndex !== null) continue;
    const matches = (i: number): boolean => {
      const set = state.sets[i]!;
      return (
        (!observed.nodearray || eqi(observed.nodearray, set.nodearray)) &&
        (!observed.machineType || eqi(observed.machineType, set.machineType)) &&
        (set.placementGroupId === null ? !observed.placementGroupId : eqi(observed.placementGroupId, set.placementGroupId))
      );
    };
    const room = (i: number): boolean => used[i]! < Math.max(state.sets[i]!.added, 0);
    let i = state.sets.findIndex((_, k) => matches(k) && room(k));
    if (i < 0) i = state.sets.findIndex((_, k) => matches(k));
    if (i < 0) continue;
    used[i] = used[i]! + 1;
    node.setIndex = i;
    node.placementGroupId = state.sets[i]!.placementGroupId ?? observed.placementGroupId ?? null;
    const counts = perDemand[i]!;
    const set = state.sets[i]!;
    const demand = set.demands.find((d) => (counts.get(d.index) ?? 0) < d.count) ?? set.demands[set.demands.length - 1];
    if (demand) {
      node.demandIndex = demand.index;
      counts.set(demand.index, (counts.get(demand.index) ?? 0) + 1);
    }
  }
}

function setOutcome(node: TrackedNode, outcome: NodeOutcome, status: string, nowMs: number): boolean {
  if (node.outcome === outcome && node.status === status) return false;
  if (node.outcome !== outcome) node.changedAtMs = nowMs;
  node.outcome = outcome;
  node.status = status;
  return true;
}

function describe(nodes: TrackedNode[]): string {
  const shown = nodes
    .slice(0, 5)
    .map((n) => `${n.name} (${n.outcome === 'timed_out' ? 'not Ready by the boot deadline' : n.statusMessage ? `${n.status}: ${n.statusMessage}` : n.status})`);
  return `${shown.join(', ')}${nodes.length > 5 ? ` and ${nodes.length - 5} more` : ''}`;
}

/**
 * Advances one operation by one poll. Never mutates `prev`.
 */
export function step(prev: TrackerState, input: StepInput, config: MachineConfig = DEFAULT_MACHINE_CONFIG): StepResult {
  const state = structuredClone(prev);
  const actions: TrackerAction[] = [];
  if (state.final) return { state, actions, changed: false };
  const { nowMs } = input;
  let changed = false;
  state.polls += 1;

  if (input.nodes) {
    const byName = new Map(state.nodes.map((n) => [n.name, n]));
    const listed = new Set<string>();
    const fresh: { node: TrackedNode; observed: ObservedNode }[] = [];
    for (const o of input.nodes) {
      listed.add(o.name);
      let node = byName.get(o.name);
      if (!node) {
        node = {
          name: o.name,
          id: o.id,
          status: '',
          outcome: 'pending',
          statusMessage: null,
          setIndex: null,
          demandIndex: null,
          placementGroupId: o.placementGroupId ?? null,
          seen: false,
          terminating: false,
          changedAtMs: nowMs,
        };
        state.nodes.push(node);
        byName.set(o.name, node);
        if (state.action === 'create') fresh.push({ node, observed: o });
        changed = true;
      }
      node.seen = true;
      if (o.machineType && !node.machineType) node.machineType = o.machineType;
      if (o.region && !node.region) node.region = o.region;
      if (o.id && node.id !== o.id) {
        node.id = o.id;
        changed = true;
      }
      const message = o.statusMessage ?? null;
      if (message !== node.statusMessage) node.statusMessage = message;
      // Outcomes this tracker settled (failed, timed out, being compensated) are not re-derived.
      if (node.terminating || node.outcome === 'failed' || node.outcome === 'timed_out') continue;
      if (state.action === 'create' && node.outcome === 'gone') continue;
      const outcome =
        state.action === 'create' ? createOutcome(o.status, o.privateIp) : state.action === 'start' ? startOutcome(o.status, o.privateIp) : terminateOutcome(o.status);
      changed = setOutcome(node, outcome, o.status, nowMs) || changed;
    }
    attribute(state, fresh, input.compensatedNodes);
    for (const node of state.nodes) {
      if (listed.has(node.name) || node.terminating) continue;
      // Absent from the operation's list: removed. A terminate's names are known up front, so
      // absence means gone even if never seen; a create's nodes are only known once seen.
      if (node.outcome === 'pending' || node.outcome === 'ready') {
        if (state.action === 'terminate' || node.seen) changed = setOutcome(node, 'gone', REMOVED_STATUS, nowMs) || changed;
      }
    }
  }

  // Boot deadline: whatever is still pending has timed out.
  const pastDeadline = nowMs >= state.deadlineAtMs;
  const timedOutNow: TrackedNode[] = [];
  if (pastDeadline && !state.timedOut) {
    state.timedOut = true;
    for (const node of state.nodes) {
      if (node.outcome !== 'pending' || node.terminating) continue;
      setOutcome(node, 'timed_out', TIMED_OUT_STATUS, nowMs);
      timedOutNow.push(node);
      changed = true;
    }
  }

  // spot-first: spot nodes not Ready by their set's fallback deadline are given up, like a boot
  // timeout of their own (terminated, and their demand re-planned on regular buckets).
  if (state.action === 'create') {
    state.sets.forEach((set, i) => {
      if (set.spotFallbackMs === undefined || state.spotGivenUp?.includes(i) || nowMs < state.startedAtMs + set.spotFallbackMs) return;
      (state.spotGivenUp ??= []).push(i);
      for (const node of state.nodes) {
        if (node.setIndex !== i || node.outcome !== 'pending' || node.terminating) continue;
        setOutcome(node, 'timed_out', TIMED_OUT_STATUS, nowMs);
        node.statusMessage = `${SPOT_FALLBACK_NOTE} within ${Math.round(set.spotFallbackMs / 1000)} s`;
        timedOutNow.push(node);
        changed = true;
      }
    });
  }

  // A set is written off when its whole group was (the old meaning), or every gang of it was
  // (placement groups shared by several demands: `gangKey`).
  const gone = input.compensatedGroups;
  const writtenOff = (x: TrackerState['sets'][number]): boolean =>
    x.placementGroupId !== null &&
    gone !== undefined &&
    (gone.has(x.placementGroupId) || (x.demands.length > 0 && x.demands.every((d) => gone.has(gangKey(x.placementGroupId!, d.index)))));
  if (state.action === 'create') {
    const compensatedKeys = input.compensated ?? new Set<string>();
    // By id first: a name may belong to an earlier node CycleCloud removed (names are reused).
    const compensated = { has: (n: TrackedNode): boolean => (n.id !== null && compensatedKeys.has(`id:${n.id}`)) || compensatedKeys.has(n.name) };
    const gangNames = new Set<string>();
    // A placement group the submission wrote off (a partial gang, compensated before CycleCloud's
    // list showed all of it: lists may lag a create): members that show up later are terminated too.
    state.sets.forEach((set, setIndex) => {
      if (!set.colocated || !writtenOff(set)) return;
      const late = state.nodes
        .filter((n) => n.setIndex === setIndex && !n.terminating && n.outcome !== 'gone' && !compensated.has(n))
        .sort((a, b) => compareNodeNames(a.name, b.name));
      if (late.length === 0) return;
      const names = late.map((n) => n.name);
      for (const n of late) {
        n.terminating = true;
        setOutcome(n, 'gone', 'Terminating', nowMs);
      }
      actions.push({ type: 'terminate', names, cause: 'gang', key: `w${setIndex}-${names[0]}` });
      for (const d of new Set(late.map((n) => n.demandIndex ?? set.demands[0]?.index ?? 0))) {
        const mine = late.filter((n) => (n.demandIndex ?? set.demands[0]?.index ?? 0) === d);
        actions.push({
          type: 'written-off',
          demandIndex: d,
          placementGroupId: set.placementGroupId!,
          nodeNames: mine.map((n) => n.name),
          nodeKeys: mine.map((n) => (n.id ? `id:${n.id}` : n.name)),
        });
      }
      changed = true;
    });
    // Colocated sets: a gang (one demand's nodes in one group) with any failed or timed-out node
    // is useless to an MPI job: terminate all of it and re-plan the demand elsewhere.
    state.sets.forEach((set, setIndex) => {
      if (!set.colocated) return;
      for (const d of set.demands) {
        const gang = state.nodes.filter((n) => n.setIndex === setIndex && n.demandIndex === d.index);
        for (const n of gang) gangNames.add(n.name);
        if (state.compensatedDemands.includes(d.index)) continue;
        if (gang.length > 0 && gang.every((n) => compensated.has(n))) continue;
        const bad = gang.filter((n) => isBad(n.outcome));
        if (bad.length === 0) continue;
        state.compensatedDemands.push(d.index);
        const victims = gang.filter((n) => n.outcome !== 'gone' && !compensated.has(n));
        for (const n of victims) {
          n.terminating = true;
          // Pending or Ready members are resolved here (handed to the terminate's tracker).
          if (n.outcome === 'pending' || n.outcome === 'ready') setOutcome(n, 'gone', 'Terminating', nowMs);
          changed = true;
        }
        const pg = set.placementGroupId;
        const reason = `colocated set in ${pg ? `placement group ${pg}` : `${set.nodearray}/${set.machineType}`} broken: ${describe(bad)}`;
        const sortedGang = [...gang].sort((a, b) => compareNodeNames(a.name, b.name));
        const names = sortedGang.map((n) => n.name);
        const nodeKeys = sortedGang.map((n) => (n.id ? `id:${n.id}` : n.name));
        if (victims.length > 0) {
          actions.push({
            type: 'terminate',
            names: victims.map((n) => n.name).sort(compareNodeNames),
            cause: 'gang',
            key: `c${d.index}`,
            demandIndex: d.index,
            placementGroupId: pg,
          });
        }
        if (state.generation < config.maxReplanAttempts) {
          actions.push({ type: 'replan', demandIndex: d.index, placementGroupId: pg, nodeNames: names, nodeKeys, reason });
        } else {
          actions.push({
            type: 'close',
            demandIndex: d.index,
            placementGroupId: pg,
            nodeNames: names,
            nodeKeys,
            reason: `${reason}; no re-plan left (MAX_REPLAN_ATTEMPTS=${config.maxReplanAttempts})`,
          });
        }
      }
    });
    // Loose nodes that missed the deadline: terminate them (configurable) so they stop costing.
    if (config.terminateOnBootTimeout) {
      const loose = timedOutNow.filter((n) => !gangNames.has(n.name) && !compensated.has(n));
      if (loose.length > 0) {
        for (const n of loose) n.terminating = true;
        actions.push({ type: 'terminate', names: loose.map((n) => n.name).sort(compareNodeNames), cause: 'timeout', key: 'to' });
      }
    }
  }

  const expected = state.action === 'create' ? state.sets.reduce((s, x) => s + (writtenOff(x) ? 0 : Math.max(0, x.added)), 0) : 0;
  const seenCount = state.action === 'create' ? state.nodes.filter((n) => n.setIndex !== null || n.seen).length : 0;
  const allFinal = state.nodes.every((n) => isFinalOutcome(n.outcome));
  // A failed poll proves nothing about a create: a group written off before its members were listed
  // expects none, yet members that show up later must still be seen (and terminated).
  const complete = state.action !== 'create' || pastDeadline || (input.nodes !== null && seenCount >= expected);
  if (allFinal && complete) {
    state.final = true;
    state.finalAtMs = nowMs;
    actions.push({ type: 'final' });
    return { state, actions, changed };
  }

  const delay = input.retryAfterMs !== undefined ? Math.max(1_000, input.retryAfterMs) : state.intervalMs;
  if (input.retryAfterMs === undefined) state.intervalMs = Math.min(config.pollMaxMs, Math.max(config.pollMinMs, Math.round(state.intervalMs * config.backoffFactor)));
  // Never sleep through a deadline (the boot timeout, a spot set's fallback): it must be acted on when it falls due.
  const spotDue = state.sets.flatMap((x, i) => (x.spotFallbackMs !== undefined && !state.spotGivenUp?.includes(i) ? [state.startedAtMs + x.spotFallbackMs] : []));
  const atMs = pastDeadline ? Math.min(nowMs + delay, ...spotDue) : Math.min(nowMs + delay, state.deadlineAtMs, ...spotDue);
  state.nextPollAtMs = atMs;
  actions.push({ type: 'schedule', atMs });
  return { state, actions, changed };
}

/** Node counts by outcome, for metrics and logs. */
export function outcomeCounts(state: TrackerState): Record<NodeOutcome, number> {
  const out: Record<NodeOutcome, number> = { pending: 0, ready: 0, failed: 0, gone: 0, timed_out: 0 };
  for (const n of state.nodes) out[n.outcome] += 1;
  return out;
}
