/**
 * Group commit (docs/architecture.md "Batches"): the requests of one cluster that join a window are
 * planned in one pass against one snapshot, reserved in one write, claimed one ledger write each,
 * and sent as ONE `nodes/create` whose sets carry each member's own tags; each member then gets its
 * share of the answer. A batch of one is a single create under the member's own id.
 */
import { randomBytes } from 'node:crypto';
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import { isAmbiguous, isCycleCloudError, isPermanent } from '../cyclecloud/errors.ts';
import type { NodeCreationRequestSet } from '../cyclecloud/schemas.ts';
import type { CapacityBackoff, Plan } from '../planning/types.ts';
import { planChoice } from '../planning/planner.ts';
import { planNamed as defaultPlan } from '../planning/named.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { LedgerEntry, SubmissionAttempt } from '../ledger/types.ts';
import type { ScaleRequest } from '../ledger/schemas.ts';
import { inFlightOf, SnapshotBehindReservationsError } from './reservations.ts';
import { addInFlight, budgetBlock, capsAllClusters, clusterSize, quotasFor, sharesOf, tenantHoldings, vcpuOf } from './tenant-share.ts';
import { type FairClaim, FairQueue } from '../planning/fair-share.ts';
import { DEFAULT_TENANT } from '../platform/tenants.ts';
import { Batcher, type BatcherOptions } from './batcher.ts';
import { applySubmission, closeDemand, type excludedPlacementGroups, isFinal, type openRemaining, setState } from '../ledger/record.ts';
import { type Ctx, ClaimLost, update, inFlightAttempt, nextGeneration } from './context.ts';
import { marked, namingOf, senderOf } from './create-sender.ts';
import { recordCreateAccepted, recordMetric } from '../platform/metrics.ts';
import { SpanKind, startSpan } from '../platform/tracing.ts';

/** One request's share of a batch, with what its run read before joining. */
export interface BatchMember {
  ctx: Ctx;
  entry: LedgerEntry;
  request: ScaleRequest;
  snapshot: ClusterSnapshot;
  takenAtMs: number;
  backoffs: CapacityBackoff[];
  generation: number;
  /** This member's own create id (`<requestId>-g<n>`): its tags, reservation and tracker. */
  cc: string;
  submittedBefore: boolean;
  excluded: ReturnType<typeof excludedPlacementGroups>;
  open: ReturnType<typeof openRemaining>;
  nowMs: number;
}

/** What the batch did for one member. */
export type MemberOutcome =
  /** The reservations were pruned with a newer snapshot: plan again. */
  | { kind: 'behind' }
  /** Nothing to create for it (placed nothing, or the planner rejects it): its run goes on from the plan. */
  | { kind: 'planned'; plan: Plan }
  /** Another worker moved the request on (or it is in this batch twice): this run stops. */
  | { kind: 'skipped'; entry?: LedgerEntry }
  /** Its intent was recorded and its create sent (and answered, or resolved, or left to reconcile). */
  | { kind: 'sent'; entry: LedgerEntry; intent: SubmissionAttempt }
  | { kind: 'error'; error: unknown };

export type CreateBatcher = Batcher<BatchMember, MemberOutcome>;

/** A cluster-wide claim on sending a batch (the governor's `batch` slot): one batch per cluster across instances. */
export interface BatchLease {
  acquire(pool: 'batch', cluster: string): Promise<string>;
  release(pool: 'batch', cluster: string, id: string): Promise<void>;
}

/**
 * The batcher a composition root hands to every run of one process (`CREATE_WINDOW_MS` and friends).
 * With a lease, each batch holds its cluster's across the fleet while it plans, reserves and sends,
 * so no two instances race on the reservation row; a lease that stays taken makes the members wait
 * (`CC_THROTTLED`, nothing sent) and the next batch takes them up.
 */
export function createBatcher(options: BatcherOptions, lease?: BatchLease, capsAll?: (tenant: string) => boolean): CreateBatcher {
  return new Batcher<BatchMember, MemberOutcome>(options, async (cluster, members) => {
    if (!lease) return flushCreates(cluster, members, options.maxWeight);
    // A tenant capped over every cluster: batches holding one go one at a time fleet-wide, so two
    // clusters' batches cannot each see the other's room (always taken after the cluster's slot).
    const slots = [cluster, ...(capsAll && members.some((m) => capsAll(m.request.tenant ?? DEFAULT_TENANT)) ? [ALL_CLUSTERS_SLOT] : [])];
    const held: [string, string][] = [];
    const giveBack = async () => {
      for (const [slot, id] of held.reverse()) {
        await lease.release('batch', slot, id).catch((error: unknown) => members[0]?.ctx.logger.warn('could not give the batch slot back (it expires)', { error }));
      }
    };
    try {
      for (const slot of slots) held.push([slot, await lease.acquire('batch', slot)]);
    } catch (error) {
      await giveBack();
      return members.map(() => ({ kind: 'error', error }));
    }
    try {
      return await flushCreates(cluster, members, options.maxWeight);
    } finally {
      await giveBack();
    }
  });
}

