/**
 * Wires the request pipeline over one storage account: ledger, scaler state, the scale queue and
 * the submission dependencies. The composition root (functions/, src/local/) passes what other
 * parts own (CycleCloud client, tracker, snapshots, capacity memory) and gets back the queue
 * handler's deps and the HTTP admission function.
 */
import type { Tenants } from '../platform/tenants.ts';
import type { Budgets } from './context.ts';
import { capsAllClusters, holdingsOn } from './tenant-share.ts';
import type { CallbackTargetPolicy } from '../platform/callback-target.ts';
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import type { Logger } from '../platform/log.ts';
import type { StorageNames } from '../platform/names.ts';
import type { Storage } from '../platform/storage.ts';
import type { TrackerApi } from '../tracking/types.ts';
import { handleScaleQueueMessage, submitRequest, withJobIds, type IntakeDeps, type QueueMessageMeta } from './intake.ts';
import { createBatcher, processEntry, type BatchLease } from './submit.ts';
import { silentLogger } from '../platform/log.ts';
import { RequestLedger } from '../ledger/ledger.ts';
import { storageQueueSender } from './queue.ts';
import type { RequestMessage } from '../ledger/schemas.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import { ScalerState } from './state.ts';
import { CapacityReservations } from './reservations.ts';
import { LeaseIndex, type LifecycleDeps } from './lifecycle.ts';
import type { LifecycleDefaults } from '../ledger/types.ts';
import type { CapacityMemoryApi, SnapshotSource, SubmitConfig } from './submit.ts';

/** The pipeline's settings (from `Config` in `src/platform/config.ts`, the one place settings are parsed). */
export interface RequestPipelineConfig {
  /** `SCALE_OUT_PAUSED`. Default false. */
  pausedBySetting: boolean;
  /** `REQUEST_DEADLINE_MINUTES` in ms. Default 30 minutes. */
  deadlineMs: number;
  /** `MAX_REPLAN_ATTEMPTS`. Default 3. */
  maxReplanAttempts: number;
  /** `SNAPSHOT_MAX_AGE_SECONDS` in ms. Default 120 000. */
  snapshotMaxAgeMs: number;
}

export interface RequestPipelineOptions {
  /**
   * The ledger, when the composition root built it first (so the tracker and the callback sender
   * share it without a late reference). Default: built here from `storage`, `names`, `config.deadlineMs`, `onFinal`.
   */
  ledger?: RequestLedger;
  storage: Storage;
  names: StorageNames;
  cyclecloud: CycleCloudApi;
  tracker: TrackerApi;
  /** E.g. `{ getFresh: (c, maxAgeMs) => getFreshSnapshot(captureDeps, c, maxAgeMs) }`. */
  snapshots: SnapshotSource;
  capacity: CapacityMemoryApi;
  /** Settings; each defaults as documented on {@link RequestPipelineConfig}. */
  config?: Partial<RequestPipelineConfig> & Omit<SubmitConfig, 'maxReplanAttempts' | 'snapshotMaxAgeMs'>;
  /** Epoch-ms clock. Default `Date.now`. */
  now?: () => number;
  /** Called once an entry becomes final, whoever made it so (queues its callback). See `RequestLedgerOptions.onFinal`. */
  onFinal?: (entry: LedgerEntry) => Promise<void>;
  /** Where admission logs what the caller does not see (a send left to the sweeper). */
  logger?: Logger;
  /**
   * Requests admitted over HTTP start at once in this process, besides the queue message that
   * guarantees them (at most this many at a time; 0 = queue only). Default 0 (the composition root sets 8). See {@link RequestPipeline.submitRequest}.
   */
  fastPathConcurrency?: number;
  /** Where callbacks may go: a `callbackUrl` the send-time check would always refuse is rejected at intake. */
  callbackTarget?: CallbackTargetPolicy;
  /**
   * Group commit of this process's creates per cluster (`CREATE_WINDOW_MS`, `CREATE_WINDOW_MAX_MS`,
   * `CREATE_MAX_SETS`). Default: no window (each request creates alone).
   */
  createWindow?: { windowMs: number; windowMaxMs: number; maxSets: number };
  /** The fleet-wide governor: with a window, a batch holds its cluster's `batch` slot while it plans, reserves and sends. */
  governor?: BatchLease;
  /** `DEFAULT_LEASE_SECONDS`, `DEFAULT_MAX_LIFETIME_SECONDS` (callers' scale requests only, never Slurm's). Default none. */
  lifecycleDefaults?: LifecycleDefaults;
  /** The tenants document: intake refuses undeclared tenants, batches share by weight and keep caps. Default: none (every request `default`). */
  tenants?: Tenants;
  /** Tenants' spend this month (the cost meter): a tenant past its monthly budget gets nothing new. Default: not enforced. */
  budgets?: Budgets;
  /** Every configured cluster: caps over all clusters (`*`) count a tenant's holdings on the others. */
  clusters?: readonly string[];
}

