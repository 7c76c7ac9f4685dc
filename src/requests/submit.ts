/**
 * Planning and exactly-once submission of one ledger entry.
 *
 * Why it cannot create twice: before every `nodes/create` the ledger holds an `intent` attempt
 * (written under ETag: the write is also the claim, so two workers never submit the same
 * generation) with a CycleCloud requestId derived from the caller's (`<requestId>-g<generation>`).
 * Whenever the outcome is not known for sure (timeout, reset, 5xx after sending, 409, redelivery
 * finding an `intent`), the operation is looked up with `GET /clusters/{c}/nodes?request_id=`; only
 * when CycleCloud says it has none is the create sent again, with the SAME id. A new id is used
 * only for a new generation: a re-plan after a partial gang was compensated, or the retry of a
 * loose remainder (docs/api.md §3).
 *
 * A scale request goes plan → reserve → intent → create → reconcile → hand to the tracker. What
 * happens after CycleCloud accepts belongs to the tracker (`src/tracking/`): it compensates a
 * partial colocated set when it takes the create over (`tracker.start`), so this run can re-plan
 * the demand at once; terminate requests are sent through its one terminate path (`tracker.terminate`).
 *
 * Everything here is idempotent: any step may crash and the queue message be delivered again.
 */
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import { isAmbiguous, isCycleCloudError, isPermanent } from '../cyclecloud/errors.ts';
import { operationNodes } from '../cyclecloud/lookup.ts';
import type { NodeCreationRequestSet } from '../cyclecloud/schemas.ts';
import { markAttributes } from '../cyclecloud/tags.ts';
import type { Logger } from '../platform/log.ts';
import { ScalerError } from '../platform/errors.ts';
import type { CapacityBackoff, Plan, PlanInput, PlanOptions } from '../planning/types.ts';
import { planChoice } from '../planning/planner.ts';
import { planNamed as defaultPlan } from '../planning/named.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { ContinueMessage, TerminateResult, TrackerApi, TrackStart } from '../tracking/types.ts';
import type { LedgerEntry, RequestLedgerApi, SubmissionAttempt } from '../ledger/types.ts';
import type { ScaleRequest, TerminateRequest } from '../ledger/schemas.ts';
import { inFlightOf, SnapshotBehindReservationsError, type CapacityReservations } from './reservations.ts';
import { applySubmission, closeDemand, createRequestId, excludedPlacementGroups, isFinal, nodeKey, openRemaining, setState, settle, terminateRequestId } from '../ledger/record.ts';

/** Thrown by a {@link SnapshotSource} when the cluster's numbers cannot be trusted now (stale). */
export class SnapshotUnavailableError extends ScalerError<'PLAN_STALE_SNAPSHOT' | 'PLAN_UNKNOWN_CLUSTER'> {
  override name = 'SnapshotUnavailableError';
  /** True when waiting cannot help (CycleCloud has no such cluster): the request is rejected. */
  readonly permanent: boolean;
  constructor(message: string, options: ErrorOptions & { permanent?: boolean } = {}) {
    super(options.permanent ? 'PLAN_UNKNOWN_CLUSTER' : 'PLAN_STALE_SNAPSHOT', message, options);
    this.permanent = options.permanent ?? false;
  }
}

/** The snapshot store's read side, bound by the composition root to `getFreshSnapshot`. */
export interface SnapshotSource {
  /**
   * The latest snapshot of `cluster`, fetched live when the stored one is older than `maxAgeMs`; null
   * when none was ever had. Throws {@link SnapshotUnavailableError} (with the reason in words) when the
   * cluster is stale, so the request waits instead of acting on old numbers.
   */
  getFresh(cluster: string, maxAgeMs: number): Promise<ClusterSnapshot | null>;
}

/** A capacity failure seen by the submission path (a set CycleCloud filled only in part). */
export interface CapacityFailure {
  cluster: string;
  nodearray: string;
  machineType: string;
  /** What CycleCloud said, in words (names the placement group for gangs). */
  reason: string;
  failedAtMs?: number;
}

/** The capacity-failure memory (`CapacityMemory` from `src/snapshots/capacity-store.ts` fits as is). */
export interface CapacityMemoryApi {
  active(cluster: string, nowMs: number): Promise<CapacityBackoff[]> | CapacityBackoff[];
  recordFailure(failure: CapacityFailure, nowMs: number): Promise<unknown> | unknown;
}

/** Sends a message on the scale queue (base64 JSON), optionally invisible for a while. */
export interface QueueSender {
  send(body: unknown, options?: { visibilityDelayMs?: number }): Promise<void>;
}

export interface SubmitConfig {
  /** Re-plans of one colocated demand after a partial placement group. Default 3. */
  maxReplanAttempts?: number;
  /** Fetch a live snapshot when the stored one is older. Default 120 000 (2 minutes). */
  snapshotMaxAgeMs?: number;
  /** First wait of a waiting request. Default 15 000. */
  backoffMinMs?: number;
  /** Longest wait of a waiting request. Default 300 000 (5 minutes). */
  backoffMaxMs?: number;
  /** Passed to the planner. */
  planOptions?: PlanOptions;
  /** Reconcile/create rounds for one attempt before the request waits and tries again. Default 3. */
  maxSubmitRounds?: number;
  /**
   * A create CycleCloud neither knows by request id nor lists (by the scaler's tags) is sent again
   * only when its intent is at least this old: node lists may lag a create by seconds. Default 5 000.
   */
  lookupGraceMs?: number;
}

