/** Terminate (and shutdown, deallocate, start) requests: one CycleCloud call through the tracker's one terminate path. */
import { isAmbiguous, isCycleCloudError, isPermanent } from '../cyclecloud/errors.ts';
import type { ContinueMessage, TerminateResult } from '../tracking/types.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import type { TerminateRequest } from '../ledger/schemas.ts';
import { applyNodeStates, applySubmission, isFinal, nodeKey, outcomeOf, setState, settle, terminateRequestId, type NodeStateUpdate } from '../ledger/record.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import { SubmitError, type ProcessResult, type Ctx, ClaimLost, update, done } from './context.ts';

export async function processTerminate(ctx: Ctx, start: LedgerEntry, request: TerminateRequest): Promise<ProcessResult> {
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
      // By NodeId where CycleCloud's answer gave it: a node created since under the freed name is
      // not the one terminated (the tracker would otherwise follow it and wait for it to go).
      nodeIds: Object.fromEntries(entry.record.nodes.flatMap((n) => (n.id ? [[n.name, n.id] as const] : []))),
    });
    entry = await update(ctx, (e) => settle(e, deps.now()));
    return done(entry, isFinal(entry) ? 'final' : 'tracking');
  }
  const nowMs = deps.now();
  const intent = entry.attempts.find((a) => a.cycleCloudRequestId === cc);
  if (intent) {
    // Another run (the HTTP fast path and the queue delivery of one request, or two instances)
    // recorded this intent moments ago and may be sending it now. Sending it again would get 409,
    // and a terminate's nodes may already be gone from every list, so that answer could not say
    // which nodes it took. The sender records them; this run comes back after the grace, when
    // sending again is how a run that died after its intent is recovered.
    const age = nowMs - Math.max(intent.sentAtMs ?? 0, intent.submittedAtMs);
    if (age < ctx.cfg.lookupGraceMs) {
      const delayMs = ctx.cfg.lookupGraceMs - age;
      await deps.queue.send({ $scaler: 'continue', requestId: ctx.requestId, reason: 'terminate-in-flight' } satisfies ContinueMessage, {
        visibilityDelayMs: Math.max(1000, delayMs),
      });
      ctx.logger.info('terminate in flight in another run; looking again after the grace', { cycleCloudRequestId: cc, delayMs });
      return done(entry, 'skipped');
    }
  } else {
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
    // First answer wins: a run that sent it before this one (and had CycleCloud's own answer, not a
    // 409 and a look-up) has recorded which nodes it took; that is not replaced.
    if (e.record.operations.some((o) => o.cycleCloudRequestId === cc)) return settle(e, deps.now());
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
  if (request.action !== 'start') await updateOwners(ctx, result.nodes);
  return done(entry, isFinal(entry) ? 'final' : 'submitted');
}

/**
 * The scale requests whose nodes a terminate (or a Slurm suspend) took stop counting them: each
 * final owner's record shows the node going, so no record still shows a shut-down node as Ready.
 * Owners are found by the `ccscale-request` tag in the latest snapshot. An open owner is left to
 * the snapshot's reconciliation (a node it still needs may be replaced there).
 */
async function updateOwners(ctx: Ctx, nodes: TerminateResult['nodes']): Promise<void> {
  const taken = nodes.filter((n) => n.status !== 'Error');
  if (taken.length === 0) return;
  let snapshot: ClusterSnapshot | null;
  try {
    snapshot = await ctx.deps.snapshots.getFresh(ctx.cluster, ctx.cfg.snapshotMaxAgeMs);
  } catch {
    return; // no fresh view of the tags: the records catch up at the next reconciliation
  }
  const byOwner = new Map<string, NodeStateUpdate[]>();
  for (const n of taken) {
    const seen = snapshot?.nodes?.find((x) => (n.id && x.id ? x.id === n.id : x.name === n.name));
    const owner = seen?.mark?.requestId;
    if (!owner || owner === ctx.requestId) continue;
    byOwner.set(owner, [...(byOwner.get(owner) ?? []), { name: n.name, id: n.id, status: n.status, demand: null, outcome: 'gone' }]);
  }
  for (const [owner, updates] of byOwner) {
    try {
      await ctx.deps.ledger.update(owner, (e) => {
        if (!isFinal(e)) return e;
        const mine = updates.filter((u) => {
          const ref = e.record.nodes.find((r) => (u.id && r.id ? r.id === u.id : r.name === u.name));
          const outcome = ref ? outcomeOf(e, ref) : undefined;
          return outcome === 'pending' || outcome === 'ready';
        });
        return mine.length > 0 ? applyNodeStates(e, '', mine, ctx.deps.now()) : e;
      });
    } catch (error) {
      ctx.logger.warn("could not mark the terminated nodes in their request's record", { owner, error });
    }
  }
}
