/**
 * The create sender: brings one create attempt to a known outcome, exactly once. It creates when the
 * attempt surely was not sent, or looks the create up by CycleCloud requestId (and, for a batch
 * member, the batch's id and its own tag) and adopts what CycleCloud has, creating again only when
 * CycleCloud has nothing (a batch member then leaves its batch and goes alone under its own id).
 * Permanent refusals close the attempt's demands with what CycleCloud said. `recordAccepted` and
 * `recordAnswer` write an answer into the reservations and the ledger.
 *
 * The batch flush (src/requests/batch.ts) and the run (src/requests/submit.ts) reach CycleCloud's
 * create only through {@link CreateSender}.
 */
import { isAmbiguous, isCycleCloudError, isPermanent } from '../cyclecloud/errors.ts';
import { operationNodes } from '../cyclecloud/lookup.ts';
import type { NodeCreationRequest, NodeCreationRequestSet, NodeCreationResult } from '../cyclecloud/schemas.ts';
import { markAttributes } from '../cyclecloud/tags.ts';
import type { LedgerEntry, SubmissionAttempt } from '../ledger/types.ts';
import type { ScaleRequest } from '../ledger/schemas.ts';
import { applySubmission, closeDemand } from '../ledger/record.ts';
import { SubmitError, type Ctx, update } from './context.ts';
import { recordCreateAccepted, recordMetric } from '../platform/metrics.ts';
import { SpanKind, startSpan } from '../platform/tracing.ts';

/** Rebuilds CycleCloud's sets from an attempt (after a crash the plan is not re-derived: the intent is the truth). */
export function wireSets(request: ScaleRequest, attempt: SubmissionAttempt): NodeCreationRequestSet[] {
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
export function marked(sets: NodeCreationRequestSet[], requestId: string, cycleCloudRequestId: string, tenant?: string): NodeCreationRequestSet[] {
  return sets.map((set) => ({ ...set, nodeAttributes: markAttributes(set.nodeAttributes, { requestId, cycleCloudRequestId, ...(tenant ? { tenant } : {}) }) }));
}

/** A named set's `nameFormat`/`nameOffset` (src/planning/named.ts), kept in the intent so a retry after a crash names the same nodes. */
export function namingOf(s: { nameFormat?: string | undefined; nameOffset?: number | undefined }): { nameFormat?: string; nameOffset?: number } {
  return s.nameFormat === undefined ? {} : { nameFormat: s.nameFormat, ...(s.nameOffset === undefined ? {} : { nameOffset: s.nameOffset }) };
}

/**
 * Brings one attempt to a known outcome: create (when it surely was not sent), or look it up by
 * request id and adopt what CycleCloud has, creating again with the same id only when CycleCloud
 * has nothing. Permanent CycleCloud refusals close the attempt's demands with what CycleCloud said.
 */
export async function submitAttempt(
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
        // The call's answer was lost (its outcome was counted by error code): its nodes count now
        recordCreateAccepted(ctx.cluster, found, entry.record.createdAt, deps.now());
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
      // A batch member CycleCloud has nothing of leaves its batch and goes alone under its own id:
      // the batch's id stays the original call's, so a batch id CycleCloud knows always means that
      // call applied (and a member none of whose nodes it lists got none).
      lastSentAtMs = nowMs;
      const left = attempt.batch;
      if (left) {
        attempt = { ...attempt };
        delete attempt.batch;
        ctx.logger.info('batch member not in CycleCloud; sending it alone', { cycleCloudRequestId: cc, batch: left });
      }
      await update(ctx, (e) => {
        const a = e.attempts.find((x) => x.cycleCloudRequestId === cc);
        if (a && (a.state === 'intent' || a.state === 'unknown')) {
          a.sentAtMs = nowMs;
          if (left) delete a.batch;
        }
      });
    }
    try {
      const span = startSpan('POST nodes/create', ctx.traceparent, SpanKind.CLIENT, { 'scaler.cluster': ctx.cluster, 'cyclecloud.request_id': attempt.batch ?? cc });
      const result = await deps.cyclecloud
        .createNodes(ctx.cluster, { requestId: attempt.batch ?? cc, sets: marked(sets ?? wireSets(request, attempt), ctx.requestId, cc, request.tenant) })
        .finally(() => span.span.end());
      const accepted: SubmissionAttempt = {
        ...attempt,
        state: 'accepted',
        operationId: result.operationId,
        sets: attempt.sets.map((s, i) => ({ ...s, added: result.sets[i]?.added ?? 0, message: result.sets[i]?.message ?? null })),
      };
      ctx.logger.info('create accepted', { cycleCloudRequestId: cc, operationId: result.operationId, added: accepted.sets.map((s) => s.added) });
      ctx.logger.metric('create_calls', 1, { cluster: ctx.cluster });
      recordMetric('scaler.create.calls', 1, { cluster: ctx.cluster, outcome: 'accepted' });
      recordCreateAccepted(ctx.cluster, accepted, entry.record.createdAt, deps.now());
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
      recordMetric('scaler.create.calls', 1, { cluster: ctx.cluster, outcome: error.code });
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

export async function recordAccepted(ctx: Ctx, answered: SubmissionAttempt): Promise<LedgerEntry> {
  const acceptedAtMs = ctx.deps.now();
  const accepted: SubmissionAttempt = { ...answered, acceptedAtMs };
  // The reservation now holds what CycleCloud added, until a snapshot started after now counts it.
  await ctx.deps.reservations.accepted(
    ctx.cluster,
    accepted.cycleCloudRequestId,
    accepted.sets.map((s) => s.added ?? 0),
    acceptedAtMs,
  );
  return recordAnswer(ctx, accepted);
}

/** The ledger half of {@link recordAccepted} (a batch writes the reservations once for all members). */
export function recordAnswer(ctx: Ctx, accepted: SubmissionAttempt): Promise<LedgerEntry> {
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
export async function lookupCreate(ctx: Ctx, attempt: SubmissionAttempt): Promise<SubmissionAttempt | null> {
  const cc = attempt.cycleCloudRequestId;
  const list = await operationNodes(ctx.deps.cyclecloud, ctx.cluster, {
    operationId: null,
    cycleCloudRequestId: cc,
    tagged: true,
    ...(attempt.batch ? { batchRequestId: attempt.batch } : {}),
  });
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

/** The seam between planning a create and sending it: what the batch flush and the run call. */
export interface CreateSender {
  /** A batch's one `nodes/create` (its sets already tagged per member); never retried here. */
  sendBatch: (ctx: Ctx, request: NodeCreationRequest) => Promise<NodeCreationResult>;
  submitAttempt: typeof submitAttempt;
  recordAccepted: typeof recordAccepted;
  recordAnswer: typeof recordAnswer;
}

/** The sender over CycleCloud's `nodes/create` (the one the run uses unless a test injects another). */
export const createSender: CreateSender = {
  sendBatch: (ctx, request) => ctx.deps.cyclecloud.createNodes(ctx.cluster, request),
  submitAttempt,
  recordAccepted,
  recordAnswer,
};

/** The run's sender: `SubmitDeps.sender` when given (tests, rehearsals), else {@link createSender}. */
export const senderOf = (ctx: Ctx): CreateSender => ctx.deps.sender ?? createSender;
