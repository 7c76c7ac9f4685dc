/**
 * Pure functions over a ledger entry: how submissions, node states and compensations change the
 * public request record (docs/api.md §5), and when a request is final. No I/O, time comes in as `nowMs`.
 *
 * Counting rules (one place, so the planner, the tracker and the record agree):
 * - `added` nodes of accepted attempts are attributed to demands in the set's node order;
 * - a demand's `created` = nodes added for it that are still alive or pending, i.e. minus nodes that
 *   failed, timed out, are gone, or were compensated (a partial gang being terminated);
 * - `ready` = nodes of the demand whose outcome is `ready` (not compensated);
 * - remaining = requested − created: what still has to be placed.
 */
import { createHash } from 'node:crypto';
import type { Compensation, LedgerEntry, LifecycleDefaults, NodeOutcome, SubmissionAttempt } from './types.ts';
import type { DemandStatus, NodeStatusRef, OperationRef, RequestMessage, RequestRecord } from './schemas.ts';
import { FINAL_STATES } from './schemas.ts';

/** JSON with object keys sorted at every level: equal content gives equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 (hex) of the canonical JSON of a validated message: same content = same hash. */
export function bodyHash(message: RequestMessage): string {
  return createHash('sha256').update(canonicalJson(message)).digest('hex');
}

const MAX_CC_REQUEST_ID = 128;

/**
 * The CycleCloud requestId of a create: `<requestId>-g<generation>` (readable, deterministic, so every
 * retry of one create sends the same id and a re-plan sends a new one). When that would exceed 128
 * characters it becomes `<first 80 chars>-<24 hex of sha256(requestId)>-g<generation>`.
 */
export function createRequestId(requestId: string, generation: number): string {
  return derivedId(requestId, `-g${generation}`);
}

/** The CycleCloud requestId of a terminate request: `<requestId>-t` (shortened like {@link createRequestId}). */
export function terminateRequestId(requestId: string): string {
  return derivedId(requestId, '-t');
}

/** The CycleCloud requestId of the terminate that compensates generation `generation`'s partial gang(s). */
export function compensationRequestId(requestId: string, generation: number): string {
  return trackerTerminateRequestId(requestId, generation, 'c');
}

/**
 * The CycleCloud requestId of a terminate the tracker sends for generation `generation`'s create:
 * `<requestId>-g<n>-<key>` (`key` names why: `c` compensation, `c<demand>` broken gang, `to` boot
 * deadline, `w…` late members of a written-off group).
 */
export function trackerTerminateRequestId(requestId: string, generation: number, key: string): string {
  return derivedId(requestId, `-g${generation}-${key}`);
}

/** `<requestId><suffix>`, shortened like {@link createRequestId} when it would pass 128 characters. */
export function derivedRequestId(requestId: string, suffix: string): string {
  return derivedId(requestId, suffix);
}

