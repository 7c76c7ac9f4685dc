/**
 * The snapshot timer's work: capture every cluster, then use the fresh view to repair what
 * messages alone cannot guarantee — wake-ups lost in a crash (tracker and waiting requests).
 */
import { captureSnapshots, type CaptureResult } from '../snapshots/capture.ts';
import { reconcileSnapshot, type ReconcileResult } from '../tracking/reconcile.ts';
import { reconcileOrphans, type OrphanResult } from '../tracking/orphans.ts';
import { reconcileEvictions, type EvictionResult } from '../tracking/evictions.ts';
import { meterSweep, type MeterResult } from '../tracking/meter.ts';
import { fairWakes } from '../requests/fair-wake.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import { budgetBlock } from '../requests/tenant-share.ts';
import type { Reservation } from '../requests/reservations.ts';
import { encodeQueueMessage } from '../platform/storage.ts';
import { pruneReplayCache } from '../platform/replay-cache.ts';
import { sweepUndecodablePoison } from '../requests/poison-sweep.ts';
import { DEFAULT_TOLERANCE_MS } from '../platform/signature.ts';
import type { Logger } from '../platform/log.ts';
import type { Services } from './services.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import { hasUnresolvedAttempt } from '../ledger/record.ts';
import { sweepLeases } from '../requests/lifecycle.ts';
import { recordMetric } from '../platform/metrics.ts';
import { FINAL_STATES, RequestState } from '../ledger/schemas.ts';

/** A waiting request whose continue message is this late is assumed lost and re-sent. */
const LOST_CONTINUE_AFTER_MS = 2 * 60_000;
/** A create intent nobody resolved for this long gets a wake-up (its run died; its message may be invisible for 10 min). */
const UNRESOLVED_CONTINUE_AFTER_MS = 30_000;

export interface SnapshotJobResult {
  captured: CaptureResult[];
  reconciled: (ReconcileResult & { cluster: string })[];
  orphans: (OrphanResult & { cluster: string })[];
  /** Sleeping requests woken because they would get room now, in fair order (src/requests/fair-wake.ts). */
  fairWakeups: number;
  /** Cost meter sweeps (with a price table), per cluster. */
  meters: (MeterResult & { cluster: string })[];
  /** Spot evictions found this tick (clusters with none are left out). */
  evictions: (EvictionResult & { cluster: string })[];
  trackerWakeups: number;
  requestWakeups: number;
  /** Final requests deleted by retention this tick. */
  expired: number;
  /** Leases, lifetimes and releases due by this tick: looked at, released (now or before), not settled. */
  leases: { looked: number; released: number; failed: number };
}

