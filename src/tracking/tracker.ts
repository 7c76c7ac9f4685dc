/**
 * The operation tracker: follows every CycleCloud operation the scaler starts until each node is
 * Ready, failed, gone or timed out, and feeds the outcome into the request ledger.
 *
 * Durable = persisted (DESIGN.md): the state lives in Table storage (`store.ts`), the next poll is a
 * queue message with a visibility delay on `names.trackerQueue`. A wake-up:
 *   1. takes the poll lease (ETag write; a duplicate wake-up drops out: one poll in flight);
 *   2. finishes any actions a crashed predecessor left in the record's outbox;
 *   3. picks the operation's nodes from its cluster's node list (`GET /clusters/{c}/nodes`, one
 *      call per cluster per round shared by every operation polled in it: by NodeId once seen, by
 *      name for a terminate or start, by the scaler's `ccscale-create` tag for a create,
 *      src/cyclecloud/tags.ts);
 *   4. runs the pure machine and writes the new state with its actions as an outbox (ETag);
 *   5. performs the actions — ledger update, terminates (deterministic CycleCloud requestId, and a
 *      tracker for each), re-plans (`markCompensated` + a continue message), settle + callback;
 *   6. writes a fresh wake token, releases the lease and sends the next wake-up.
 * At start (and on every poll until it is done) a create's partial colocated sets are compensated
 * (`partial-gangs.ts`). Every terminate, whoever asks for it, goes through `terminate.ts`.
 * Killed between any two steps, the operation is still followed: the outbox is replayed (every
 * action is idempotent) and the sweeper re-sends wake-ups that are overdue or whose lease expired.
 *
 * CycleCloud failures while polling (5xx, timeouts, 429) are absorbed by the machine's own backoff
 * (a 429's Retry-After wins) rather than thrown, so an outage neither hammers CycleCloud through
 * queue retries nor drives wake-ups into the poison queue. Storage failures throw: the host retries.
 */