/** The governor's batch slot for tenants capped over every cluster (no cluster name holds a control character). */
export const ALL_CLUSTERS_SLOT = '\u0000all-clusters';

/** A batch's CycleCloud requestId: new for each batch, so it never collides with a solo create's `<requestId>-g<n>`. */
export const batchRequestId = (nowMs: number): string => `ccb-${nowMs.toString(36)}-${randomBytes(6).toString('hex')}`;

/** Plan codes that mean "no capacity now" (not a stale snapshot, not a demand that can never fit). */
const NO_CAPACITY_CODES: ReadonlySet<string> = new Set(['PLAN_NO_CAPACITY', 'PLAN_CAPACITY_BACKOFF', 'PLAN_NO_PLACEMENT_GROUP_ROOM']);

/**
 * The planner's reasons and choices on the entry, and the demands it rejected closed (a request
 * submitted before is not rejected whole). With `onNoCapacity: "fail"`, a demand left (partly)
 * unplaced for lack of capacity is closed too, with the planner's reason.
 */
export function annotate(e: LedgerEntry, plan: Plan, nowMs: number): LedgerEntry {
  let x = e;
  for (const d of plan.demands.filter((y) => y.status === 'rejected')) x = closeDemand(x, d.index, d.reason ?? 'cannot be placed', nowMs);
  for (const d of plan.demands) {
    if (d.status !== 'placed' && d.status !== 'skipped' && d.status !== 'rejected' && x.record.demands[d.index]) x.record.demands[d.index]!.reason = d.reason;
    if (d.nodearray !== null && x.record.demands[d.index]) Object.assign(x.record.demands[d.index]!, planChoice(d));
  }
  if (e.request?.kind === 'scale' && e.request.onNoCapacity === 'fail') {
    for (const d of plan.demands) {
      if (d.status !== 'rejected' && d.planned < d.requested && d.code !== null && NO_CAPACITY_CODES.has(d.code) && !x.closedDemands?.[d.index]) {
        x = closeDemand(x, d.index, `no capacity now (onNoCapacity: fail): ${d.reason ?? d.code}`, nowMs);
      }
    }
  }
  return x;
}

/**
 * One batch: one planner pass per member in priority then accept order against the newest snapshot
 * any member read and every reservation (earlier members' included), ONE conditional write of the
 * cluster's reservation row, one ledger write per member (annotate and claim together), ONE
 * `nodes/create` whose sets carry each member's own tags, then every member's answer recorded. A
 * batch of one is today's single create, under the member's own id.
 */