export async function runSnapshotJob(s: Services, timer: { isPastDue: boolean }, logger: Logger): Promise<SnapshotJobResult> {
  const now = s.http.now;
  // Housekeeping of issue 14, independent of the snapshots: forget expired signatures, and record
  // or re-send messages the host could not decode.
  await pruneSeenSignatures(s, now(), logger);
  await sweepPoison(s, logger);
  const captured = await captureSnapshots({ cyclecloud: s.cyclecloud, store: s.snapshots, logger, now, capacity: s.capacity }, s.clusters, { isPastDue: timer.isPastDue });
  // Nodes the ledger expects that CycleCloud no longer has, and capacity failures in node states.
  // Only snapshots that carry a node list: an absent list must never read as "every node gone".
  const reconciled: SnapshotJobResult['reconciled'] = [];
  const orphans: SnapshotJobResult['orphans'] = [];
  const evictions: SnapshotJobResult['evictions'] = [];
  // The open entries, read once per tick (from the open index) for every sweep below.
  const open = await s.pipeline.ledger.listOpen();
  recordOpenRequests(s.clusters, open, now());
  for (const r of captured) {
    if (!r.ok || !r.snapshot.nodes) continue;
    const openHere = open.filter((e) => e.record.cluster === r.cluster);
    try {
      const result = await reconcileSnapshot(
        { ledger: s.pipeline.ledger, tracker: s.tracker, capacity: s.capacity, logger, open: openHere },
        r.cluster,
        r.snapshot.nodes,
        Date.parse(r.snapshot.takenAt),
      );
      reconciled.push({ cluster: r.cluster, ...result });
    } catch (error) {
      logger.error('reconciliation failed', { cluster: r.cluster, error });
    }
    try {
      orphans.push({
        cluster: r.cluster,
        ...(await reconcileOrphans(
          {
            ledger: s.pipeline.ledger,
            cyclecloud: s.cyclecloud,
            storage: s.storage,
            names: s.names,
            state: s.pipeline.state,
            tracker: s.tracker,
            logger,
            graceMs: s.config.orphanGraceMs,
            open: openHere,
          },
          r.cluster,
          r.snapshot.nodes,
          now(),
        )),
      });
    } catch (error) {
      logger.error('orphan reconciliation failed', { cluster: r.cluster, error });
    }
    try {
      const result = await reconcileEvictions(
        {
          ledger: s.pipeline.ledger,
          cyclecloud: s.cyclecloud,
          tracker: s.tracker,
          logger,
          deadlineMs: s.config.requestDeadlineMs,
          open: openHere,
          onFinal: s.onFinal,
        },
        r.cluster,
        r.snapshot.nodes,
        now(),
      );
      if (result.evicted > 0) evictions.push({ cluster: r.cluster, ...result });
    } catch (error) {
      logger.error('eviction reconciliation failed', { cluster: r.cluster, error });
    }
  }
  // Cost (docs/api.md, Cost): the Retail Prices cache looked at (a day old: fetched again), then
  // each cluster's meter accrues the time since its last sweep.
  const regions = [...new Set(captured.flatMap((r) => (r.ok ? r.snapshot.nodearrays.flatMap((na) => (na.region ? [na.region] : [])) : [])))].sort();
  // Only with every cluster read: a capture that fails now and then must not change the region set
  // (and so refetch the prices) from tick to tick.
  if (captured.every((r) => r.ok)) await s.refreshPrices(regions).catch((error: unknown) => logger.warn('could not refresh the Retail Prices cache', { error }));
  const meters: SnapshotJobResult['meters'] = [];
  if (s.prices()) {
    for (const r of captured) {
      if (!r.ok || !r.snapshot.nodes) continue;
      try {
        meters.push({
          cluster: r.cluster,
          ...(await meterSweep({ table: () => s.storage.table(s.names.stateTable), ledger: s.pipeline.ledger, prices: s.prices, logger }, r.cluster, r.snapshot)),
        });
      } catch (error) {
        logger.warn('cost meter sweep failed', { cluster: r.cluster, error });
      }
    }
  }
  // Reservations this snapshot counts (or whose create is over) stop being subtracted.
  for (const r of captured) {
    if (!r.ok) continue;
    try {
      await s.pipeline.reservations.prune(r.cluster, Date.parse(r.snapshot.takenAt), now(), async (res) => settledReservation(s, res));
    } catch (error) {
      logger.warn('could not prune capacity reservations', { cluster: r.cluster, error });
    }
  }
  // Fair share across batches: sleeping requests that would get room now are woken to meet in one batch.
  let fairWakeups = 0;
  for (const r of captured) {
    if (!r.ok) continue;
    try {
      fairWakeups += await wakeFairly(s, r.cluster, r.snapshot, open, now(), logger);
    } catch (error) {
      logger.warn('could not wake waiting requests in fair order', { cluster: r.cluster, error });
    }
  }
  const trackerWakeups = await s.tracker.sweep(now(), logger);
  const requestWakeups = await wakeLostRequests(s, open, now(), logger);
  const leases = await leaseSweep(s, now(), logger);
  const expired = await expireOld(s, now(), logger);
  return { captured, reconciled, orphans, evictions, meters, fairWakeups, trackerWakeups, requestWakeups, expired, leases };
}

/** Leases and lifetimes past due, and releases not yet carried out: the backstop for a lost reminder or a crash. */
async function leaseSweep(s: Services, nowMs: number, logger: Logger): Promise<SnapshotJobResult['leases']> {
  try {
    const result = await sweepLeases(s.pipeline.lifecycle(logger.child({ job: 'leases' })), nowMs);
    if (result.looked > 0) logger.info('lease sweep', result);
    return result;
  } catch (error) {
    logger.warn('could not sweep leases', { error });
    return { looked: 0, released: 0, failed: 1 };
  }
}

/**
 * Retention (`RETENTION_DAYS`): final records older than the setting go, with their tracker rows;
 * each leaves a tombstone so `GET` can say it expired. Snapshot history is pruned as it is written.
 */
async function expireOld(s: Services, nowMs: number, logger: Logger): Promise<number> {
  try {
    const { expired } = await s.pipeline.ledger.expire(nowMs - s.config.retentionMs, async (entry) => {
      const cluster = entry.record.cluster;
      if (!cluster) return;
      for (const op of entry.record.operations) await s.tracker.store.delete(cluster, op.cycleCloudRequestId);
    });
    if (expired > 0) logger.info('expired final requests past the retention', { expired, retentionDays: Math.round(s.config.retentionMs / 86_400_000) });
    return expired;
  } catch (error) {
    logger.warn('could not expire old requests', { error });
    return 0;
  }
}

/** Messages the host could not decode end in the poison queue with no record: record or re-send them. */
async function sweepPoison(s: Services, logger: Logger): Promise<void> {
  try {
    const deps = {
      storage: s.storage,
      scaleQueue: s.names.scaleQueue,
      poisonQueue: s.names.scalePoisonQueue,
      ledger: s.pipeline.ledger,
      state: s.pipeline.state,
      now: s.http.now,
      logger,
    };
    await sweepUndecodablePoison(deps);
  } catch (error) {
    logger.warn('could not sweep the poison queue', { error });
  }
}