export interface RequestPipeline {
  ledger: RequestLedger;
  reservations: CapacityReservations;
  state: ScalerState;
  /** The lease index (`lifecycle.ts`): renew, release and the snapshot timer's lease sweep use it. */
  leases: LeaseIndex;
  deps: IntakeDeps;
  /** What renew, release and the lease sweep need, logging to `logger`. */
  lifecycle(logger: Logger): LifecycleDeps;
  /** The scale-queue function's handler. */
  handle(message: unknown, meta: QueueMessageMeta, logger: Logger): ReturnType<typeof handleScaleQueueMessage>;
  /**
   * `POST /api/scale-requests` and `/api/terminate`: admit + enqueue. A request just created also
   * starts at once in this process (the fast path: its create goes out without waiting for the
   * queue's next poll and batch), while the queue message stays the guarantee: if this process dies,
   * is busy (more than `fastPathConcurrency` runs) or the run fails, the message does the work.
   * Processing is claimed per generation in the ledger, so the two never create twice.
   */
  submitRequest(message: RequestMessage, options?: { scheduler?: boolean; traceparent?: string }): ReturnType<typeof submitRequest>;
  /** Resolves when every fast-path run started so far has ended (graceful shutdown, tests). */
  drain(): Promise<void>;
}

export function createRequestPipeline(o: RequestPipelineOptions): RequestPipeline {
  const now = o.now ?? Date.now;
  const { pausedBySetting, deadlineMs, ...submitConfig } = o.config ?? {};
  const ledger =
    o.ledger ??
    new RequestLedger({
      storage: o.storage,
      names: o.names,
      now,
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      ...(o.onFinal ? { onFinal: o.onFinal } : {}),
    });
  const state = new ScalerState({ storage: o.storage, names: o.names, now, pausedBySetting: pausedBySetting ?? false });
  const queue = storageQueueSender(o.storage, o.names.scaleQueue);
  const reservations = new CapacityReservations({ storage: o.storage, names: o.names });
  const leases = new LeaseIndex(o.storage, o.names);
  const fastPath = o.fastPathConcurrency ?? 0;
  let running = 0;
  const runs = new Set<Promise<unknown>>();
  const deps: IntakeDeps = {
    cyclecloud: o.cyclecloud,
    ledger,
    reservations,
    snapshots: o.snapshots,
    capacity: o.capacity,
    tracker: o.tracker,
    queue,
    state,
    config: submitConfig,
    now,
    ...(o.createWindow && o.createWindow.windowMs > 0
      ? {
          batcher: createBatcher({ windowMs: o.createWindow.windowMs, windowMaxMs: o.createWindow.windowMaxMs, maxWeight: o.createWindow.maxSets }, o.governor, (tenant) =>
            capsAllClusters(o.tenants, tenant),
          ),
        }
      : {}),
    ...(o.onFinal ? { onFinal: o.onFinal } : {}),
    ...(o.callbackTarget ? { callbackTarget: o.callbackTarget } : {}),
    ...(o.tenants ? { tenants: o.tenants } : {}),
    ...(o.budgets ? { budgets: o.budgets } : {}),
    ...(o.clusters && o.tenants
      ? {
          holdingsElsewhere: (cluster: string) =>
            holdingsOn(
              o.clusters!.filter((c) => c !== cluster),
              o.snapshots,
              reservations,
            ),
        }
      : {}),
    leases,
    ...(o.lifecycleDefaults ? { lifecycleDefaults: o.lifecycleDefaults } : {}),
  };
  const lifecycle = (logger: Logger): LifecycleDeps => ({ ledger, tracker: o.tracker, leases, queue, now, logger });
  return {
    ledger,
    reservations,
    state,
    leases,
    deps,
    lifecycle,
    handle: (message, meta, logger) => handleScaleQueueMessage(deps, message, meta, logger),
    submitRequest: async (message, options = {}) => {
      const admission = {
        ledger,
        queue,
        now,
        lifecycle: lifecycle(o.logger ?? silentLogger),
        ...(o.lifecycleDefaults ? { lifecycleDefaults: o.lifecycleDefaults } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
      };
      const result = await submitRequest(admission, message, options);
      if (result.outcome === 'created') startNow(message);
      return result;
    },
    drain: async () => {
      while (runs.size > 0) await Promise.allSettled([...runs]);
    },
  };

  function startNow(message: RequestMessage): void {
    if (running >= fastPath) return;
    running += 1;
    const requestId = message.requestId;
    const log = withJobIds((o.logger ?? silentLogger).child({ requestId, path: 'fast' }), message);
    const run = processEntry(deps, requestId, log)
      .catch((error: unknown) => log.info('fast path stopped; the queue message carries on', { error }))
      .finally(() => {
        running -= 1;
        runs.delete(run);
      });
    runs.add(run);
  }
}