/** The cluster reservation row (`CapacityReservations` in `reservations.ts`). */
export type ReservationsApi = Pick<CapacityReservations, 'reserve' | 'accepted' | 'release'>;

export interface SubmitDeps {
  cyclecloud: CycleCloudApi;
  ledger: RequestLedgerApi;
  /** Capacity reserved per cluster before each create (no over-ask across invocations and instances). */
  reservations: ReservationsApi;
  snapshots: SnapshotSource;
  capacity: CapacityMemoryApi;
  tracker: TrackerApi;
  /** The scale queue, for `continue` messages. */
  queue: QueueSender;
  /** Pause switch (`ScalerState#isPaused`) and, when given, its counters (`overAsk`). */
  state: { isPaused(): Promise<boolean>; increment?(counter: string): Promise<unknown> };
  config?: SubmitConfig;
  /** Epoch-ms clock. */
  now: () => number;
  /** The planner; default `plan` from `src/planning/planner.ts` with node names (`planNamed`, `src/planning/named.ts`). */
  plan?: (input: PlanInput) => Plan;
  /**
   * Called for an entry found already final (a redelivery), with the ledger's `onFinal`: a worker
   * that died between the final write and queueing the callback left this message behind, and it
   * is the only thing that can still queue it. The callback sender de-duplicates per record
   * version, so calling it again for a duplicate delivery is harmless. Default: nothing.
   */
  onFinal?: (entry: LedgerEntry) => Promise<void>;
}

export type SubmitErrorCode = 'SUBMIT_UNRESOLVED' | 'SUBMIT_NOT_LISTED_YET';

/** A submission that could not settle this run: the request waits and tries again. */
export class SubmitError extends ScalerError<SubmitErrorCode> {
  override name = 'SubmitError' as const;
  /** When set, the request looks again after exactly this long (not the growing backoff). */
  readonly retryInMs: number | undefined;
  constructor(code: SubmitErrorCode, message: string, options?: ErrorOptions & { retryInMs?: number }) {
    super(code, message, options);
    this.retryInMs = options?.retryInMs;
  }
}

/** What one `processEntry` did. */
export interface ProcessResult {
  requestId: string;
  /** `missing`: no ledger entry; `final`: already final or made final; `submitted`: a create or terminate went out (or was adopted); `waiting`: put back to wait; `paused`; `tracking`: nothing to do but wait for the tracker; `skipped`: another worker holds it. */
  action: 'missing' | 'final' | 'submitted' | 'waiting' | 'paused' | 'tracking' | 'skipped';
  state: string | null;
}

/** `reason` of the `continue` message a waiting request schedules for itself, with `wakeAtMs` (see `intake.ts`). */
export const WAIT_REASON = 'wait';

interface Ctx {
  deps: SubmitDeps;
  logger: Logger;
  requestId: string;
  cluster: string;
  cfg: Required<Omit<SubmitConfig, 'planOptions'>> & { planOptions?: PlanOptions };
  consumedWakeAtMs?: number;
  /**
   * Buckets (`nodearray\u0000machinetype`) this run recorded a partial gang for. The failure is
   * remembered for everyone else, but this run's immediate re-plan may still try ANOTHER group of
   * the same bucket: a placement group that could not grow says little about a fresh one.
   */
  gangFailures: Set<string>;
}

class ClaimLost extends Error {}

/**
 * Plans and submits one request (scale or terminate), or continues it from wherever a previous
 * delivery stopped. Throws only for transient failures (CycleCloud or storage unreachable,
 * throttling, an outcome still unknown after the bounded reconcile rounds).
 */
export interface ProcessOptions {
  /** This run was woken by the backoff wake-up sent for this `nextAttemptAtMs`: that wake-up is used up. */
  consumedWakeAtMs?: number;
}

export async function processEntry(deps: SubmitDeps, requestId: string, logger: Logger, options: ProcessOptions = {}): Promise<ProcessResult> {
  const entry = await deps.ledger.get(requestId);
  if (!entry?.request) return { requestId, action: 'missing', state: entry?.record.state ?? null };
  if (isFinal(entry)) {
    await deps.onFinal?.(entry);
    return { requestId, action: 'final', state: entry.record.state };
  }
  const c = deps.config ?? {};
  const ctx: Ctx = {
    deps,
    logger: logger.child({ requestId, cluster: entry.record.cluster }),
    requestId,
    cluster: entry.record.cluster,
    ...(options.consumedWakeAtMs !== undefined ? { consumedWakeAtMs: options.consumedWakeAtMs } : {}),
    gangFailures: new Set(),
    cfg: {
      maxReplanAttempts: c.maxReplanAttempts ?? 3,
      snapshotMaxAgeMs: c.snapshotMaxAgeMs ?? 120_000,
      backoffMinMs: c.backoffMinMs ?? 15_000,
      backoffMaxMs: c.backoffMaxMs ?? 300_000,
      maxSubmitRounds: c.maxSubmitRounds ?? 3,
      lookupGraceMs: c.lookupGraceMs ?? 5_000,
      ...(c.planOptions ? { planOptions: c.planOptions } : {}),
    },
  };
  const request = entry.request;
  try {
    return request.kind === 'terminate' ? await processTerminate(ctx, entry, request) : await processScale(ctx, entry, request);
  } catch (error) {
    // CycleCloud throttled, unavailable, timing out, or an outcome still unknown: the request waits
    // with a backoff (a 429's Retry-After wins) and a reason instead of burning queue deliveries,
    // which would end in the poison queue within seconds. Storage failures still throw (the host retries).
    if (!isCycleCloudError(error) && !(error instanceof SubmitError)) throw error;
    const current = await deps.ledger.get(requestId);
    if (!current || isFinal(current)) return done(current ?? entry, 'final');
    const code = error.code;
    const delay = isCycleCloudError(error) ? { minMs: error.retryAfterMs ?? 0 } : error.retryInMs !== undefined ? { exactMs: error.retryInMs } : {};
    ctx.logger.warn('CycleCloud did not settle this run; the request waits and tries again', { code, error, ...delay });
    return wait(ctx, current, `waiting for CycleCloud (${code}): ${error.message}`, 'waiting', delay);
  }
}

