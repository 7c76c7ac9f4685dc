/**
 * What every step of one request's run shares (src/requests/submit.ts and its parts): the
 * dependencies and settings, the run's context, the ledger update of the run's entry, and how a
 * run ends (done, or put back to wait with a backoff).
 */
import type { TenantSpend } from './tenant-share.ts';
import type { Tenants } from '../platform/tenants.ts';
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import type { Logger } from '../platform/log.ts';
import { ScalerError } from '../platform/errors.ts';
import type { CapacityBackoff, Plan, PlanInput, PlanOptions } from '../planning/types.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { ContinueMessage, TrackerApi } from '../tracking/types.ts';
import type { LedgerEntry, RequestLedgerApi, SubmissionAttempt } from '../ledger/types.ts';
import type { CapacityReservations } from './reservations.ts';
import { isFinal, setState } from '../ledger/record.ts';
import type { CreateBatcher } from './batch.ts';
import type { CreateSender } from './create-sender.ts';

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
  /** Drops what this process shares of the snapshots, when a run learns its copy is behind. */
  forget?(): void;
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
export type ReservationsApi = Pick<CapacityReservations, 'reserve' | 'reserveMany' | 'accepted' | 'acceptedMany' | 'release'>;

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
  /** Sends creates and records their answers; default {@link createSender} (src/requests/create-sender.ts). */
  sender?: CreateSender;
  /** Group commit of this process's creates per cluster ({@link createBatcher}); absent: each request creates alone. */
  batcher?: CreateBatcher;
  /** The tenants document (weights and caps); absent: every request is the `default` tenant's, weight 1, no cap. */
  tenants?: Tenants;
  /** What tenants spent this month (the cost meter), for budgets; absent: budgets are not enforced (no price table). */
  budgets?: Budgets;
  /**
   * Per tenant, what it holds on every cluster but `cluster` (their newest snapshots and
   * reservations), for caps over all clusters (`*`); absent: those caps count this cluster only.
   */
  holdingsElsewhere?: (cluster: string) => Promise<ReadonlyMap<string, { nodes: number; cores: number }>>;
}

/** The cost meter as a batch reads it for tenants' monthly budgets. */
export interface Budgets {
  spend(nowMs: number): Promise<TenantSpend>;
  currency(): string;
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

export interface Ctx {
  deps: SubmitDeps;
  logger: Logger;
  requestId: string;
  cluster: string;
  cfg: Required<Omit<SubmitConfig, 'planOptions'>> & { planOptions?: PlanOptions };
  consumedWakeAtMs?: number;
  /** This run's span (src/platform/tracing.ts), parent of its plan and create spans. */
  traceparent?: string;
  /**
   * Buckets (`nodearray\u0000machinetype`) this run recorded a partial gang for. The failure is
   * remembered for everyone else, but this run's immediate re-plan may still try ANOTHER group of
   * the same bucket: a placement group that could not grow says little about a fresh one.
   */
  gangFailures: Set<string>;
  /** The entry as this run last read or wrote it: the next update writes on it without a read when nobody wrote since. */
  last?: LedgerEntry;
}

/** Inside a ledger update: another worker moved the request on first, so this run's claim does not hold (caught by the run, never surfaced). */
export class ClaimLost extends ScalerError<'SUBMIT_CLAIM_LOST'> {
  override name = 'ClaimLost';
  constructor(message = 'another worker moved the request on first', options?: { cause?: unknown }) {
    super('SUBMIT_CLAIM_LOST', message, options);
  }
}

/**
 * Plans and submits one request (scale or terminate), or continues it from wherever a previous
 * delivery stopped. Throws only for transient failures (CycleCloud or storage unreachable,
 * throttling, an outcome still unknown after the bounded reconcile rounds).
 */
export interface ProcessOptions {
  /** This run was woken by the backoff wake-up sent for this `nextAttemptAtMs`: that wake-up is used up. */
  consumedWakeAtMs?: number;
  /** The entry as the caller just read or wrote it (admission): the run starts from it instead of reading it again. */
  entry?: LedgerEntry;
  /** The W3C `traceparent` of this run's span: its plan and create spans are children of it. */
  traceparent?: string;
}

export async function update(ctx: Ctx, mutate: (e: LedgerEntry) => LedgerEntry | void): Promise<LedgerEntry> {
  const next = await ctx.deps.ledger.update(ctx.requestId, mutate, ctx.last);
  ctx.last = next;
  return next;
}

/** An attempt whose create may have reached CycleCloud and whose outcome is not recorded yet. */
export const inFlightAttempt = (a: SubmissionAttempt): boolean => a.state === 'intent' || a.state === 'unknown';

/** The generation of the next create of this request. */
export const nextGeneration = (e: LedgerEntry): number => e.attempts.reduce((m, a) => Math.max(m, a.generation + 1), 0);

export function done(entry: LedgerEntry, action: ProcessResult['action']): ProcessResult {
  return { requestId: entry.record.requestId, action, state: entry.record.state };
}

/**
 * Puts the request back to wait: a `continue` message with a visibility delay (15 s doubling to
 * 5 min, never past the deadline by more than a moment), unless one is already scheduled. The
 * message is sent before the ledger says so: a crash in between leaves a harmless extra wake-up,
 * never a request nobody wakes.
 */
export async function wait(
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

export const bucketKey = (nodearray: string, machineType: string): string => `${nodearray}\u0000${machineType.toLowerCase()}`;

/** `demand <i>: <reason>`, unless the planner's reason already starts by naming its demand. */
export function labelled(index: number, reason: string): string {
  return reason.startsWith(`demand ${index} `) ? reason : `demand ${index}: ${reason}`;
}
