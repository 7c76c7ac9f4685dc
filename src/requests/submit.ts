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
 *
 * The parts: `context.ts` (deps, settings, the run's context, wait/done), `batch.ts` (group commit:
 * plan, reserve, claim and send a window's requests together), `create-sender.ts` (one create to a
 * known outcome), `handoff.ts` (to the tracker and back), `terminate-run.ts` (terminate requests).
 */
import { isCycleCloudError } from '../cyclecloud/errors.ts';
import type { Logger } from '../platform/log.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import type { ScaleRequest } from '../ledger/schemas.ts';
import { closeDemand, createRequestId, excludedPlacementGroups, isFinal, openRemaining, setState, settle } from '../ledger/record.ts';
import {
  SnapshotUnavailableError,
  type SubmitDeps,
  SubmitError,
  type ProcessResult,
  type Ctx,
  type ProcessOptions,
  update,
  inFlightAttempt,
  nextGeneration,
  done,
  wait,
  bucketKey,
  labelled,
} from './context.ts';
import { senderOf } from './create-sender.ts';
import { startTracking, gangOf, rememberGangFailures, noteShortfalls } from './handoff.ts';
import { type BatchMember, annotate, flushCreates } from './batch.ts';
import { processTerminate } from './terminate-run.ts';
export * from './context.ts';
export { createBatcher, type BatchLease, type BatchMember, type CreateBatcher, type MemberOutcome } from './batch.ts';
export { createSender, type CreateSender } from './create-sender.ts';

export async function processEntry(deps: SubmitDeps, requestId: string, logger: Logger, options: ProcessOptions = {}): Promise<ProcessResult> {
  const entry = options.entry ?? (await deps.ledger.get(requestId));
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
    ...(options.traceparent ? { traceparent: options.traceparent } : {}),
    gangFailures: new Set(),
    last: entry,
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
    // The fleet's own governor (a throttle CycleCloud never sent: no HTTP status) is not a backoff:
    // the request comes back when the slot or pause it waits for is due.
    const fleet = isCycleCloudError(error) && error.code === 'CC_THROTTLED' && error.status === undefined && error.retryAfterMs !== undefined;
    const delay = fleet
      ? { exactMs: error.retryAfterMs! }
      : isCycleCloudError(error)
        ? { minMs: error.retryAfterMs ?? 0 }
        : error.retryInMs !== undefined
          ? { exactMs: error.retryInMs }
          : {};
    ctx.logger.warn('CycleCloud did not settle this run; the request waits and tries again', { code, error, ...delay });
    return wait(ctx, current, `waiting for CycleCloud (${code}): ${error.message}`, 'waiting', delay);
  }
}

// ---------------------------------------------------------------------------------------------
// Scale requests

/** The request as the planner sees it: spot-first demands that gave spot up (the tracker's fallback) plan regular. */
export function planned(request: ScaleRequest, entry: LedgerEntry): ScaleRequest {
  const regular = new Set(entry.regularOnly ?? []);
  if (regular.size === 0) return request;
  return { ...request, demands: request.demands.map((d, i) => (regular.has(i) && d.capacity === 'spot-first' ? { ...d, capacity: 'regular' as const } : d)) };
}

async function processScale(ctx: Ctx, start: LedgerEntry, request: ScaleRequest): Promise<ProcessResult> {
  const { deps } = ctx;
  let entry = start;
  // 1. Attempts whose outcome we do not know (crash or ambiguous error after the intent).
  for (const a of entry.attempts) {
    if (a.state === 'intent' || a.state === 'unknown') entry = await senderOf(ctx).submitAttempt(ctx, entry, request, a, false);
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
      entry = await senderOf(ctx).submitAttempt(ctx, entry, request, inFlight, false);
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
    // A colocated demand that still counts part of its gang has a broken gang the tracker has not
    // compensated yet: topping it up would put a stray member into a group about to be written
    // off (chaos: the demand then spanned two groups). It waits; the compensation re-plans it whole.
    for (const k of Object.keys(open).map(Number)) {
      const spec = request.demands[k];
      const requested = entry.record.demands[k]?.requested ?? 0;
      if ((spec?.colocated === true || spec?.placementGroupId !== undefined) && open[k]! < requested) delete open[k];
    }
    // (The sweeper and the tracker wake it; past the deadline it is closed above like any other.)
    if (Object.keys(open).length === 0) return done(entry, 'tracking');
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
    const member: BatchMember = {
      ctx,
      entry,
      request: planned(request, entry),
      snapshot,
      takenAtMs,
      backoffs,
      generation,
      cc: createRequestId(ctx.requestId, generation),
      submittedBefore: entry.attempts.some((a) => a.state === 'accepted'),
      excluded: excludedPlacementGroups(entry),
      open,
      nowMs,
    };
    // Plan, reserve, claim and create with every request of this cluster that joins the same window
    // (one snapshot, one reservation write, one `nodes/create`); alone when there is no window.
    const outcome = deps.batcher ? await deps.batcher.join(ctx.cluster, member, request.demands.length) : (await flushCreates(ctx.cluster, [member]))[0]!;
    if (outcome.kind === 'error') throw outcome.error;
    // The timer pruned the reservations with a newer snapshot than this plan's: plan again on it.
    if (outcome.kind === 'behind') {
      deps.snapshots.forget?.();
      continue;
    }
    if (outcome.kind === 'skipped') return done(outcome.entry ?? entry, 'skipped');
    if (outcome.kind === 'planned') {
      const plan = outcome.plan;
      const rejected = plan.demands.filter((d) => d.status === 'rejected');
      if (rejected.length > 0 && !member.submittedBefore) {
        // docs/api.md §3: a demand that can never be placed rejects the request, naming the limit.
        const reason = rejected.map((d) => labelled(d.index, d.reason ?? d.code ?? 'cannot be placed')).join('; ');
        entry = await update(ctx, (e) => {
          for (const d of rejected) if (e.record.demands[d.index]) e.record.demands[d.index]!.reason = d.reason;
          return setState(e, 'rejected', reason, nowMs);
        });
        ctx.logger.warn('scale request rejected by the planner', { reason });
        return done(entry, 'final');
      }
      entry = await update(ctx, (e) => annotate(e, plan, nowMs));
      const reasons = plan.demands
        .filter((d) => d.reason)
        .map((d) => labelled(d.index, d.reason!))
        .join('; ');
      if (Object.keys(openRemaining(entry)).length === 0) continue; // only closed demands left: settle next round
      return wait(ctx, entry, reasons || 'nothing could be placed yet');
    }
    entry = outcome.entry;
    const intent = outcome.intent;
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