const update = (ctx: Ctx, mutate: (e: LedgerEntry) => LedgerEntry | void): Promise<LedgerEntry> => ctx.deps.ledger.update(ctx.requestId, mutate);

// ---------------------------------------------------------------------------------------------
// Scale requests

async function processScale(ctx: Ctx, start: LedgerEntry, request: ScaleRequest): Promise<ProcessResult> {
  const { deps } = ctx;
  let entry = start;
  // 1. Attempts whose outcome we do not know (crash or ambiguous error after the intent).
  for (const a of entry.attempts) {
    if (a.state === 'intent' || a.state === 'unknown') entry = await submitAttempt(ctx, entry, request, a, false);
  }
  // 2. Every accepted create is followed by the tracker (start is idempotent on the CycleCloud
  //    requestId; it compensates partial gangs, so the loop below re-plans them).
  const compensated = new Set((entry.compensations ?? []).map(gangOf));
  await startTracking(ctx, entry, request);

  for (let round = 0; round <= ctx.cfg.maxReplanAttempts + 1; round++) {
    entry = await update(ctx, (e) => settle(e, deps.now()));
    rememberGangFailures(ctx, entry, compensated);
    if (isFinal(entry)) return done(entry, 'final');
    // A create another worker recorded since this run read the entry may be in flight: nothing new
    // is planned until it is resolved (incident b-13: a second generation planned while g0 was in
    // flight created the request's node twice).
    const inFlight = entry.attempts.find(inFlightAttempt);
    if (inFlight) {
      entry = await submitAttempt(ctx, entry, request, inFlight, false);
      await startTracking(ctx, entry, request, inFlight.cycleCloudRequestId);
      continue;
    }
    const open = openRemaining(entry);
    if (Object.keys(open).length === 0) return done(entry, 'tracking');
    const nowMs = deps.now();
    if (nowMs >= entry.deadlineAtMs) {
      entry = await update(ctx, (e) => {
        let x = e;
        for (const k of Object.keys(openRemaining(x))) {
          const d = x.record.demands[Number(k)]!;
          x = closeDemand(x, d.index, `request deadline passed${d.reason ? `: ${d.reason}` : ''}`, nowMs);
        }
        return settle(x, nowMs);
      });
      return done(entry, isFinal(entry) ? 'final' : 'tracking');
    }
    if (await deps.state.isPaused()) return wait(ctx, entry, 'scale-out is paused', 'paused');

    let snapshot: ClusterSnapshot | null;
    try {
      snapshot = await deps.snapshots.getFresh(ctx.cluster, ctx.cfg.snapshotMaxAgeMs);
    } catch (error) {
      if (!(error instanceof SnapshotUnavailableError)) throw error;
      if (error.permanent && !entry.attempts.some((a) => a.state === 'accepted')) {
        // CycleCloud says the cluster does not exist: waiting cannot help.
        entry = await update(ctx, (e) => setState(e, 'rejected', error.message, nowMs));
        ctx.logger.warn('scale request rejected: unknown cluster', { reason: error.message });
        return done(entry, 'final');
      }
      // Planning freezes on a stale cluster: the request waits with the snapshot's own reason.
      return wait(ctx, entry, error.message);
    }
    if (!snapshot) return wait(ctx, entry, `no snapshot of cluster ${ctx.cluster} is available yet`);
    const parsedTakenAt = Date.parse(snapshot.takenAt);
    const takenAtMs = Number.isFinite(parsedTakenAt) ? parsedTakenAt : 0;
    const backoffs = (await deps.capacity.active(ctx.cluster, nowMs)).filter((b) => !ctx.gangFailures.has(bucketKey(b.nodearray, b.machineType)));
    const generation = nextGeneration(entry);
    const cc = createRequestId(ctx.requestId, generation);
    const submittedBefore = entry.attempts.some((a) => a.state === 'accepted');
    const excluded = excludedPlacementGroups(entry);
    // Plan and reserve in one conditional write of the cluster's reservation row: a concurrent plan
    // that reserved first makes this one plan again on what it reserved (no over-ask).
    let plan: Plan;
    try {
      plan = await deps.reservations.reserve(
        ctx.cluster,
        (items) => {
          const planStartedAt = performance.now();
          const p = (deps.plan ?? defaultPlan)({
            request,
            snapshot,
            inFlight: inFlightOf(items, takenAtMs),
            backoffs,
            nowMs,
            generation,
            remaining: open,
            excludedPlacementGroups: excluded,
            ...(ctx.cfg.planOptions ? { options: ctx.cfg.planOptions } : {}),
          });
          ctx.logger.metric('plan_latency_ms', performance.now() - planStartedAt, { cluster: ctx.cluster, demands: request.demands.length });
          const rejecting = !submittedBefore && p.demands.some((d) => d.status === 'rejected');
          if (p.sets.length === 0 || rejecting) return { reservation: null, result: p };
          const sets = p.sets.map((s) => ({ nodearray: s.nodearray, machineType: s.machineType, placementGroupId: s.placementGroupId, count: s.count }));
          return { reservation: { cycleCloudRequestId: cc, requestId: ctx.requestId, sets, reservedAtMs: nowMs }, result: p };
        },
        takenAtMs,
      );
    } catch (error) {
      // The timer pruned the reservations with a newer snapshot than this plan's: plan again on it.
      if (!(error instanceof SnapshotBehindReservationsError)) throw error;
      ctx.logger.debug('snapshot older than the reservations; planning again on the latest', { takenAt: snapshot.takenAt });
      continue;
    }

    const rejected = plan.demands.filter((d) => d.status === 'rejected');
    if (rejected.length > 0 && !submittedBefore) {
      // docs/api.md §3: a demand that can never be placed rejects the request, naming the limit.
      const reason = rejected.map((d) => labelled(d.index, d.reason ?? d.code ?? 'cannot be placed')).join('; ');
      entry = await update(ctx, (e) => {
        for (const d of rejected) if (e.record.demands[d.index]) e.record.demands[d.index]!.reason = d.reason;
        return setState(e, 'rejected', reason, nowMs);
      });
      ctx.logger.warn('scale request rejected by the planner', { reason });
      return done(entry, 'final');
    }
    entry = await update(ctx, (e) => {
      let x = e;
      for (const d of rejected) x = closeDemand(x, d.index, d.reason ?? 'cannot be placed', nowMs);
      for (const d of plan.demands) {
        if (d.status !== 'placed' && d.status !== 'skipped' && d.status !== 'rejected' && x.record.demands[d.index]) x.record.demands[d.index]!.reason = d.reason;
        if (d.nodearray !== null && x.record.demands[d.index]) Object.assign(x.record.demands[d.index]!, planChoice(d));
      }
      return x;
    });
    if (plan.sets.length === 0) {
      const reasons = plan.demands
        .filter((d) => d.reason)
        .map((d) => labelled(d.index, d.reason!))
        .join('; ');
      if (Object.keys(openRemaining(entry)).length === 0) continue; // only closed demands left: settle next round
      return wait(ctx, entry, reasons || 'nothing could be placed yet');
    }

    // 4. Intent (the claim), then the create.
    const intent: SubmissionAttempt = {
      generation,
      cycleCloudRequestId: cc,
      state: 'intent',
      operationId: null,
      sets: plan.sets.map((s) => ({
        nodearray: s.nodearray,
        machineType: s.machineType,
        placementGroupId: s.placementGroupId,
        count: s.count,
        added: null,
        message: null,
        demands: s.demands,
        ...namingOf(s.set),
      })),
      submittedAtMs: nowMs,
    };
    let claimedByOther = false;
    try {
      entry = await update(ctx, (e) => {
        // The claim holds only on the entry this plan was made on: no create in flight, none added since.
        claimedByOther = e.attempts.some((a) => a.cycleCloudRequestId === cc);
        if (isFinal(e) || e.attempts.some(inFlightAttempt) || nextGeneration(e) !== generation) throw new ClaimLost();
        const x = applySubmission(e, intent, nowMs);
        return x.record.state === 'queued' ? setState(x, 'planning', null, nowMs) : x;
      });
    } catch (error) {
      if (error instanceof ClaimLost) {
        // Another worker moved the request on: this plan is void, and so is its reservation, unless
        // that worker claimed this very create (same generation, same key): then the row holds its.
        if (!claimedByOther) await deps.reservations.release(ctx.cluster, cc);
        return done(entry, 'skipped');
      }
      throw error;
    }
    ctx.logger.info('create intent recorded', { cycleCloudRequestId: intent.cycleCloudRequestId, generation, sets: intent.sets.length });
    entry = await submitAttempt(
      ctx,
      entry,
      request,
      intent,
      true,
      plan.sets.map((s) => s.set),
    );
    const before = entry.compensations?.length ?? 0;
    // 5. Hand it to the tracker, which compensates a partial colocated set before it returns.
    await startTracking(ctx, entry, request, intent.cycleCloudRequestId);
    entry = await noteShortfalls(ctx, request, intent.cycleCloudRequestId);
    const replan = (entry.compensations?.length ?? 0) > before;
    if (!replan) {
      entry = await update(ctx, (e) => settle(e, deps.now()));
      if (isFinal(entry)) return done(entry, 'final');
      const remaining = openRemaining(entry);
      if (Object.keys(remaining).length === 0) return done(entry, 'submitted');
      const why = Object.keys(remaining)
        .map((k) => entry.record.demands[Number(k)]!.reason)
        .filter(Boolean)
        .join('; ');
      return wait(ctx, entry, why || 'some demands are not placed yet', 'submitted');
    }
    // A partial gang was compensated: re-plan the demand now (bounded by the round count).
  }
  return wait(ctx, entry, 'still re-planning after compensation');
}