import { EVICTED_STATUS, isEvictionMessage } from './evictions.ts';
import { randomUUID } from 'node:crypto';
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import { isCycleCloudError, isPermanent } from '../cyclecloud/errors.ts';
import type { NodeRecord } from '../cyclecloud/schemas.ts';
import { membersOf } from '../cyclecloud/lookup.ts';
import type { Storage } from '../platform/storage.ts';
import { encodeQueueMessage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import type { Logger } from '../platform/log.ts';
import { silentLogger } from '../platform/log.ts';
import { isScalerError } from '../platform/errors.ts';
import type { LedgerEntry, NodeOutcome, RequestLedgerApi } from '../ledger/types.ts';
import {
  addOperation,
  applyNodeStates,
  closeDemand,
  compensatedKeys,
  compensationRequestId,
  isFinal,
  markCompensated,
  outcomeOf,
  settle,
  trackerTerminateRequestId,
  type NodeStateUpdate,
} from '../ledger/record.ts';
import type { CallbackSender } from './callbacks.ts';
import { parseInternalMessage } from './callbacks.ts';
import {
  DEFAULT_MACHINE_CONFIG,
  gangKey,
  initialState,
  isCapacityFailureMessage,
  outcomeCounts,
  step,
  type MachineConfig,
  type ObservedNode,
  type TrackerAction,
  type TrackerState,
} from './machine.ts';
import { TrackerStore, TrackerStoreError, type OutboxItem, type TrackerRecord } from './store.ts';
import { compensatePartialGangs, hasPartialGang, type CapacityFailureSink } from './partial-gangs.ts';
import { terminateAndTrack } from './terminate.ts';
import type { RequestPipelinePort, TerminateOrder, TerminateResult, TrackerApi, TrackStart } from './types.ts';
import { recordNodeOutcomes } from '../platform/metrics.ts';
import { inSpan, SpanKind, traceFields } from '../platform/tracing.ts';

export type { CapacityFailureSink } from './partial-gangs.ts';

/** Tracker settings; defaults in {@link DEFAULT_TRACKER_CONFIG}. */
export interface TrackerConfig extends MachineConfig {
  /** How long a poll may hold its lease before the sweeper may take over. Default 120 000. */
  leaseMs: number;
  /** The sweeper wakes records whose poll is late by more than this many max intervals. Default 3. */
  overdueFactor: number;
  /** How long one cluster node list serves the polls of every operation of the cluster. Default 5 000. */
  clusterListMaxAgeMs: number;
}

export const DEFAULT_TRACKER_CONFIG: Readonly<TrackerConfig> = Object.freeze({ ...DEFAULT_MACHINE_CONFIG, leaseMs: 120_000, overdueFactor: 3, clusterListMaxAgeMs: 5_000 });

/** The wake-up message on `names.trackerQueue`. */
export interface TrackerWakeMessage {
  $tracker: 'poll';
  cluster: string;
  /** The operation's CycleCloud requestId (the tracker record's key). */
  cycleCloudRequestId: string;
  /** The record's wake token when sent; a message with a stale token is dropped. */
  token?: string;
}

export interface TrackerDeps {
  cyclecloud: CycleCloudApi;
  storage: Storage;
  names: StorageNames;
  ledger: RequestLedgerApi;
  /** Where demands to re-plan and requests to look at again go (`continuePort` in `src/requests/queue.ts`). */
  pipeline: RequestPipelinePort;
  /** Partial settings over {@link DEFAULT_TRACKER_CONFIG}. */
  config?: Partial<TrackerConfig>;
  now: () => number;
  /** Jitter source in [0, 1). Default Math.random. */
  random?: () => number;
  /** Where final requests' callbacks are queued. Default: none (no callbacks). */
  callbacks?: Pick<CallbackSender, 'enqueue'>;
  /** Capacity-failure memory fed by nodes that fail for lack of capacity. Optional. */
  capacity?: CapacityFailureSink;
  /** Used by `start()` (which has no logger parameter). Default: silent. */
  logger?: Logger;
}

export interface Tracker extends TrackerApi {
  /** The tracker queue's handler. Throws only on transient (storage) failures. */
  handleTrackerMessage(message: unknown, meta: { dequeueCount: number }, logger: Logger): Promise<void>;
  /** Re-sends wake-ups that are overdue (> overdueFactor × max interval) or whose lease expired; returns how many. */
  sweep(nowMs: number, logger: Logger): Promise<number>;
  /** Wakes an operation (by its CycleCloud requestId) now; false when it is final or a poll holds it. */
  wake(cluster: string, cycleCloudRequestId: string): Promise<boolean>;
  /** Asks the pipeline to look at a request again (`{ $scaler: 'continue' }` on the scale queue). */
  sendContinue(requestId: string, reason: string): Promise<void>;
  readonly store: TrackerStore;
}

/** Tracker settings from the app configuration (`loadConfig` in `src/platform/config.ts`). */
export function trackerConfigFrom(c: {
  trackerPollMinMs: number;
  trackerPollMaxMs: number;
  bootTimeoutMs: number;
  terminateOnBootTimeout: boolean;
  maxReplanAttempts: number;
}): Partial<TrackerConfig> {
  return {
    pollMinMs: c.trackerPollMinMs,
    pollMaxMs: c.trackerPollMaxMs,
    bootTimeoutMs: c.bootTimeoutMs,
    terminateOnBootTimeout: c.terminateOnBootTimeout,
    maxReplanAttempts: c.maxReplanAttempts,
  };
}

/** A listed node as the machine reads it (absent documented fields are null; an absent Status is empty). */
function observe({ Name, NodeId, Status, StatusMessage, Template, MachineType, PlacementGroupId, PrivateIp, Region }: NodeRecord): ObservedNode {
  const orNull = <T>(v: T | undefined): T | null => v ?? null;
  return {
    region: typeof Region === 'string' ? Region : null,
    name: Name,
    id: orNull(NodeId),
    status: Status ?? '',
    statusMessage: orNull(StatusMessage),
    nodearray: orNull(Template),
    machineType: orNull(MachineType),
    placementGroupId: orNull(PlacementGroupId),
    privateIp: orNull(PrivateIp),
  };
}

/** A non-empty, well-formed string of reasonable length: usable in a Table key (encodeURIComponent throws on a lone surrogate). */
const usableKey = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 512 && !/\p{Cs}/u.test(v);

export function parseTrackerMessage(message: unknown): TrackerWakeMessage | null {
  const m = parseInternalMessage(message);
  if (m?.$tracker !== 'poll' || !usableKey(m.cluster) || !usableKey(m.cycleCloudRequestId)) return null;
  return { $tracker: 'poll', cluster: m.cluster, cycleCloudRequestId: m.cycleCloudRequestId, ...(typeof m.token === 'string' ? { token: m.token } : {}) };
}

export function createTracker(deps: TrackerDeps): Tracker {
  const config: TrackerConfig = { ...DEFAULT_TRACKER_CONFIG, ...deps.config };
  const store = new TrackerStore({ storage: deps.storage, names: deps.names });
  const random = deps.random ?? Math.random;
  const baseLogger = deps.logger ?? silentLogger;
  // A CycleCloud call must end well within the poll lease, or a sweeper could start a second poll.
  const callSignal = (): AbortSignal => AbortSignal.timeout(Math.max(1_000, Math.floor(config.leaseMs / 2)));
  let ready: Promise<void> | undefined;
  const ensure = (): Promise<void> =>
    (ready ??= deps.storage
      .ensure({ tables: [deps.names.operationsTable], queues: [deps.names.trackerQueue, deps.names.scaleQueue, deps.names.callbackQueue] })
      .catch((e: unknown) => {
        ready = undefined;
        throw e;
      }));

  async function sendWake(cluster: string, cycleCloudRequestId: string, token: string, delayMs: number): Promise<void> {
    const body: TrackerWakeMessage = { $tracker: 'poll', cluster, cycleCloudRequestId, token };
    const sec = Math.max(0, Math.ceil(delayMs / 1000));
    await deps.storage.queue(deps.names.trackerQueue).sendMessage(encodeQueueMessage(body), sec > 0 ? { visibilityTimeout: sec } : {});
  }

  const sendContinue = (requestId: string, reason: string): Promise<void> => deps.pipeline.continueRequest(requestId, reason);

  async function start(t: TrackStart): Promise<void> {
    await ensure();
    const nowMs = deps.now();
    const state = initialState(t, nowMs, config, random());
    const { created, record } = await store.create({ state, outbox: [], wakeToken: randomUUID(), leaseUntilMs: 0 });
    // A partial colocated set is compensated before the first wake-up is sent (idempotent: a start
    // repeated after a crash finishes what the first left; the poll does it again until final).
    if (!record.state.final) await compensateGangs(record.state, baseLogger.child({ requestId: t.requestId, cycleCloudRequestId: t.cycleCloudRequestId }));
    if (created) {
      await sendWake(t.cluster, t.cycleCloudRequestId, record.wakeToken, state.nextPollAtMs - nowMs);
      baseLogger.info('tracking operation', {
        requestId: t.requestId,
        cluster: t.cluster,
        operationId: t.operationId,
        cycleCloudRequestId: t.cycleCloudRequestId,
        action: t.action,
        nodes: state.nodes.length,
      });
      return;
    }
    // Already tracking. If it was never polled, its first wake-up may have been lost with a crash
    // right after the create: send it again (same token, so at most one chain survives).
    if (!record.state.final && record.state.polls === 0 && record.leaseUntilMs <= nowMs) {
      await sendWake(t.cluster, t.cycleCloudRequestId, record.wakeToken, Math.max(0, record.state.nextPollAtMs - nowMs));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Ledger

  async function ledgerUpdate(requestId: string, mutate: (e: LedgerEntry) => LedgerEntry | void, log: Logger): Promise<LedgerEntry | null> {
    try {
      return await deps.ledger.update(requestId, mutate);
    } catch (e) {
      if (isScalerError(e, 'LEDGER_NOT_FOUND')) {
        log.error('tracked operation has no ledger entry; its outcome is not recorded', { requestId });
        return null;
      }
      throw e;
    }
  }

  /** Writes the tracker's view of its nodes into the request record. */
  async function syncLedger(state: TrackerState, log: Logger): Promise<void> {
    const nowMs = deps.now();
    await ledgerUpdate(
      state.requestId,
      (entry) => {
        addOperation(entry.record, { operationId: state.operationId, cycleCloudRequestId: state.cycleCloudRequestId, state: 'pending', action: state.action });
        const updates: NodeStateUpdate[] = state.nodes.map((n) => {
          let outcome: NodeOutcome = n.outcome;
          let status = n.status || 'Unknown';
          // A terminate following a failed or timed-out node must not erase why it was removed.
          const known = entry.record.nodes.findLast((r) => (n.id && r.id ? r.id === n.id : r.name === n.name));
          const before = known ? outcomeOf(entry, known) : undefined;
          if (state.action === 'terminate' && (before === 'failed' || before === 'timed_out') && outcome !== 'failed') {
            outcome = before;
            status = known?.status ?? status;
          }
          // An eviction (Azure Spot) is a failure with its own name in the record (evictions.ts).
          if (outcome === 'failed' && isEvictionMessage(n.statusMessage)) status = EVICTED_STATUS;
          const spot = state.action === 'create' && n.setIndex !== null && state.sets[n.setIndex]?.spot === true;
          const set = state.action === 'create' && n.setIndex !== null ? state.sets[n.setIndex] : undefined;
          const priced = { machineType: n.machineType ?? set?.machineType ?? null, region: n.region ?? null };
          return {
            name: n.name,
            id: n.id,
            status,
            demand: state.action === 'create' ? n.demandIndex : null,
            outcome,
            ...(spot ? { spot } : {}),
            ...(state.action === 'create' ? priced : {}),
          };
        });
        const next = applyNodeStates(entry, state.cycleCloudRequestId, updates, nowMs);
        if (state.action === 'create') {
          const compensated = new Set((next.compensations ?? []).map((c) => c.demandIndex));
          for (const d of next.record.demands) {
            if (compensated.has(d.index)) continue;
            const bad = state.nodes.filter((n) => n.demandIndex === d.index && (n.outcome === 'failed' || n.outcome === 'timed_out'));
            if (bad.length === 0) continue;
            const failed = bad.filter((n) => n.outcome === 'failed');
            const timedOut = bad.filter((n) => n.outcome === 'timed_out');
            const parts = [
              failed.length
                ? `${failed.length} node(s) failed (${failed
                    .slice(0, 5)
                    .map((n) => `${n.name}${n.statusMessage ? `: ${n.statusMessage}` : ''}`)
                    .join(', ')})`
                : '',
              timedOut.length
                ? `${timedOut.length} node(s) not Ready within the ${Math.round(config.bootTimeoutMs / 60_000)}-minute boot deadline (${timedOut
                    .slice(0, 5)
                    .map((n) => n.name)
                    .join(', ')})`
                : '',
            ].filter(Boolean);
            d.reason = parts.join('; ');
          }
          // Spot sets given up at their fallback deadline: their spot-first demands plan regular from now on.
          for (const i of state.spotGivenUp ?? []) {
            const set = state.sets[i];
            if (!set?.spotFallbackMs) continue;
            for (const part of set.demands) {
              const d = next.record.demands[part.index];
              if (!d) continue;
              d.spotFallback = `spot nodes not Ready within ${Math.round(set.spotFallbackMs / 1000)} s (spotFallbackSeconds); given up for regular buckets`;
              next.regularOnly = [...new Set([...(next.regularOnly ?? []), part.index])].sort((a, b) => a - b);
            }
          }
        }
        const op = next.record.operations.find((o) => o.cycleCloudRequestId === state.cycleCloudRequestId);
        if (state.final) {
          if (op && op.state === 'pending') op.state = 'done';
        } else if (state.action === 'terminate' && op) {
          // The timed-out or failed verdicts kept above are not "gone": the terminate is done when
          // its tracker says so, not while CycleCloud still has the nodes.
          op.state = 'pending';
        }
        return next;
      },
      log,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Actions

  /** The one terminate-and-reconcile path (`terminate.ts`), with CycleCloud calls bounded by the lease. */
  const terminateOrder = (order: TerminateOrder): Promise<TerminateResult> => terminateAndTrack(deps.cyclecloud, start, order, callSignal);

  /** Compensates a create's partial colocated sets (`partial-gangs.ts`) through {@link terminateOrder}. */
  const compensateGangs = (s: TrackerState, log: Logger): Promise<LedgerEntry | null> =>
    s.action === 'create' && hasPartialGang(s)
      ? compensatePartialGangs(
          { cyclecloud: deps.cyclecloud, ledger: deps.ledger, capacity: deps.capacity, now: deps.now, maxReplanAttempts: config.maxReplanAttempts, terminate: terminateOrder },
          s,
          log,
        )
      : Promise.resolve(null);

  /**
   * A terminate the machine asked for (broken gang, boot deadline, late members of a written-off
   * group), by NodeId wherever known: CycleCloud gives a removed node's name to the next node, and a
   * terminate sent again later (a replayed outbox, a forgotten request id) must not hit that one.
   * Returns its CycleCloud requestId, or null when CycleCloud would not take it.
   */
  async function terminate(rec: TrackerRecord, action: Extract<TrackerAction, { type: 'terminate' }>, log: Logger): Promise<{ operationId: string | null; cc: string } | null> {
    const s = rec.state;
    const cc = trackerTerminateRequestId(s.requestId, s.generation, action.key);
    const idOf = new Map(s.nodes.flatMap((n) => (n.id ? [[n.name, n.id] as const] : [])));
    const ids = action.names.flatMap((n) => (idOf.has(n) ? [idOf.get(n)!] : []));
    const byName = action.names.filter((n) => !idOf.has(n));
    const nodeIds: Record<string, string> = {};
    for (const n of s.nodes) if (n.id && action.names.includes(n.name)) nodeIds[n.name] = n.id;
    let result: TerminateResult;
    try {
      result = await terminateOrder({
        cluster: s.cluster,
        requestId: s.requestId,
        cycleCloudRequestId: cc,
        generation: s.generation,
        action: 'terminate',
        target: { ...(ids.length > 0 ? { ids } : {}), ...(byName.length > 0 ? { names: byName } : {}) },
        follow: { names: action.names, nodeIds },
      });
    } catch (e) {
      if (!isCycleCloudError(e) || !isPermanent(e)) throw e;
      s.cycleCloudCalls += 1;
      log.warn('terminate not accepted; nothing to follow', { code: e.code, cycleCloudRequestId: cc, error: e.message });
      return null;
    }
    s.cycleCloudCalls += result.calls;
    const refused = result.nodes.filter((n) => n.status === 'Error');
    if (refused.length > 0) log.warn('CycleCloud refused to terminate some nodes', { nodes: refused.slice(0, 10).map((n) => ({ name: n.name, error: n.error })) });
    // Listed as pending at once, so the request cannot settle before its terminate is followed.
    const operationId = result.operationId;
    await ledgerUpdate(s.requestId, (e) => addOperation(e.record, { operationId, cycleCloudRequestId: cc, state: 'pending', action: 'terminate' }), log);
    log.info('terminate sent', { cause: action.cause, nodes: action.names.length, terminateOperationId: operationId, cycleCloudRequestId: cc });
    return { operationId, cc };
  }

  async function compensate(
    rec: TrackerRecord,
    action: Extract<TrackerAction, { type: 'replan' | 'close' }>,
    terminateOps: Map<number, { operationId: string | null; cc: string }>,
    log: Logger,
  ): Promise<void> {
    const s = rec.state;
    const nowMs = deps.now();
    const t = terminateOps.get(action.demandIndex);
    await ledgerUpdate(
      s.requestId,
      (entry) => {
        let next = markCompensated(
          entry,
          {
            demandIndex: action.demandIndex,
            placementGroupId: action.placementGroupId,
            nodeNames: action.nodeNames,
            ...(action.nodeKeys ? { nodeKeys: action.nodeKeys } : {}),
            reason: action.reason,
          },
          nowMs,
        );
        const c = next.compensations?.find((x) => x.demandIndex === action.demandIndex && x.placementGroupId === action.placementGroupId);
        // Marked as sent, so the submission never sends this terminate again.
        if (c && t) {
          c.operationId = t.operationId;
          c.cycleCloudRequestId = t.cc;
        } else if (c && c.operationId === undefined) c.operationId = null;
        if (action.type === 'close') next = closeDemand(next, action.demandIndex, action.reason, nowMs);
        return next;
      },
      log,
    );
    if (action.type === 'replan') {
      await sendContinue(s.requestId, `re-plan demand ${action.demandIndex}: ${action.reason}`);
      log.warn('colocated set broken; demand re-planned', { demandIndex: action.demandIndex, placementGroupId: action.placementGroupId, generation: s.generation });
    } else {
      log.warn('colocated set broken; re-plans used up, demand closed', { demandIndex: action.demandIndex, placementGroupId: action.placementGroupId });
    }
  }

  /** The operation is final: settle the request if nothing else is pending, and call back. */
  async function finish(rec: TrackerRecord, replanned: boolean, recovering: boolean, log: Logger): Promise<void> {
    const s = rec.state;
    let wasFinal = false;
    const entry = await ledgerUpdate(
      s.requestId,
      (e) => {
        wasFinal = isFinal(e);
        return settle(e, deps.now());
      },
      log,
    );
    if (!entry) return;
    if (isFinal(entry)) {
      if ((!wasFinal || recovering) && entry.request?.callbackUrl && deps.callbacks) await deps.callbacks.enqueue(s.requestId);
      if (!wasFinal) log.info('request final', { state: entry.record.state, reason: entry.record.reason });
      return;
    }
    // A create ended with the request still open and no other create in flight: the pipeline
    // decides what the lost nodes mean (replace them, wait, or give up at the deadline). Terminates
    // still running do not matter (their nodes no longer count); a re-plan sent its own continue.
    const createsPending = entry.record.operations.some((o) => o.state === 'pending' && o.action !== 'terminate');
    if (s.action === 'create' && !replanned && !createsPending) await sendContinue(s.requestId, `operation ${s.cycleCloudRequestId} finished with demands still open`);
  }

  async function performOutbox(rec: TrackerRecord, recovering: boolean, log: Logger): Promise<TrackerRecord> {
    const terminateOps = new Map<number, { operationId: string | null; cc: string }>();
    const replanned = rec.outbox.some((a) => a.type === 'replan');
    for (const item of rec.outbox) {
      switch (item.type) {
        case 'ledger':
          await syncLedger(rec.state, log);
          break;
        case 'terminate': {
          const sent = await terminate(rec, item, log);
          if (sent && item.demandIndex !== undefined) terminateOps.set(item.demandIndex, sent);
          break;
        }
        case 'replan':
        case 'close':
          await compensate(rec, item, terminateOps, log);
          break;
        case 'written-off':
          // The terminate just sent is already tracked; the nodes join the compensation of their group.
          await ledgerUpdate(
            rec.state.requestId,
            (e) =>
              markCompensated(
                e,
                {
                  demandIndex: item.demandIndex,
                  placementGroupId: item.placementGroupId,
                  nodeNames: item.nodeNames,
                  nodeKeys: item.nodeKeys,
                  reason: `late members of written-off placement group ${item.placementGroupId}`,
                },
                deps.now(),
              ),
            log,
          );
          log.warn('late members of a written-off placement group terminated', { placementGroupId: item.placementGroupId, nodes: item.nodeNames });
          break;
        case 'final':
          await finish(rec, replanned, recovering, log);
          break;
      }
    }
    return store.replace({ ...rec, outbox: [] });
  }

  /**
   * One node list per cluster per poll round, shared by every operation of the cluster this instance
   * polls in that round (the Functions host hands a batch of wake-ups to one instance at once):
   * `GET /clusters/{c}/nodes` once, then each operation picks its own nodes from it
   * ({@link membersOf}: by NodeId once seen, by name for a terminate or start given names, by the
   * `ccscale-create` tag for a create). So 100 operations in flight cost one call per round, not 100.
   * A list is shared while younger than `clusterListMaxAgeMs` and asked for after the operation
   * started and after its previous poll (an operation never goes back in time). Per-operation lookups
   * (`?operation=`/`?request_id=`, src/cyclecloud/lookup.ts) are left to recovery in the submission.
   */
  const clusterLists = new Map<string, { askedAtMs: number; nodes: Promise<NodeRecord[]> }>();

  async function clusterNodes(cluster: string, notBeforeMs: number): Promise<{ nodes: NodeRecord[]; askedAtMs: number; calls: number }> {
    const nowMs = deps.now();
    const cached = clusterLists.get(cluster);
    if (cached && cached.askedAtMs > notBeforeMs && nowMs - cached.askedAtMs <= config.clusterListMaxAgeMs) {
      return { nodes: await cached.nodes, askedAtMs: cached.askedAtMs, calls: 0 };
    }
    const entry = { askedAtMs: nowMs, nodes: deps.cyclecloud.listNodes(cluster, { abortSignal: callSignal() }).then((l) => l.nodes) };
    clusterLists.set(cluster, entry);
    // A failed list is not shared with later wake-ups (those waiting on it now share the failure).
    entry.nodes.catch(() => clusterLists.get(cluster) === entry && clusterLists.delete(cluster));
    return { nodes: await entry.nodes, askedAtMs: nowMs, calls: 1 };
  }

  /** The operation's nodes, from its cluster's shared node list. */
  async function listOperationNodes(rec: TrackerRecord, log: Logger): Promise<{ nodes: ObservedNode[] | null; retryAfterMs?: number; askedAtMs?: number; calls: number }> {
    const s = rec.state;
    try {
      // A list asked for before the operation started cannot show it; one from before its last poll would take it back in time.
      const list = await clusterNodes(s.cluster, Math.max(rec.observedAtMs ?? 0, s.startedAtMs));
      const nodes = membersOf(list.nodes, {
        cycleCloudRequestId: s.cycleCloudRequestId,
        nodeIds: s.nodes.flatMap((n) => (n.id ? [n.id] : [])),
        namesWithoutId: s.action !== 'create' ? s.nodes.flatMap((n) => (n.id ? [] : [n.name])) : [],
        tagged: s.action === 'create',
      });
      return { nodes: nodes.map(observe), askedAtMs: list.askedAtMs, calls: list.calls };
    } catch (e) {
      if (!isCycleCloudError(e)) throw e;
      return { ...pollFailed(s, e, log), calls: 1 };
    }
  }

  function pollFailed(s: TrackerState, e: { code: string; message: string; retryAfterMs?: number | undefined }, log: Logger): { nodes: null; retryAfterMs?: number } {
    if (e.code === 'CC_THROTTLED') {
      log.warn('CycleCloud throttled the poll', { retryAfterMs: e.retryAfterMs });
      return { nodes: null, retryAfterMs: e.retryAfterMs ?? s.intervalMs };
    }
    log.warn('poll failed; backing off', { code: e.code, error: e });
    return { nodes: null };
  }

  async function recordCapacityFailures(before: TrackerState, after: TrackerState, nowMs: number, log: Logger): Promise<void> {
    if (!deps.capacity || after.action !== 'create') return;
    const prev = new Map(before.nodes.map((n) => [n.name, n.outcome]));
    const seen = new Set<string>();
    for (const n of after.nodes) {
      if (n.outcome !== 'failed' || prev.get(n.name) === 'failed' || n.setIndex === null || !isCapacityFailureMessage(n.statusMessage)) continue;
      const set = after.sets[n.setIndex]!;
      const k = `${set.nodearray}|${set.machineType}`;
      if (seen.has(k)) continue;
      seen.add(k);
      try {
        await deps.capacity.recordFailure(
          { cluster: after.cluster, nodearray: set.nodearray, machineType: set.machineType, reason: `node ${n.name} failed: ${n.statusMessage}` },
          nowMs,
        );
      } catch (e) {
        log.warn('could not record a capacity failure', { error: e });
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // One wake-up

  /** One poll in a span of its own, child of the request's accept span. */
  function poll(leased: TrackerRecord, log: Logger): Promise<TrackerRecord> {
    const attributes = { 'cyclecloud.request_id': leased.state.cycleCloudRequestId, 'scaler.poll': leased.state.polls + 1 };
    return inSpan('tracker poll', leased.state.traceparent, SpanKind.INTERNAL, attributes, ({ traceparent }) => pollOnce(leased, log.child(traceFields(traceparent))));
  }

  async function pollOnce(leased: TrackerRecord, log: Logger): Promise<TrackerRecord> {
    let rec = leased;
    if (rec.outbox.length > 0) {
      log.warn('replaying actions left by an interrupted poll', { actions: rec.outbox.map((a) => a.type) });
      rec = await performOutbox(rec, true, log);
    }
    if (rec.state.final) return store.replace({ ...rec, leaseUntilMs: 0 });
    // Normally done at start; finished here if that start was cut short. CycleCloud failing now is
    // absorbed like a failed poll: the next poll tries again.
    try {
      await compensateGangs(rec.state, log);
    } catch (e) {
      if (!isCycleCloudError(e)) throw e;
      log.warn('could not compensate a partial gang yet; the next poll tries again', { code: e.code, error: e.message });
    }

    let compensated: Set<string> | undefined;
    let compensatedGroups: Set<string> | undefined;
    let compensatedNodes: { key: string; placementGroupId: string; demandIndex: number }[] | undefined;
    if (rec.state.action === 'create' && rec.state.sets.some((x) => x.colocated)) {
      const entry = await deps.ledger.get(rec.state.requestId);
      compensated = entry ? compensatedKeys(entry) : new Set();
      // Only what the submission compensated for THIS create (its terminate id names the generation):
      // a later generation may place a new gang in a group of the same name.
      const ours = compensationRequestId(rec.state.requestId, rec.state.generation);
      compensatedGroups = new Set(
        (entry?.compensations ?? []).flatMap((c) => (c.placementGroupId && c.cycleCloudRequestId === ours ? [gangKey(c.placementGroupId, c.demandIndex)] : [])),
      );
      compensatedNodes = (entry?.compensations ?? []).flatMap((c) =>
        c.placementGroupId && c.cycleCloudRequestId === ours
          ? c.nodeNames.map((name, k) => ({ key: c.nodeKeys?.[k] ?? name, placementGroupId: c.placementGroupId!, demandIndex: c.demandIndex }))
          : [],
      );
    }
    const observed = await listOperationNodes(rec, log);
    if (observed.askedAtMs !== undefined) rec = { ...rec, observedAtMs: observed.askedAtMs };
    const nowMs = deps.now();
    const result = step(
      rec.state,
      {
        nowMs,
        nodes: observed.nodes,
        ...(observed.retryAfterMs !== undefined ? { retryAfterMs: observed.retryAfterMs } : {}),
        ...(compensated ? { compensated } : {}),
        ...(compensatedGroups ? { compensatedGroups } : {}),
        ...(compensatedNodes ? { compensatedNodes } : {}),
      },
      config,
    );
    result.state.cycleCloudCalls += observed.calls;
    await recordCapacityFailures(rec.state, result.state, nowMs, log);
    const acts = result.actions.filter((a): a is Exclude<TrackerAction, { type: 'schedule' }> => a.type !== 'schedule');
    // Late members of a written-off group join its compensation before the ledger hears of them, so
    // they never count twice (as unlisted and as gone).
    const outbox: OutboxItem[] = [...acts.filter((a) => a.type === 'written-off'), ...acts.filter((a) => a.type !== 'written-off')];
    if (result.changed || result.state.final || rec.state.polls === 0) outbox.splice(acts.filter((a) => a.type === 'written-off').length, 0, { type: 'ledger' });
    rec = { ...rec, state: result.state, outbox };
    // Actions are persisted before they run (a crash replays them); a quiet poll skips that write.
    if (outbox.length > 0) rec = await performOutbox(await store.replace(rec), false, log);

    if (rec.state.final) {
      const counts = outcomeCounts(rec.state);
      const dims = { cluster: rec.state.cluster, operationId: rec.state.operationId, requestId: rec.state.requestId, action: rec.state.action };
      log.metric('nodes_ready', counts.ready, dims);
      log.metric('nodes_failed', counts.failed + counts.timed_out, dims);
      log.metric('cyclecloud_calls', rec.state.cycleCloudCalls, dims);
      if (rec.state.action === 'create') recordNodeOutcomes(rec.state);
      log.info('operation final', { ...counts, polls: rec.state.polls, elapsedMs: nowMs - rec.state.startedAtMs });
      return store.replace({ ...rec, leaseUntilMs: 0 });
    }
    const schedule = result.actions.find((a): a is Extract<TrackerAction, { type: 'schedule' }> => a.type === 'schedule');
    const atMs = schedule?.atMs ?? nowMs + config.pollMaxMs;
    const next = await store.replace({ ...rec, wakeToken: randomUUID(), leaseUntilMs: 0, state: { ...rec.state, nextPollAtMs: atMs } });
    await sendWake(next.state.cluster, next.state.cycleCloudRequestId, next.wakeToken, atMs - deps.now());
    return next;
  }

  async function handleTrackerMessage(message: unknown, meta: { dequeueCount: number }, logger: Logger): Promise<void> {
    const msg = parseTrackerMessage(message);
    if (!msg) {
      logger.warn('tracker message ignored: not a wake-up', { dequeueCount: meta.dequeueCount });
      return;
    }
    await ensure();
    const log = logger.child({ cluster: msg.cluster, cycleCloudRequestId: msg.cycleCloudRequestId });
    const rec = await store.get(msg.cluster, msg.cycleCloudRequestId);
    if (!rec) {
      log.warn('wake-up for an unknown operation dropped');
      return;
    }
    if (rec.state.final && rec.outbox.length === 0) return;
    if (msg.token !== undefined && msg.token !== rec.wakeToken) {
      log.debug('stale wake-up dropped');
      return;
    }
    const leased = await store.tryLease(rec, deps.now(), config.leaseMs);
    if (!leased) {
      log.debug('a poll is already in flight; wake-up dropped');
      return;
    }
    const plog = log.child({ requestId: rec.state.requestId });
    try {
      await poll(leased, plog);
    } catch (e) {
      if (e instanceof TrackerStoreError) {
        // Another poll took the record over (our lease ran out): it carries on; this one stops.
        plog.warn('poll lost its lease to another; dropped', { dequeueCount: meta.dequeueCount });
        return;
      }
      if (isCycleCloudError(e) && (await deferAfterRefusal(msg.cluster, msg.cycleCloudRequestId, e, plog))) return;
      // Give the lease back so the host's retry of this message can poll at once.
      try {
        const current = await store.get(msg.cluster, msg.cycleCloudRequestId);
        if (current && current.leaseUntilMs > deps.now()) await store.replace({ ...current, leaseUntilMs: 0 });
      } catch {
        // the sweeper recovers it when the lease expires
      }
      plog.warn('poll failed; the queue will retry', { error: e, dequeueCount: meta.dequeueCount });
      throw e;
    }
  }

  /**
   * CycleCloud refused or failed an action of the outbox (a terminate): like a failed poll, this is
   * absorbed rather than thrown. The host retries a thrown message at once, so a short outage would
   * burn its five attempts in seconds and poison the wake-up. The outbox stays (persisted before it
   * ran) and the next wake-up, after a backoff (a 429's Retry-After wins), replays it. False when the
   * record cannot be rescheduled (then the message is retried as before).
   */
  async function deferAfterRefusal(
    cluster: string,
    cycleCloudRequestId: string,
    e: { code: string; retryAfterMs?: number | undefined; message: string },
    log: Logger,
  ): Promise<boolean> {
    try {
      const current = await store.get(cluster, cycleCloudRequestId);
      if (!current || current.outbox.length === 0) return false;
      const delayMs = e.code === 'CC_THROTTLED' && e.retryAfterMs !== undefined ? Math.max(1_000, e.retryAfterMs) : Math.max(config.pollMinMs, current.state.intervalMs);
      const atMs = deps.now() + delayMs;
      const next = await store.replace({ ...current, wakeToken: randomUUID(), leaseUntilMs: 0, state: { ...current.state, nextPollAtMs: atMs } });
      await sendWake(cluster, cycleCloudRequestId, next.wakeToken, delayMs);
      log.warn('CycleCloud failed an action; it is retried after a backoff', { code: e.code, error: e, delayMs, actions: current.outbox.map((a) => a.type) });
      return true;
    } catch {
      return false;
    }
  }

  async function sweep(nowMs: number, logger: Logger): Promise<number> {
    await ensure();
    const overdue = await store.listOverdue(nowMs, config.overdueFactor * config.pollMaxMs);
    let woken = 0;
    for (const rec of overdue) {
      try {
        const next = await store.replace({ ...rec, wakeToken: randomUUID(), leaseUntilMs: 0, state: { ...rec.state, nextPollAtMs: nowMs } });
        await sendWake(next.state.cluster, next.state.cycleCloudRequestId, next.wakeToken, 0);
        woken += 1;
        logger.warn('tracker record re-enqueued', {
          cluster: rec.state.cluster,
          cycleCloudRequestId: rec.state.cycleCloudRequestId,
          requestId: rec.state.requestId,
          leaseExpired: rec.leaseUntilMs > 0,
          lateByMs: nowMs - rec.state.nextPollAtMs,
        });
      } catch (e) {
        if (!(e instanceof TrackerStoreError)) throw e;
        // Someone else moved it just now: it is alive.
      }
    }
    return woken;
  }

  async function wake(cluster: string, cycleCloudRequestId: string): Promise<boolean> {
    await ensure();
    const rec = await store.get(cluster, cycleCloudRequestId);
    if (!rec || (rec.state.final && rec.outbox.length === 0) || rec.leaseUntilMs > deps.now()) return false;
    try {
      const next = await store.replace({ ...rec, wakeToken: randomUUID(), state: { ...rec.state, nextPollAtMs: deps.now() } });
      await sendWake(cluster, cycleCloudRequestId, next.wakeToken, 0);
      return true;
    } catch (e) {
      if (e instanceof TrackerStoreError) return false;
      throw e;
    }
  }

  return { start, terminate: terminateOrder, handleTrackerMessage, sweep, wake, sendContinue, store };
}