function derivedId(requestId: string, suffix: string): string {
  const plain = `${requestId}${suffix}`;
  if (plain.length <= MAX_CC_REQUEST_ID) return plain;
  const hash = createHash('sha256').update(requestId).digest('hex').slice(0, 24);
  return `${requestId.slice(0, 80)}-${hash}${suffix}`;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The key of one node in `nodeOutcomes` and compensations: `id:<NodeId>` when CycleCloud's id is
 * known, else the name. Names are not identities: CycleCloud removes a terminated node and gives
 * the lowest free name (`mpi-3`) to the next node it creates, so within one request a compensated
 * node and its replacement can share a name.
 */
export function nodeKey(node: { name: string; id?: string | null }): string {
  return node.id ? `id:${node.id}` : node.name;
}

/** The outcome the ledger knows for a node (by key; by name for one recorded before its id was known). */
export function outcomeOf(entry: LedgerEntry, node: { name: string; id?: string | null }): NodeOutcome | undefined {
  const outcomes = entry.nodeOutcomes ?? {};
  return outcomes[nodeKey(node)] ?? outcomes[node.name];
}

/** Keys of the nodes compensations took out of the count (names for compensations recorded without ids). */
export function compensatedKeys(entry: LedgerEntry): Set<string> {
  return new Set((entry.compensations ?? []).flatMap((c) => c.nodeKeys ?? c.nodeNames));
}

/**
 * A new entry in state `queued` for a validated message. `deadlineMs` is the request's time budget
 * (docs/api.md default: 30 minutes); the entry stores the absolute `deadlineAtMs`.
 */
export function newEntry(message: RequestMessage, nowMs: number, deadlineMs: number, defaults: LifecycleDefaults = {}): LedgerEntry {
  const demands: DemandStatus[] =
    message.kind === 'terminate'
      ? []
      : message.demands.map((d, index) => ({
          index,
          requested: d.count,
          created: 0,
          ready: 0,
          placementGroupId: d.placementGroupId ?? null,
          machineType: null,
          reason: null,
          ...(d.jobId !== undefined ? { jobId: d.jobId } : {}),
        }));
  const record: RequestRecord = {
    requestId: message.requestId,
    cluster: message.cluster,
    // A start (Slurm resuming a deallocated node) travels as a terminate message but is no terminate.
    kind: message.kind === 'terminate' && message.action === 'start' ? 'start' : message.kind,
    state: 'queued',
    demands,
    operations: [],
    nodes: [],
    reason: null,
    createdAt: iso(nowMs),
    updatedAt: iso(nowMs),
  };
  if (message.kind === 'scale') {
    if (message.tenant && message.tenant !== 'default') record.tenant = message.tenant;
    // Both clocks start at acceptance; a renew moves only the lease's.
    const leaseSeconds = message.lease?.seconds ?? defaults.leaseSeconds;
    if (leaseSeconds !== undefined) record.lease = { seconds: leaseSeconds, expiresAt: iso(nowMs + leaseSeconds * 1000) };
    const lifetime = message.maxLifetimeSeconds ?? defaults.maxLifetimeSeconds;
    if (lifetime !== undefined) record.maxLifetime = { seconds: lifetime, endsAt: iso(nowMs + lifetime * 1000) };
  }
  return {
    record,
    request: message,
    bodyHash: bodyHash(message),
    attempts: [],
    deadlineAtMs: nowMs + deadlineMs,
    nextAttemptAtMs: null,
    nodeOutcomes: {},
    compensations: [],
    closedDemands: {},
  };
}

/** A rejected entry for a message that failed validation (no parsed request). */
export function rejectedEntry(
  requestId: string,
  cluster: string | null,
  reason: string,
  errors: { path: string; message: string }[],
  nowMs: number,
  kind: 'scale' | 'terminate' = 'scale',
): LedgerEntry {
  return {
    record: {
      requestId,
      cluster: cluster ?? '',
      kind,
      state: 'rejected',
      demands: [],
      operations: [],
      nodes: [],
      reason,
      errors,
      createdAt: iso(nowMs),
      updatedAt: iso(nowMs),
    },
    request: null,
    bodyHash: '',
    attempts: [],
    deadlineAtMs: nowMs,
    nextAttemptAtMs: null,
  };
}

function clone(entry: LedgerEntry): LedgerEntry {
  return structuredClone(entry);
}

/**
 * Records a submission attempt (intent, accepted, unknown or failed), replacing an earlier attempt of
 * the same CycleCloud requestId. An accepted attempt with an operation id adds a pending operation,
 * sets demands' created/machineType/placementGroupId and the state `submitted`.
 */
export function applySubmission(entry: LedgerEntry, attempt: SubmissionAttempt, nowMs: number): LedgerEntry {
  const next = clone(entry);
  const at = next.attempts.findIndex((a) => a.cycleCloudRequestId === attempt.cycleCloudRequestId);
  if (at >= 0) next.attempts[at] = structuredClone(attempt);
  else next.attempts.push(structuredClone(attempt));
  if (attempt.state === 'accepted') {
    addOperation(next.record, {
      operationId: attempt.operationId,
      cycleCloudRequestId: attempt.cycleCloudRequestId,
      state: 'pending',
      action: 'create',
      ...(attempt.batch ? { batch: attempt.batch } : {}),
    });
    for (const set of attempt.sets) {
      for (const part of set.demands) {
        const d = next.record.demands[part.index];
        if (!d) continue;
        d.machineType = set.machineType;
        if (set.placementGroupId) d.placementGroupId = set.placementGroupId;
      }
    }
    if (!FINAL_STATES.has(next.record.state)) next.record.state = 'submitted';
  }
  recount(next);
  next.record.updatedAt = iso(nowMs);
  return next;
}

/**
 * Adds an operation reference unless one with that CycleCloud requestId exists (the one key every
 * operation has: its operation id is unknown when the create's answer was lost); fills in the
 * operation id when it becomes known.
 */
export function addOperation(record: RequestRecord, op: OperationRef): void {
  const known = record.operations.find((o) => o.cycleCloudRequestId === op.cycleCloudRequestId);
  if (!known) record.operations.push(op);
  else {
    if (known.operationId === null && op.operationId !== null) known.operationId = op.operationId;
    if (op.batch && !known.batch) known.batch = op.batch;
  }
}

/** A node as the tracker reports it. `demand` null = keep what the record knows. */
export interface NodeStateUpdate {
  name: string;
  id: string | null;
  /** CycleCloud `Status`. */
  status: string;
  demand: number | null;
  outcome: NodeOutcome;
  /** The node is in a spot bucket (recorded on the node; never unset). */
  spot?: boolean;
  /** Its VM size and region as listed (kept once known). */
  machineType?: string | null;
  region?: string | null;
}

/** Outcomes after which a node no longer runs (its cost stops). */
const ENDED: ReadonlySet<NodeOutcome> = new Set(['failed', 'gone', 'timed_out']);

/**
 * Applies the tracker's view of one operation's nodes: updates `record.nodes`, demands' created/ready
 * and the operation's state (`done` when no node is pending, `failed` when every node failed or timed
 * out). It does not decide re-plans.
 */
export function applyNodeStates(entry: LedgerEntry, cycleCloudRequestId: string, nodes: NodeStateUpdate[], nowMs: number): LedgerEntry {
  const next = clone(entry);
  const outcomes = (next.nodeOutcomes ??= {});
  const list = next.record.nodes;
  // A node costs from its create's acceptance (the VM is being allocated from then on).
  const attempt = next.attempts.find((a) => a.cycleCloudRequestId === cycleCloudRequestId);
  const startedAt = iso(attempt?.acceptedAtMs ?? attempt?.submittedAtMs ?? nowMs);
  for (const n of nodes) {
    // The same node by id; else the latest of that name whose id is unknown (or, for an update
    // without id, the latest of that name) — never a different node that had the name before.
    let i = n.id ? list.findIndex((r) => r.id === n.id) : -1;
    if (i < 0) i = list.findLastIndex((r) => r.name === n.name && (!r.id || !n.id));
    let ref: NodeStatusRef;
    if (i < 0) {
      ref = { name: n.name, id: n.id, status: n.status, demand: n.demand, ...(n.spot ? { spot: true as const } : {}) };
      // Nodes first heard of from a terminate (not ours to price) carry no start.
      if (attempt && next.record.kind === 'scale') ref.startedAt = startedAt;
      list.push(ref);
    } else {
      if (n.spot) list[i]!.spot = true;
      ref = list[i]!;
      ref.status = n.status;
      if (n.id && !ref.id) {
        // Learned its id: its outcome moves from the name key to the id key.
        delete outcomes[ref.name];
        ref.id = n.id;
      }
      if (n.demand !== null) ref.demand = n.demand;
    }
    if (n.machineType && !ref.machineType) ref.machineType = n.machineType;
    if (n.region && !ref.region) ref.region = n.region;
    const before = outcomes[nodeKey(ref)];
    if (ref.startedAt && !ref.endedAt && ENDED.has(n.outcome) && !(before && ENDED.has(before))) ref.endedAt = iso(nowMs);
    outcomes[nodeKey(ref)] = n.outcome;
  }
  const op = next.record.operations.find((o) => o.cycleCloudRequestId === cycleCloudRequestId);
  if (op && nodes.length > 0 && !nodes.some((n) => n.outcome === 'pending')) {
    const bad = (o: NodeOutcome) => o === 'failed' || o === 'timed_out';
    op.state = op.action !== 'terminate' && nodes.every((n) => bad(n.outcome)) ? 'failed' : 'done';
  }
  recount(next);
  next.record.updatedAt = iso(nowMs);
  return next;
}

/** Recomputes every demand's created/ready from attempts, node outcomes and compensations. */
function recount(entry: LedgerEntry): void {
  if (entry.record.kind !== 'scale') return;
  const added = new Map<number, number>();
  for (const a of entry.attempts) {
    if (a.state !== 'accepted') continue;
    for (const set of a.sets) {
      let left = set.added ?? 0;
      for (const part of set.demands) {
        const n = Math.min(left, part.count);
        left -= n;
        added.set(part.index, (added.get(part.index) ?? 0) + n);
      }
    }
  }
  // Compensations recorded with keys match nodes by key; older ones (names only) by name.
  const keyed = new Set((entry.compensations ?? []).flatMap((c) => c.nodeKeys ?? []));
  const named = new Set((entry.compensations ?? []).flatMap((c) => (c.nodeKeys ? [] : c.nodeNames)));
  // One count per node (by key): a compensated node and the new node that got its name are two.
  const demandOf = new Map<string, { d: number; outcome: NodeOutcome | undefined; compensated: boolean }>();
  for (const n of entry.record.nodes) {
    if (n.demand !== null) demandOf.set(nodeKey(n), { d: n.demand, outcome: outcomeOf(entry, n), compensated: keyed.has(nodeKey(n)) || named.has(n.name) });
  }
  const recordNames = new Set(entry.record.nodes.map((n) => n.name));
  for (const c of entry.compensations ?? []) {
    // Compensated nodes the tracker never reported still count as lost, once.
    const unseen = c.nodeKeys ? c.nodeKeys.filter((k) => !demandOf.has(k)) : c.nodeNames.filter((name) => !recordNames.has(name));
    for (const key of unseen) demandOf.set(key, { d: c.demandIndex, outcome: undefined, compensated: true });
  }
  const lost = new Map<number, number>();
  const ready = new Map<number, number>();
  // Nodes a partial gang had that nobody could list yet: lost all the same, once each.
  for (const c of entry.compensations ?? []) {
    const unlisted = Math.max(0, (c.added ?? 0) - (c.nodeKeys ?? c.nodeNames).length);
    if (unlisted > 0) lost.set(c.demandIndex, (lost.get(c.demandIndex) ?? 0) + unlisted);
  }
  for (const { d, outcome, compensated } of demandOf.values()) {
    if (compensated || outcome === 'failed' || outcome === 'timed_out' || outcome === 'gone') lost.set(d, (lost.get(d) ?? 0) + 1);
    else if (outcome === 'ready') ready.set(d, (ready.get(d) ?? 0) + 1);
  }
  for (const d of entry.record.demands) {
    d.created = Math.max(0, (added.get(d.index) ?? 0) - (lost.get(d.index) ?? 0));
    d.ready = Math.min(d.created, ready.get(d.index) ?? 0);
  }
}

/** Per demand index: requested − nodes alive or pending for it (0 when satisfied). */
export function remainingByDemand(entry: LedgerEntry): Record<number, number> {
  const out: Record<number, number> = {};
  for (const d of entry.record.demands) out[d.index] = Math.max(0, d.requested - d.created);
  return out;
}

/** Demands that still need nodes and may still be retried (not closed). */
export function openRemaining(entry: LedgerEntry): Record<number, number> {
  const out: Record<number, number> = {};
  const closed = entry.closedDemands ?? {};
  for (const [k, v] of Object.entries(remainingByDemand(entry))) if (v > 0 && closed[Number(k)] === undefined) out[Number(k)] = v;
  return out;
}

/** Placement groups a re-plan must not use (a partial gang was compensated there). */
export function excludedPlacementGroups(entry: LedgerEntry): string[] {
  return [...new Set((entry.compensations ?? []).map((c) => c.placementGroupId).filter((g): g is string => g !== null))];
}

/**
 * Records that a failed gang's nodes are being terminated: they no longer count for the demand, and
 * the group is excluded from re-plans. Idempotent for the same group and names.
 */
export function markCompensated(
  entry: LedgerEntry,
  c: { demandIndex: number; placementGroupId: string | null; nodeNames: string[]; nodeKeys?: string[]; reason: string; added?: number },
  nowMs: number,
): LedgerEntry {
  const next = clone(entry);
  const list = (next.compensations ??= []);
  const known = compensatedKeys(next);
  const keys = c.nodeKeys ?? c.nodeNames;
  const fresh = c.nodeNames.map((name, i) => ({ name, key: keys[i] ?? name })).filter((n) => !known.has(n.key));
  const same = list.find((x) => x.demandIndex === c.demandIndex && x.placementGroupId === c.placementGroupId);
  if (same) {
    same.nodeKeys = [...(same.nodeKeys ?? same.nodeNames), ...fresh.map((n) => n.key)];
    same.nodeNames.push(...fresh.map((n) => n.name));
  } else {
    list.push({
      demandIndex: c.demandIndex,
      placementGroupId: c.placementGroupId,
      nodeNames: fresh.map((n) => n.name),
      nodeKeys: fresh.map((n) => n.key),
      reason: c.reason,
      atMs: nowMs,
      ...(c.added !== undefined ? { added: c.added } : {}),
    } satisfies Compensation);
  }
  const d = next.record.demands[c.demandIndex];
  if (d) d.reason = c.reason;
  recount(next);
  next.record.updatedAt = iso(nowMs);
  return next;
}

/** Closes a demand: it will not be retried (planner rejected it, re-plans exhausted). */
export function closeDemand(entry: LedgerEntry, demandIndex: number, reason: string, nowMs: number): LedgerEntry {
  const next = clone(entry);
  (next.closedDemands ??= {})[demandIndex] = reason;
  const d = next.record.demands[demandIndex];
  if (d) d.reason = reason;
  next.record.updatedAt = iso(nowMs);
  return next;
}

/** Nodes added and not yet final (alive but not ready), over all demands. */
/**
 * A create or terminate whose outcome is not known (intent written, answer never seen): CycleCloud
 * may hold its nodes, so the request must not end until it is resolved (docs/api.md §5).
 */
export function hasUnresolvedAttempt(entry: LedgerEntry): boolean {
  return entry.attempts.some((a) => a.state === 'intent' || a.state === 'unknown');
}

function unresolved(entry: LedgerEntry): number {
  return entry.record.demands.reduce((s, d) => s + (d.created - d.ready), 0);
}

/**
 * Decides the final state when nothing is pending. Scale: `fulfilled` when every demand has ready =
 * requested; otherwise, when no demand may still be retried (all closed) or the deadline has passed,
 * `partially_fulfilled` (some node ready) or `failed` (none), with a reason built from the demands'.
 * Leaves the entry open while nodes are pending or demands wait before the deadline. Terminate:
 * final when no operation is pending; `fulfilled` unless nodes failed to go.
 */
export function settle(entry: LedgerEntry, nowMs: number): LedgerEntry {
  if (FINAL_STATES.has(entry.record.state)) return entry;
  if (hasUnresolvedAttempt(entry)) return entry;
  const next = clone(entry);
  const r = next.record;
  if (r.kind === 'terminate' || r.kind === 'start') {
    if (r.operations.length === 0 || r.operations.some((o) => o.state === 'pending')) return entry;
    const failed = r.nodes.filter((n) => outcomeOf(next, n) === 'failed' || outcomeOf(next, n) === 'timed_out');
    const gone = r.nodes.length - failed.length;
    if (failed.length === 0 && r.nodes.length > 0) finalize(next, 'fulfilled', r.reason, nowMs);
    else if (r.nodes.length === 0) finalize(next, 'failed', r.reason ?? 'no node matched the request', nowMs);
    else
      finalize(
        next,
        gone > 0 ? 'partially_fulfilled' : 'failed',
        `${failed.length} of ${r.nodes.length} nodes did not ${r.kind}: ${failed
          .slice(0, 10)
          .map((n) => `${n.name} (${n.status})`)
          .join(', ')}`,
        nowMs,
      );
    return next;
  }
  if (unresolved(next) > 0) return entry;
  const allReady = r.demands.every((d) => d.ready >= d.requested);
  if (allReady) {
    for (const d of r.demands) d.reason = null;
    finalize(next, 'fulfilled', null, nowMs);
    return next;
  }
  const waiting = Object.keys(openRemaining(next)).length > 0;
  if (waiting && nowMs < next.deadlineAtMs) return entry;
  const closed = next.closedDemands ?? {};
  const short = r.demands.filter((d) => d.ready < d.requested);
  for (const d of short) {
    if (!d.reason) d.reason = closed[d.index] ?? (waiting && nowMs >= next.deadlineAtMs ? 'request deadline passed' : null);
  }
  const deadline = waiting ? 'request deadline passed; ' : '';
  const why = short.map((d) => `demand ${d.index}: ${d.ready}/${d.requested} ready${d.reason ? ` (${d.reason})` : ''}`).join('; ');
  const anyReady = r.demands.some((d) => d.ready > 0);
  finalize(next, anyReady ? 'partially_fulfilled' : 'failed', `${deadline}${why}`, nowMs);
  return next;
}

function finalize(entry: LedgerEntry, state: RequestRecord['state'], reason: string | null, nowMs: number): void {
  entry.record.state = state;
  entry.record.reason = reason;
  entry.nextAttemptAtMs = null;
  entry.record.updatedAt = iso(nowMs);
}

/** Sets the state and reason of an open entry (no-op on a final one). */
export function setState(entry: LedgerEntry, state: RequestRecord['state'], reason: string | null, nowMs: number): LedgerEntry {
  if (FINAL_STATES.has(entry.record.state)) return entry;
  const next = clone(entry);
  next.record.state = state;
  next.record.reason = reason;
  next.record.updatedAt = iso(nowMs);
  return next;
}

/** True when the entry's state is final. */
export function isFinal(entry: LedgerEntry): boolean {
  return FINAL_STATES.has(entry.record.state);
}