/** An attempt whose create may have reached CycleCloud and whose outcome is not recorded yet. */
const inFlightAttempt = (a: SubmissionAttempt): boolean => a.state === 'intent' || a.state === 'unknown';

/** The generation of the next create of this request. */
const nextGeneration = (e: LedgerEntry): number => e.attempts.reduce((m, a) => Math.max(m, a.generation + 1), 0);

function done(entry: LedgerEntry, action: ProcessResult['action']): ProcessResult {
  return { requestId: entry.record.requestId, action, state: entry.record.state };
}

/**
 * Puts the request back to wait: a `continue` message with a visibility delay (15 s doubling to
 * 5 min, never past the deadline by more than a moment), unless one is already scheduled. The
 * message is sent before the ledger says so: a crash in between leaves a harmless extra wake-up,
 * never a request nobody wakes.
 */
async function wait(
  ctx: Ctx,
  entry: LedgerEntry,
  reason: string,
  action: ProcessResult['action'] = 'waiting',
  delay: { minMs?: number; exactMs?: number } = {},
): Promise<ProcessResult> {
  const nowMs = ctx.deps.now();
  const waits = entry.waits ?? 0;
  const backoff = Math.min(ctx.cfg.backoffMaxMs, ctx.cfg.backoffMinMs * 2 ** Math.min(waits, 20));
  // Past the deadline a request only waits to resolve a create that may exist: keep the backoff.
  const untilDeadline = entry.deadlineAtMs - nowMs + 1000;
  const delayMs = delay.exactMs !== undefined ? Math.max(1000, delay.exactMs) : Math.max(1000, delay.minMs ?? 0, untilDeadline > 1000 ? Math.min(backoff, untilDeadline) : backoff);
  // A wake-up is pending unless none was sent, it is due, or it is the one that woke this run.
  const scheduled = entry.nextAttemptAtMs !== null && entry.nextAttemptAtMs > nowMs && entry.nextAttemptAtMs !== ctx.consumedWakeAtMs;
  const wakeAtMs = nowMs + delayMs;
  if (!scheduled)
    await ctx.deps.queue.send({ $scaler: 'continue', requestId: ctx.requestId, reason: WAIT_REASON, wakeAtMs } satisfies ContinueMessage, { visibilityDelayMs: delayMs });
  const submitted = entry.attempts.some((a) => a.state === 'accepted');
  const next = await update(ctx, (e) => {
    if (isFinal(e)) return e;
    const x = setState(e, submitted ? 'submitted' : 'queued', reason, nowMs);
    if (!scheduled) {
      x.nextAttemptAtMs = wakeAtMs;
      x.waits = waits + 1;
    }
    return x;
  });
  ctx.logger.info('request waiting', { reason, delayMs: scheduled ? undefined : delayMs });
  return done(next, action);
}