/** Forgets signatures whose window has passed (the replay cache only needs the last 5 minutes). */
async function pruneSeenSignatures(s: Services, nowMs: number, logger: Logger): Promise<void> {
  try {
    const deleted = await pruneReplayCache(s.storage, s.names.stateTable, nowMs, DEFAULT_TOLERANCE_MS);
    if (deleted > 0) logger.debug('pruned seen signatures', { deleted });
  } catch (error) {
    logger.warn('could not prune seen signatures', { error });
  }
}

/** Open requests not being tracked whose next attempt is long overdue get a continue message. */
async function wakeFairly(s: Services, cluster: string, snapshot: ClusterSnapshot, open: readonly LedgerEntry[], nowMs: number, logger: Logger): Promise<number> {
  const here = open.filter((e) => e.record.cluster === cluster);
  if (!here.some((e) => e.nextAttemptAtMs !== null && e.nextAttemptAtMs > nowMs)) return 0;
  if (await s.pipeline.state.isPaused()) return 0;
  const tenants = s.http.tenants;
  const budgeted = s.prices() && tenants?.names.some((t) => tenants.get(t)?.budget);
  const spend = budgeted ? await s.tenantSpend(nowMs) : undefined;
  const ids = fairWakes({
    cluster,
    snapshot,
    reservations: (await s.pipeline.reservations.read(cluster)).items,
    backoffs: await s.capacity.active(cluster, nowMs),
    open: here,
    tenants,
    blocked: (t) => budgetBlock(tenants, t, spend, s.prices()?.currency ?? ''),
    nowMs,
  });
  const queue = s.storage.queue(s.names.scaleQueue);
  await Promise.all(ids.map((requestId) => queue.sendMessage(encodeQueueMessage({ $scaler: 'continue', requestId, reason: 'fair-share' }))));
  if (ids.length > 0) logger.info('woke waiting requests that have room now, in fair order', { cluster, count: ids.length });
  return ids.length;
}

async function wakeLostRequests(s: Services, open: readonly LedgerEntry[], nowMs: number, logger: Logger): Promise<number> {
  const lost = open.filter((e) => isLost(e, nowMs));
  await Promise.all(
    lost.map((e) => s.storage.queue(s.names.scaleQueue).sendMessage(encodeQueueMessage({ $scaler: 'continue', requestId: e.record.requestId, reason: 'sweeper' }))),
  );
  if (lost.length) logger.warn('re-sent lost wake-ups of waiting requests', { count: lost.length });
  return lost.length;
}

function isLost(e: LedgerEntry, nowMs: number): boolean {
  if (e.nextAttemptAtMs !== null) return nowMs - e.nextAttemptAtMs > LOST_CONTINUE_AFTER_MS;
  // A create whose outcome is unknown (its worker killed mid-batch, its message poisoned or held
  // invisible for the function timeout): only a wake-up resolves it. Soon, since a spare wake-up is
  // harmless: the run it starts looks the create up by its request id and never plans it again.
  if (hasUnresolvedAttempt(e)) return nowMs - Date.parse(e.record.updatedAt) > UNRESOLVED_CONTINUE_AFTER_MS;
  // Submitted: the tracker owns it (and has its own sweeper); a long silence is nudged all the same,
  // since a create whose tracking never started (a poisoned message) has nobody else to start it.
  if (e.record.state === 'submitted') return nowMs - Date.parse(e.record.updatedAt) > 5 * LOST_CONTINUE_AFTER_MS;
  // queued/planning with no scheduled attempt: the intake message itself may be gone.
  return nowMs - Date.parse(e.record.updatedAt) > LOST_CONTINUE_AFTER_MS;
}

/** Whether a reservation's create is over (failed, never sent) or when it was accepted, per the ledger. */
async function settledReservation(s: Services, r: Reservation): Promise<{ over: boolean; acceptedAtMs?: number }> {
  const entry = await s.pipeline.ledger.get(r.requestId);
  const attempt = entry?.attempts.find((a) => a.cycleCloudRequestId === r.cycleCloudRequestId);
  if (!attempt) return { over: true }; // the claim was never written (a crash between reserving and claiming)
  if (attempt.state === 'failed') return { over: true };
  if (attempt.state === 'accepted') return { over: false, acceptedAtMs: attempt.acceptedAtMs ?? attempt.submittedAtMs };
  return { over: false };
}

/** The open-requests gauge: every open state per cluster, 0 included, so a state that empties drops to 0. */
function recordOpenRequests(clusters: readonly string[], open: readonly { deadlineAtMs: number; record: { cluster: string; state: string } }[], nowMs: number): void {
  for (const cluster of clusters) {
    const here = open.filter((e) => e.record.cluster === cluster);
    recordMetric('scaler.requests.overdue', here.filter((e) => e.deadlineAtMs < nowMs).length, { cluster });
    for (const state of RequestState.options.filter((x) => !FINAL_STATES.has(x)))
      recordMetric('scaler.requests.open', here.filter((e) => e.record.state === state).length, { cluster, state });
  }
}