export async function flushCreates(cluster: string, members: BatchMember[], maxSets = Number.POSITIVE_INFINITY): Promise<MemberOutcome[]> {
  const out: MemberOutcome[] = members.map(() => ({ kind: 'skipped' }));
  const t0 = performance.now();
  const phases: Record<string, number> = {};
  const mark = (phase: string) => {
    phases[phase] = Math.round(performance.now() - t0);
  };
  // A request in the batch twice (its fast path and its queue delivery): the first one does the work.
  const seen = new Set<string>();
  const live: number[] = [];
  members.forEach((m, i) => {
    if (seen.has(m.ctx.requestId)) return;
    seen.add(m.ctx.requestId);
    live.push(i);
  });
  const deps = members[0]!.ctx.deps;
  const newest = live.map((i) => members[i]!).reduce((a, m) => (m.takenAtMs > a.takenAtMs ? m : a));
  const { snapshot, takenAtMs } = newest;
  // Who goes first when not all fit: the tenant with the smallest weighted dominant share, and inside
  // a tenant higher priority, then accept order (FIFO), then join order (src/planning/fair-share.ts).
  const acceptedAt = (i: number) => members[i]!.entry.record.createdAt;
  const tenantOf = (i: number) => members[i]!.request.tenant ?? DEFAULT_TENANT;
  const fairClaims: FairClaim[] = live.map((i) => ({ key: i, tenant: tenantOf(i), priority: members[i]!.request.priority ?? 0, acceptedAt: acceptedAt(i) }));
  // Tenants past their monthly budget take nothing new: their members wait with the reason.
  const budgeted = deps.budgets && deps.tenants ? fairClaims.filter((c) => deps.tenants!.get(c.tenant)?.budget) : [];
  const spend = budgeted.length > 0 ? await deps.budgets!.spend(deps.now()) : undefined;
  const overBudget = (tenant: string) => budgetBlock(deps.tenants, tenant, spend, deps.budgets?.currency() ?? '');
  // Caps over every cluster (`*`) count what the tenant holds on the other clusters too.
  const elsewhere = deps.holdingsElsewhere && fairClaims.some((c) => capsAllClusters(deps.tenants, c.tenant)) ? await deps.holdingsElsewhere(cluster) : undefined;
  let plans: (Plan | undefined)[];
  // Members past CREATE_MAX_SETS plan again and join the next batch.
  let deferred = new Set<number>();
  try {
    plans = await deps.reservations.reserveMany(
      cluster,
      (items) => {
        const inFlight = inFlightOf(items, takenAtMs);
        const ps: (Plan | undefined)[] = members.map(() => undefined);
        const reservations = [];
        let setCount = 0;
        deferred = new Set();
        // What each tenant holds (tagged nodes, reservations since the snapshot) and takes in this batch.
        // Without a tenants document and with one tenant in the batch nothing reads them: not counted.
        const oneTenant = fairClaims.every((c) => c.tenant === fairClaims[0]!.tenant);
        const held = deps.tenants || !oneTenant ? tenantHoldings(snapshot, items, takenAtMs) : new Map<string, { nodes: number; cores: number }>();
        const fair = new FairQueue(fairClaims, sharesOf(deps.tenants, held, new Set(fairClaims.map((c) => c.tenant))), clusterSize(snapshot));
        for (let claim = fair.next(); claim; claim = fair.next()) {
          const i = claim.key;
          const m = members[i]!;
          const used = held.get(claim.tenant) ?? { nodes: 0, cores: 0 };
          const quotas = quotasFor(deps.tenants, claim.tenant, cluster, used, overBudget(claim.tenant), elsewhere?.get(claim.tenant));
          const planStartedAt = performance.now();
          const planSpan = startSpan('plan', m.ctx.traceparent, SpanKind.INTERNAL, { 'scaler.cluster': cluster, 'scaler.demands': m.request.demands.length });
          const p = (deps.plan ?? defaultPlan)({
            request: m.request,
            snapshot,
            inFlight: [...inFlight],
            backoffs: m.backoffs,
            nowMs: m.nowMs,
            generation: m.generation,
            remaining: m.open,
            excludedPlacementGroups: m.excluded,
            ...(quotas.length > 0 ? { quotas } : {}),
            ...(m.ctx.cfg.planOptions ? { options: m.ctx.cfg.planOptions } : {}),
          });
          m.ctx.logger.metric('plan_latency_ms', performance.now() - planStartedAt, { cluster, demands: m.request.demands.length });
          recordMetric('scaler.plan.duration', (performance.now() - planStartedAt) / 1000, { cluster });
          planSpan.span.setAttribute('scaler.sets', p.sets.length);
          planSpan.span.end();
          ps[i] = p;
          const rejecting = !m.submittedBefore && p.demands.some((d) => d.status === 'rejected');
          if (p.sets.length === 0 || rejecting) continue;
          if (setCount > 0 && setCount + p.sets.length > maxSets) {
            deferred.add(i);
            continue;
          }
          setCount += p.sets.length;
          const sets = p.sets.map((x) => ({ nodearray: x.nodearray, machineType: x.machineType, placementGroupId: x.placementGroupId, count: x.count }));
          reservations.push({ cycleCloudRequestId: m.cc, requestId: m.ctx.requestId, sets, reservedAtMs: m.nowMs, ...(m.request.tenant ? { tenant: m.request.tenant } : {}) });
          // What this member takes, the next one cannot; its tenant is charged with it.
          let nodes = 0;
          let cores = 0;
          for (const x of sets) {
            if (x.count <= 0) continue;
            addInFlight(inFlight, x);
            nodes += x.count;
            cores += x.count * vcpuOf(snapshot, x.nodearray, x.machineType);
          }
          held.set(claim.tenant, { nodes: used.nodes + nodes, cores: used.cores + cores });
          fair.charge(nodes, cores);
        }
        return { reservations, result: ps };
      },
      takenAtMs,
    );
  } catch (error) {
    if (error instanceof SnapshotBehindReservationsError) {
      for (const i of live) out[i] = { kind: 'behind' };
      return out;
    }
    throw error;
  }

  // Members with something to create claim it (annotate + intent, one write each); the others go on alone.
  const creating: number[] = [];
  for (const i of live) {
    const p = plans[i]!;
    const m = members[i]!;
    if (deferred.has(i)) out[i] = { kind: 'behind' };
    else if (p.sets.length === 0 || (!m.submittedBefore && p.demands.some((d) => d.status === 'rejected'))) out[i] = { kind: 'planned', plan: p };
    else creating.push(i);
  }
  if (creating.length === 0) return out;
  const batch = creating.length > 1 ? batchRequestId(deps.now()) : undefined;
  const intents = new Map<number, SubmissionAttempt>();
  const released: string[] = [];
  mark('reservedMs');
  const claims = await Promise.allSettled(
    creating.map(async (i) => {
      const m = members[i]!;
      const p = plans[i]!;
      const intent: SubmissionAttempt = {
        generation: m.generation,
        cycleCloudRequestId: m.cc,
        state: 'intent',
        operationId: null,
        sets: p.sets.map((x, k) => ({
          ...(p.demands.some((d) => d.placements.some((pl) => pl.setIndex === k && pl.spot)) ? { spot: true as const } : {}),
          nodearray: x.nodearray,
          machineType: x.machineType,
          placementGroupId: x.placementGroupId,
          count: x.count,
          added: null,
          message: null,
          demands: x.demands,
          ...namingOf(x.set),
        })),
        submittedAtMs: m.nowMs,
        ...(batch ? { batch } : {}),
      };
      let claimedByOther = false;
      try {
        const entry = await update(m.ctx, (e) => {
          // The claim holds only on the entry this plan was made on: no create in flight, none added since.
          claimedByOther = e.attempts.some((a) => a.cycleCloudRequestId === m.cc);
          // Released meanwhile (a release or a passed lease): nothing more is created for it.
          if (isFinal(e) || e.record.released || e.attempts.some(inFlightAttempt) || nextGeneration(e) !== m.generation) throw new ClaimLost();
          const x = applySubmission(annotate(e, p, m.nowMs), intent, m.nowMs);
          return x.record.state === 'queued' ? setState(x, 'planning', null, m.nowMs) : x;
        });
        intents.set(i, intent);
        m.ctx.logger.info('create intent recorded', { cycleCloudRequestId: m.cc, generation: m.generation, sets: intent.sets.length, ...(batch ? { batch } : {}) });
        return entry;
      } catch (error) {
        if (error instanceof ClaimLost) {
          // Another worker moved the request on (cancelled, final, or planned it first): this plan is
          // void, and so is its reservation, unless that worker claimed this very create.
          if (!claimedByOther) released.push(m.cc);
          return null;
        }
        throw error;
      }
    }),
  );
  if (released.length > 0) await deps.reservations.release(cluster, released);
  const claimed: { i: number; entry: LedgerEntry; intent: SubmissionAttempt }[] = [];
  claims.forEach((c, k) => {
    const i = creating[k]!;
    if (c.status === 'rejected') out[i] = { kind: 'error', error: c.reason };
    else if (c.value === null) out[i] = { kind: 'skipped' };
    else claimed.push({ i, entry: c.value, intent: intents.get(i)! });
  });
  if (claimed.length === 0) return out;

  const solo = async (c: (typeof claimed)[number], surelyUnsent: boolean, intent = c.intent, sets?: NodeCreationRequestSet[]): Promise<void> => {
    const m = members[c.i]!;
    try {
      out[c.i] = { kind: 'sent', entry: await senderOf(m.ctx).submitAttempt(m.ctx, c.entry, m.request, intent, surelyUnsent, sets), intent };
    } catch (error) {
      out[c.i] = { kind: 'error', error };
    }
  };
  const setsOf = (c: (typeof claimed)[number]) => plans[c.i]!.sets.map((x) => x.set);
  if (claimed.length === 1) {
    await solo(claimed[0]!, true, claimed[0]!.intent, setsOf(claimed[0]!));
    return out;
  }

  // ONE create for every member, each set tagged with its own member.
  const wire = claimed.flatMap((c) => marked(setsOf(c), members[c.i]!.ctx.requestId, c.intent.cycleCloudRequestId, members[c.i]!.request.tenant));
  const log = newest.ctx.logger.child({ batch, members: claimed.length });
  let result: Awaited<ReturnType<CycleCloudApi['createNodes']>>;
  try {
    mark('claimedMs');
    // In the newest member's trace, linked from every other member's delivery
    const span = startSpan(
      'POST nodes/create',
      newest.ctx.traceparent,
      SpanKind.CLIENT,
      { 'scaler.cluster': cluster, 'scaler.batch.members': claimed.length, 'scaler.sets': wire.length },
      claimed.map((c) => members[c.i]!.ctx.traceparent),
    );
    try {
      result = await senderOf(newest.ctx).sendBatch(newest.ctx, { requestId: batch!, sets: wire });
    } finally {
      span.span.end();
    }
    mark('answeredMs');
  } catch (error) {
    if (!isCycleCloudError(error)) {
      for (const c of claimed) out[c.i] = { kind: 'error', error };
      return out;
    }
    recordMetric('scaler.create.calls', 1, { cluster, outcome: error.code });
    if (isAmbiguous(error)) {
      // Lost, 5xx after sending, reset, 409: each member finds its share by the batch's id and its own tag.
      log.warn('batch create outcome unknown; each member reconciles by request id and tag', { code: error.code });
      await Promise.all(claimed.map((c) => solo(c, false)));
      return out;
    }
    if (isPermanent(error)) {
      // A refusal does not fail innocent members: each is sent alone under its own id (never sent
      // before), recorded first, so only the bad set's request fails.
      log.warn('batch create refused; sending each member alone', { code: error.code, error: error.message });
      await Promise.all(
        claimed.map(async (c) => {
          const m = members[c.i]!;
          const alone: SubmissionAttempt = { ...c.intent };
          delete alone.batch;
          try {
            const entry = await update(m.ctx, (e) => {
              const a = e.attempts.find((x) => x.cycleCloudRequestId === alone.cycleCloudRequestId);
              if (a && a.state === 'intent') delete a.batch;
            });
            await solo({ ...c, entry }, true, alone, setsOf(c));
          } catch (e) {
            out[c.i] = { kind: 'error', error: e };
          }
        }),
      );
      return out;
    }
    // Throttled, unavailable, auth, network before sending: nothing was created; the intents stay.
    for (const c of claimed) out[c.i] = { kind: 'error', error };
    return out;
  }

  log.info('batch create accepted', { operationId: result.operationId, sets: wire.length, ...phases });
  newest.ctx.logger.metric('create_calls', 1, { cluster });
  recordMetric('scaler.create.calls', 1, { cluster, outcome: 'accepted' });
  const acceptedAtMs = deps.now();
  let offset = 0;
  const answered = claimed.map((c) => {
    const mine = result.sets.slice(offset, offset + c.intent.sets.length);
    offset += c.intent.sets.length;
    const accepted: SubmissionAttempt = {
      ...c.intent,
      state: 'accepted',
      operationId: result.operationId,
      acceptedAtMs,
      sets: c.intent.sets.map((x, k) => ({ ...x, added: mine[k]?.added ?? 0, message: mine[k]?.message ?? null })),
    };
    recordCreateAccepted(cluster, accepted, members[c.i]!.entry.record.createdAt, acceptedAtMs);
    return { c, accepted };
  });
  const added = answered.reduce((n, a) => n + a.accepted.sets.reduce((k, x) => k + (x.added ?? 0), 0), 0);
  newest.ctx.logger.metric('nodes_requested', added, { cluster });
  const short = answered.reduce((n, a) => n + a.accepted.sets.filter((x) => (x.added ?? 0) < x.count).length, 0);
  if (short > 0) {
    newest.ctx.logger.metric('over_ask', short, { cluster });
    await deps.state.increment?.('overAsk');
  }
  // The reservations now hold what CycleCloud added (one write), then each member's record.
  await deps.reservations.acceptedMany(
    cluster,
    answered.map((a) => ({ cycleCloudRequestId: a.accepted.cycleCloudRequestId, added: a.accepted.sets.map((x) => x.added ?? 0) })),
    acceptedAtMs,
  );
  await Promise.all(
    answered.map(async ({ c, accepted }) => {
      const m = members[c.i]!;
      try {
        out[c.i] = { kind: 'sent', entry: await senderOf(m.ctx).recordAnswer(m.ctx, accepted), intent: c.intent };
      } catch (error) {
        out[c.i] = { kind: 'error', error };
      }
    }),
  );
  mark('recordedMs');
  log.info('batch recorded', { ...phases });
  return out;
}