/** Rebuilds CycleCloud's sets from an attempt (after a crash the plan is not re-derived: the intent is the truth). */
function wireSets(request: ScaleRequest, attempt: SubmissionAttempt): NodeCreationRequestSet[] {
  return attempt.sets.map((s) => {
    const set: NodeCreationRequestSet = { nodearray: s.nodearray, count: s.count, definition: { machineType: s.machineType } };
    if (s.placementGroupId) set.placementGroupId = s.placementGroupId;
    const attrs = request.demands[s.demands[0]?.index ?? -1]?.nodeAttributes;
    if (attrs) set.nodeAttributes = attrs;
    Object.assign(set, namingOf(s));
    return set;
  });
}

/** Every node the scaler creates carries its tags (src/cyclecloud/tags.ts): whose it is, under which create. */
function marked(sets: NodeCreationRequestSet[], requestId: string, cycleCloudRequestId: string): NodeCreationRequestSet[] {
  return sets.map((set) => ({ ...set, nodeAttributes: markAttributes(set.nodeAttributes, { requestId, cycleCloudRequestId }) }));
}

/** A named set's `nameFormat`/`nameOffset` (src/planning/named.ts), kept in the intent so a retry after a crash names the same nodes. */
function namingOf(s: { nameFormat?: string | undefined; nameOffset?: number | undefined }): { nameFormat?: string; nameOffset?: number } {
  return s.nameFormat === undefined ? {} : { nameFormat: s.nameFormat, ...(s.nameOffset === undefined ? {} : { nameOffset: s.nameOffset }) };
}

/**
 * Brings one attempt to a known outcome: create (when it surely was not sent), or look it up by
 * request id and adopt what CycleCloud has, creating again with the same id only when CycleCloud
 * has nothing. Permanent CycleCloud refusals close the attempt's demands with what CycleCloud said.
 */
