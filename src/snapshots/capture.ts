/**
 * The snapshot timer's work, and the planner path's "fresh enough" read.
 */
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import type { Logger } from '../platform/log.ts';
import type { ClusterSnapshot } from './model.ts';
import type { SnapshotStore } from './store.ts';
import { toSnapshot } from './snapshot.ts';
import { recordMetric } from '../platform/metrics.ts';

/** The store operations capture needs (a `SnapshotStore`, or a fake). */
export type SnapshotStoreApi = Pick<SnapshotStore, 'saveSnapshot' | 'latest' | 'recordFailure' | 'recordSuccess' | 'health'>;

/** Where capacity failures seen in snapshots go (`CapacityMemory#recordSnapshotFailures`). */
export interface SnapshotFailureSink {
  recordSnapshotFailures(snapshot: ClusterSnapshot, nowMs: number): Promise<unknown>;
}

export interface CaptureDeps {
  cyclecloud: Pick<CycleCloudApi, 'getClusterStatus'>;
  store: SnapshotStoreApi;
  logger: Logger;
  /** Epoch-ms clock. */
  now: () => number;
  /** Optional: remember fresh `lastCapacityFailure`s so backoff outlives CycleCloud's own window. */
  capacity?: SnapshotFailureSink;
}

export interface CaptureOptions {
  /** The timer's `isPastDue` (logged: a late timer means snapshots were older than scheduled). Default false. */
  isPastDue?: boolean;
  abortSignal?: AbortSignal;
}

export type CaptureResult =
  | { cluster: string; ok: true; snapshot: ClusterSnapshot; latestReplaced: boolean }
  | { cluster: string; ok: false; error: unknown; consecutiveFailures: number | null; stale: boolean | null };

/**
 * Captures every cluster concurrently (`GET /clusters/{c}/status?nodes=true`), stores the snapshots
 * and counts failures; one cluster failing never stops the others. The results carry the snapshots
 * with their node lists so the caller can also feed the tracker's reconciliation.
 */
export async function captureSnapshots(deps: CaptureDeps, clusters: readonly string[], options: CaptureOptions = {}): Promise<CaptureResult[]> {
  const { logger } = deps;
  if (options.isPastDue) logger.warn('snapshot timer is past due: snapshots are older than scheduled', { isPastDue: true, clusters: clusters.length });
  return Promise.all(clusters.map((cluster) => captureOne(deps, cluster, options)));
}

async function captureOne(deps: CaptureDeps, cluster: string, options: CaptureOptions): Promise<CaptureResult> {
  const log = deps.logger.child({ cluster });
  // takenAt is when the read STARTED: a create racing the read is then counted as in flight by the
  // planner (at worst once too often) rather than missed (which would over-ask).
  const startedAtMs = deps.now();
  let snapshot: ClusterSnapshot;
  try {
    const status = await deps.cyclecloud.getClusterStatus(cluster, { nodes: true, ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}) });
    snapshot = toSnapshot(cluster, status, startedAtMs);
    const { latestReplaced } = await deps.store.saveSnapshot(snapshot, options);
    await deps.store.recordSuccess(cluster, deps.now(), options);
    const durationMs = deps.now() - startedAtMs;
    log.info('cluster snapshot stored', {
      durationMs,
      nodes: snapshot.nodes?.length ?? 0,
      nodearrays: snapshot.nodearrays.length,
      latestReplaced,
      isPastDue: options.isPastDue ?? false,
    });
    log.metric('snapshot_age_seconds', Math.max(0, (deps.now() - startedAtMs) / 1000), { cluster });
    recordMetric('scaler.snapshot.age', Math.max(0, (deps.now() - startedAtMs) / 1000), { cluster });
    for (const na of snapshot.nodearrays) {
      for (const b of na.buckets) {
        const dims = { cluster, nodearray: na.name, machine_type: b.machineType };
        recordMetric('scaler.bucket.available', b.availableCount, dims);
        recordMetric('scaler.bucket.active', b.activeCount, dims);
      }
    }
    if (deps.capacity) {
      try {
        await deps.capacity.recordSnapshotFailures(snapshot, deps.now());
      } catch (error) {
        log.warn('could not record capacity failures seen in the snapshot', { error });
      }
    }
    return { cluster, ok: true, snapshot, latestReplaced };
  } catch (error) {
    let consecutiveFailures: number | null = null;
    let stale: boolean | null = null;
    try {
      ({ consecutiveFailures, stale } = await deps.store.recordFailure(cluster, error, deps.now(), options));
    } catch (recordError) {
      log.warn('could not record the snapshot failure', { error: recordError });
    }
    log.error('cluster snapshot failed', { error, consecutiveFailures, stale, isPastDue: options.isPastDue ?? false });
    try {
      const health = await deps.store.health(cluster, options);
      if (health?.ageSeconds !== null && health?.ageSeconds !== undefined) {
        log.metric('snapshot_age_seconds', health.ageSeconds, { cluster });
        recordMetric('scaler.snapshot.age', health.ageSeconds, { cluster });
      }
    } catch {
      // Storage is down as well: the failure above is already logged.
    }
    return { cluster, ok: false, error, consecutiveFailures, stale };
  }
}

export interface FreshSnapshotOptions {
  abortSignal?: AbortSignal;
}

/**
 * The stored snapshot if it is at most `maxAgeMs` old, else a live capture (stored, so the next
 * caller reuses it). A failed live read is counted and rethrown: the caller's request waits.
 */
export async function getFreshSnapshot(deps: Omit<CaptureDeps, 'capacity'>, cluster: string, maxAgeMs: number, options: FreshSnapshotOptions = {}): Promise<ClusterSnapshot> {
  const stored = await deps.store.latest(cluster, options);
  if (stored && deps.now() - Date.parse(stored.takenAt) <= maxAgeMs) return stored;
  const result = await captureOne(deps, cluster, options);
  if (result.ok) return result.snapshot;
  throw result.error;
}