async function submitAttempt(
  ctx: Ctx,
  entry: LedgerEntry,
  request: ScaleRequest,
  attempt: SubmissionAttempt,
  surelyUnsent: boolean,
  sets?: NodeCreationRequestSet[],
): Promise<LedgerEntry> {
  const { deps } = ctx;
  const cc = attempt.cycleCloudRequestId;
  let unsent = surelyUnsent;
  let lastError: unknown;
  // When this create may last have reached CycleCloud: a list that lags may not show it until later.
  let lastSentAtMs = Math.max(attempt.sentAtMs ?? 0, attempt.submittedAtMs);
  for (let round = 0; round < ctx.cfg.maxSubmitRounds; round++) {
    if (!unsent) {
      const found = await lookupCreate(ctx, attempt);
      if (found) {
        ctx.logger.info('create reconciled by request id', { cycleCloudRequestId: cc, nodes: found.sets.reduce((n, s) => n + (s.added ?? 0), 0) });
        return recordAccepted(ctx, found);
      }
      const nowMs = deps.now();
      if (nowMs >= entry.deadlineAtMs) {
        // CycleCloud has nothing under this id and the request's time is up: it is not sent again.
        ctx.logger.warn('create never reached CycleCloud; not sent after the request deadline', { cycleCloudRequestId: cc });
        await deps.reservations.release(ctx.cluster, cc);
        return update(ctx, (e) => {
          let x = applySubmission(e, { ...attempt, state: 'failed' }, nowMs);
          for (const s of attempt.sets) for (const d of s.demands) x = closeDemand(x, d.index, 'request deadline passed before CycleCloud accepted the create', nowMs);
          return x;
        });
      }
      const age = nowMs - lastSentAtMs;
      if (age < ctx.cfg.lookupGraceMs) {
        // Not listed yet may be a list lagging the create: look again before sending it again.
        throw new SubmitError('SUBMIT_NOT_LISTED_YET', `create ${cc}: CycleCloud does not list it (yet); looking again before sending it again`, {
          retryInMs: ctx.cfg.lookupGraceMs - age,
        });
      }
      // Sent again: the time is on record first, so a later run waits out a lagging list after it too.
      lastSentAtMs = nowMs;
      await update(ctx, (e) => {
        const a = e.attempts.find((x) => x.cycleCloudRequestId === cc);
        if (a && (a.state === 'intent' || a.state === 'unknown')) a.sentAtMs = nowMs;
      });
    }
    try {
      const result = await deps.cyclecloud.createNodes(ctx.cluster, { requestId: cc, sets: marked(sets ?? wireSets(request, attempt), ctx.requestId, cc) });
      const accepted: SubmissionAttempt = {
        ...attempt,
        state: 'accepted',
        operationId: result.operationId,
        sets: attempt.sets.map((s, i) => ({ ...s, added: result.sets[i]?.added ?? 0, message: result.sets[i]?.message ?? null })),
      };
      ctx.logger.info('create accepted', { cycleCloudRequestId: cc, operationId: result.operationId, added: accepted.sets.map((s) => s.added) });
      ctx.logger.metric('create_calls', 1, { cluster: ctx.cluster });
      ctx.logger.metric(
        'nodes_requested',
        accepted.sets.reduce((n, s) => n + (s.added ?? 0), 0),
        { cluster: ctx.cluster },
      );
      const short = accepted.sets.filter((s) => (s.added ?? 0) < s.count).length;
      if (short > 0) {
        // CycleCloud had less than the plan asked for: someone else took capacity, or a quota or
        // placement-group limit the status did not show. Counted for /api/health.
        ctx.logger.metric('over_ask', short, { cluster: ctx.cluster });
        await deps.state.increment?.('overAsk');
      }
      return recordAccepted(ctx, accepted);
    } catch (error) {
      if (!isCycleCloudError(error)) throw error;
      lastError = error;
      if (isAmbiguous(error)) {
        ctx.logger.warn('create outcome unknown; reconciling by request id', { cycleCloudRequestId: cc, code: error.code });
        unsent = false;
        continue;
      }
      if (isPermanent(error)) {
        const said = `CycleCloud refused the create: ${error.message}`;
        ctx.logger.warn('create refused', { cycleCloudRequestId: cc, code: error.code });
        await deps.reservations.release(ctx.cluster, cc);
        return update(ctx, (e) => {
          let x = applySubmission(e, { ...attempt, state: 'failed' }, deps.now());
          for (const s of attempt.sets) for (const d of s.demands) x = closeDemand(x, d.index, said, deps.now());
          return x;
        });
      }
      // Throttled, unavailable, auth, network before sending: nothing was created; the intent stays
      // and the queue delivers again (the next delivery reconciles first).
      throw error;
    }
  }
  await update(ctx, (e) => {
    const a = e.attempts.find((x) => x.cycleCloudRequestId === cc);
    if (a && a.state === 'intent') return applySubmission(e, { ...a, state: 'unknown' }, deps.now());
  });
  throw new SubmitError('SUBMIT_UNRESOLVED', `create ${cc}: outcome still unknown after ${ctx.cfg.maxSubmitRounds} rounds`, { cause: lastError });
}

async function recordAccepted(ctx: Ctx, answered: SubmissionAttempt): Promise<LedgerEntry> {
  const acceptedAtMs = ctx.deps.now();
  const accepted: SubmissionAttempt = { ...answered, acceptedAtMs };
  // The reservation now holds what CycleCloud added, until a snapshot started after now counts it.
  await ctx.deps.reservations.accepted(
    ctx.cluster,
    accepted.cycleCloudRequestId,
    accepted.sets.map((s) => s.added ?? 0),
    acceptedAtMs,
  );
  return update(ctx, (e) => {
    const known = e.attempts.find((a) => a.cycleCloudRequestId === accepted.cycleCloudRequestId);
    if (known?.state === 'accepted') return e; // another delivery recorded it first
    const x = applySubmission(e, accepted, ctx.deps.now());
    if (accepted.sets.some((s) => (s.added ?? 0) > 0)) x.waits = 0;
    x.nextAttemptAtMs = null;
    return x;
  });
}

/**
 * Looks a create up by request id (its operation id stays unknown: nothing documented says it);
 * null when CycleCloud has none: neither the lookup nor the full node list (by the scaler's tags)
 * shows a node of it. Nodes are grouped back to the attempt's sets.
 */
async function lookupCreate(ctx: Ctx, attempt: SubmissionAttempt): Promise<SubmissionAttempt | null> {
  const cc = attempt.cycleCloudRequestId;
  const list = await operationNodes(ctx.deps.cyclecloud, ctx.cluster, { operationId: null, cycleCloudRequestId: cc, tagged: true });
  if (list.unknownById && list.nodes.length === 0) return null;
  const operationId = null;
  const added = attempt.sets.map(() => 0);
  const lower = (s: string | undefined) => (s ?? '').toLowerCase();
  const leftovers: typeof list.nodes = [];
  for (const n of list.nodes) {
    const i = attempt.sets.findIndex(
      (s, k) =>
        added[k]! < s.count &&
        (!n.Template || n.Template === s.nodearray) &&
        (!n.MachineType || lower(n.MachineType) === lower(s.machineType)) &&
        (n.PlacementGroupId ?? null) === s.placementGroupId,
    );
    if (i >= 0) added[i]!++;
    else leftovers.push(n);
  }
  for (const n of leftovers) {
    const i = attempt.sets.findIndex((s, k) => added[k]! < s.count && (!n.Template || n.Template === s.nodearray));
    if (i >= 0) added[i]!++;
  }
  return {
    ...attempt,
    state: 'accepted',
    operationId,
    sets: attempt.sets.map((s, i) => ({
      ...s,
      added: added[i]!,
      message: added[i]! < s.count ? `reconciled: CycleCloud had ${added[i]} of ${s.count} nodes under ${cc}` : null,
    })),
  };
}

const bucketKey = (nodearray: string, machineType: string): string => `${nodearray}\u0000${machineType.toLowerCase()}`;

const colocatedSet = (request: ScaleRequest, s: SubmissionAttempt['sets'][number]): boolean =>
  s.placementGroupId !== null && s.demands.some((d) => request.demands[d.index]?.colocated === true || request.demands[d.index]?.placementGroupId !== undefined);

/** Starts the tracker for every accepted create (or only `only`) whose operation is still pending. */
async function startTracking(ctx: Ctx, entry: LedgerEntry, request: ScaleRequest, only?: string): Promise<void> {
  for (const a of entry.attempts) {
    if (a.state !== 'accepted' || (only !== undefined && a.cycleCloudRequestId !== only)) continue;
    const op = entry.record.operations.find((o) => o.cycleCloudRequestId === a.cycleCloudRequestId);
    if (op && op.state !== 'pending') continue;
    const t: TrackStart = {
      cluster: ctx.cluster,
      operationId: a.operationId,
      cycleCloudRequestId: a.cycleCloudRequestId,
      requestId: ctx.requestId,
      action: 'create',
      generation: a.generation,
      sets: a.sets.map((s) => ({
        nodearray: s.nodearray,
        machineType: s.machineType,
        placementGroupId: s.placementGroupId,
        count: s.count,
        added: s.added ?? 0,
        colocated: colocatedSet(request, s),
        demands: s.demands,
      })),
    };
    await ctx.deps.tracker.start(t);
  }
}

const gangOf = (c: { placementGroupId: string | null; demandIndex: number }): string => `${c.placementGroupId}\u0000${c.demandIndex}`;

/**
 * Partial gangs the tracker compensated since `known` was taken (those with CycleCloud's `added`):
 * their failure is remembered for everyone else, but this run's re-plan may still try another
 * group of the same bucket (`Ctx.gangFailures`).
 */
function rememberGangFailures(ctx: Ctx, entry: LedgerEntry, known: Set<string>): void {
  for (const c of entry.compensations ?? []) {
    if (c.added === undefined || known.has(gangOf(c))) continue;
    known.add(gangOf(c));
    const s = entry.attempts.flatMap((a) => a.sets).find((x) => x.placementGroupId === c.placementGroupId && x.demands.some((d) => d.index === c.demandIndex));
    if (s) ctx.gangFailures.add(bucketKey(s.nodearray, s.machineType));
  }
}

/**
 * What the create just accepted fell short of. Loose sets: a reason on their demands and a capacity
 * failure; their remainder waits and is retried. Colocated sets were compensated by the tracker
 * (`src/tracking/partial-gangs.ts`) when it took the create over. Returns the entry as the ledger has it now.
 */
async function noteShortfalls(ctx: Ctx, request: ScaleRequest, cycleCloudRequestId: string): Promise<LedgerEntry> {
  const { deps } = ctx;
  let current = (await deps.ledger.get(ctx.requestId))!;
  const a = current.attempts.find((x) => x.cycleCloudRequestId === cycleCloudRequestId && x.state === 'accepted');
  for (const s of a?.sets ?? []) {
    const added = s.added ?? 0;
    if (added >= s.count) continue;
    if (colocatedSet(request, s)) continue; // compensated by the tracker (rememberGangFailures)
    const said = s.message ? `: ${s.message}` : '';
    const reason = `CycleCloud added ${added} of ${s.count} nodes on ${s.nodearray}/${s.machineType}${said}; the rest waits and is retried`;
    await deps.capacity.recordFailure(
      { cluster: ctx.cluster, nodearray: s.nodearray, machineType: s.machineType, reason: `CycleCloud added ${added} of ${s.count}${said}`, failedAtMs: deps.now() },
      deps.now(),
    );
    current = await update(ctx, (e) => {
      for (const d of s.demands) if (e.record.demands[d.index]) e.record.demands[d.index]!.reason = reason;
    });
  }
  return current;
}

// ---------------------------------------------------------------------------------------------
// Terminate requests

async function processTerminate(ctx: Ctx, start: LedgerEntry, request: TerminateRequest): Promise<ProcessResult> {
  const { deps } = ctx;
  let entry = start;
  const cc = terminateRequestId(ctx.requestId);
  const existing = entry.record.operations.find((o) => o.cycleCloudRequestId === cc);
  if (existing) {
    // Already sent; make sure the tracker follows it (idempotent) and stop.
    await deps.tracker.start({
      cluster: ctx.cluster,
      operationId: existing.operationId,
      cycleCloudRequestId: cc,
      requestId: ctx.requestId,
      action: request.action === 'start' ? 'start' : 'terminate',
      generation: 0,
      sets: [],
      nodeNames: entry.record.nodes.map((n) => n.name),
    });
    entry = await update(ctx, (e) => settle(e, deps.now()));
    return done(entry, isFinal(entry) ? 'final' : 'tracking');
  }
  const nowMs = deps.now();
  const hadIntent = entry.attempts.some((a) => a.cycleCloudRequestId === cc);
  if (!hadIntent) {
    try {
      entry = await update(ctx, (e) => {
        if (e.attempts.some((a) => a.cycleCloudRequestId === cc)) throw new ClaimLost();
        return setState(
          applySubmission(e, { generation: 0, cycleCloudRequestId: cc, state: 'intent', operationId: null, sets: [], submittedAtMs: nowMs }, nowMs),
          'planning',
          null,
          nowMs,
        );
      });
    } catch (error) {
      if (error instanceof ClaimLost) return done(entry, 'skipped');
      throw error;
    }
  }
  const target = {
    ...(request.ids ? { ids: request.ids } : {}),
    ...(request.names ? { names: request.names } : {}),
    ...(request.hostnames ? { hostnames: request.hostnames } : {}),
    ...(request.ipAddresses ? { ip_addresses: request.ipAddresses } : {}),
    ...(request.filter ? { filter: request.filter } : {}),
  };
  let result: TerminateResult;
  try {
    // Sent, resolved and handed to the tracker in one place (`src/tracking/terminate.ts`).
    result = await deps.tracker.terminate({
      cluster: ctx.cluster,
      requestId: ctx.requestId,
      cycleCloudRequestId: cc,
      generation: 0,
      action: request.action ?? 'terminate',
      target,
      rounds: ctx.cfg.maxSubmitRounds,
    });
  } catch (error) {
    if (isCycleCloudError(error) && isAmbiguous(error)) {
      throw new SubmitError('SUBMIT_UNRESOLVED', `terminate ${cc}: outcome still unknown after ${ctx.cfg.maxSubmitRounds} rounds`, { cause: error });
    }
    if (isCycleCloudError(error) && isPermanent(error)) {
      entry = await update(ctx, (e) => {
        const x = applySubmission(e, { generation: 0, cycleCloudRequestId: cc, state: 'failed', operationId: null, sets: [], submittedAtMs: nowMs }, nowMs);
        x.record.state = 'failed';
        x.record.reason = `CycleCloud refused the terminate: ${error.message}`;
        return x;
      });
      return done(entry, 'final');
    }
    throw error;
  }
  const matched = new Set(result.nodes.flatMap((n) => [n.name, n.id ?? '']));
  const unmatched = [...(request.names ?? []), ...(request.ids ?? [])].filter((x) => !matched.has(x));
  const errors = result.nodes.filter((n) => n.status === 'Error');
  entry = await update(ctx, (e) => {
    const x = applySubmission(e, { generation: 0, cycleCloudRequestId: cc, state: 'accepted', operationId: result.operationId, sets: [], submittedAtMs: nowMs }, deps.now());
    const op = x.record.operations.find((o) => o.cycleCloudRequestId === cc);
    if (op) op.action = request.action === 'start' ? 'start' : 'terminate';
    x.record.nodes = result.nodes.map((n) => ({ name: n.name, id: n.id, status: n.status, demand: null }));
    x.nodeOutcomes = Object.fromEntries(result.nodes.map((n) => [nodeKey(n), n.status === 'Error' ? 'failed' : 'pending']));
    const notes: string[] = [];
    if (unmatched.length) notes.push(`matched no node: ${unmatched.slice(0, 20).join(', ')}${unmatched.length > 20 ? ` and ${unmatched.length - 20} more` : ''}`);
    if (errors.length)
      notes.push(
        `CycleCloud refused ${errors.length}: ${errors
          .slice(0, 5)
          .map((n) => `${n.name} (${n.error ?? 'error'})`)
          .join(', ')}`,
      );
    if (result.nodes.length === 0 || result.nodes.every((n) => n.status === 'Error')) {
      if (op) op.state = 'done';
    }
    x.record.reason = notes.length ? notes.join('; ') : null;
    return settle(x, deps.now());
  });
  ctx.logger.info('terminate submitted', { operationId: result.operationId, nodes: result.nodes.length, unmatched: unmatched.length });
  return done(entry, isFinal(entry) ? 'final' : 'submitted');
}

/** `demand <i>: <reason>`, unless the planner's reason already starts by naming its demand. */
function labelled(index: number, reason: string): string {
  return reason.startsWith(`demand ${index} `) ? reason : `demand ${index}: ${reason}`;
}
