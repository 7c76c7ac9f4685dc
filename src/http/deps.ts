/**
 * What the HTTP handlers need, as narrow interfaces. The real implementations live elsewhere
 * (`src/requests/`, `src/snapshots/`, `src/planning/`); the composition root passes them in, and
 * tests pass fakes. Every member is shaped after the real module's method of the same name so a
 * real instance can be passed as is.
 */
import type { Prices } from '../platform/prices.ts';
import type { Tenants } from '../platform/tenants.ts';
import type { TenantUsageReader } from './tenant-routes.ts';
import type { GovernorView } from '../cyclecloud/governor.ts';
import type { CallbackTargetPolicy } from '../platform/callback-target.ts';
import type { Logger } from '../platform/log.ts';
import { statusOf, type Storage } from '../platform/storage.ts';
import type { ReplayCache } from '../platform/replay-cache.ts';
import type { RequestMessage, RequestRecord } from '../ledger/schemas.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import type { ListRequestsQuery, RequestPage, RequestSummary, TrendRow } from '../ledger/listing.ts';
import type { ClusterSnapshot, ClusterStatusView } from '../snapshots/model.ts';
import type { SlurmSyncAnswer, SlurmSyncRequest } from '../slurm/sync.ts';
import type { CapacityBackoff, InFlightAllocation, Plan, PlanInput, PlanOptions } from '../planning/types.ts';

/** What `submitRequest` from `src/requests/intake.ts` answers (bound to its own deps by the caller). */
export interface SubmitResult {
  outcome: 'created' | 'duplicate' | 'conflict';
  record: RequestRecord;
}

/** What renew and release answer: the entry as written, or why not (404 unknown, 409 refused). */
export type LifecycleAnswer = { ok: true; entry: LedgerEntry } | { ok: false; status: 404 | 409; message: string };

/** The ledger's read side (`RequestLedger` in `src/ledger/ledger.ts`). */
export interface LedgerReader {
  /** The public record (docs/api.md §5) or null when unknown. */
  getRecord(requestId: string): Promise<RequestRecord | null>;
  /** When a request unknown to {@link getRecord} was deleted by retention (`RETENTION_DAYS`); null when never known. */
  tombstone?(requestId: string): Promise<{ state: string; finalAt: string | null; expiredAt: string } | null>;
  /** Nodes reserved for `cluster` that a snapshot whose read started at `sinceMs` cannot count yet. */
  inFlight(cluster: string, sinceMs: number): Promise<InFlightAllocation[]>;
}

/** The request list (`RequestListing` in `src/ledger/listing.ts`), for the console's read routes. */
export interface RequestsReader {
  list(query: ListRequestsQuery): Promise<RequestPage>;
  search(text: string, options?: { limit?: number; windowMs?: number }): Promise<RequestSummary[]>;
  trendRows(fromMs: number, toMs: number): Promise<TrendRow[]>;
  /** The ledger entry (record plus history) or null. */
  entry(requestId: string): Promise<LedgerEntry | null>;
}

/** The pause switch and counters (`ScalerState` in `src/requests/state.ts`). */
export interface ScalerStateApi {
  isPaused(): Promise<boolean>;
  setPaused(paused: boolean, by?: string): Promise<void>;
  /** Counter values by name; `rejectedMessages` is the one health reports. Absent counters are 0. */
  counters(): Promise<Record<string, number>>;
}

/** Per-cluster snapshot health (`SnapshotStore#health`). Null when the cluster was never snapshotted. */
export interface SnapshotHealth {
  takenAt: string | null;
  ageSeconds: number | null;
  consecutiveFailures: number;
  stale: boolean;
  lastError?: string | null;
}

/** The snapshot store's read side (`SnapshotStore` in `src/snapshots/`). */
export interface SnapshotReader {
  latest(cluster: string): Promise<ClusterSnapshot | null>;
  health(cluster: string): Promise<SnapshotHealth | null>;
  listClusters(): Promise<string[]>;
}

/** The capacity-failure memory (`CapacityMemory#active`). */
export interface CapacityReader {
  active(cluster: string, nowMs: number): Promise<CapacityBackoff[]> | CapacityBackoff[];
}

export interface HttpDeps {
  /** Epoch-ms clock. */
  now: () => number;
  logger: Logger;
  /** `GET /api/metrics`: this process's OpenTelemetry figures as Prometheus text; absent = the route answers 404. */
  metricsText?: () => Promise<string>;
  /** Admits a validated message to the ledger and enqueues it (`submitRequest` from `src/requests/intake.ts`). */
  submitRequest(message: RequestMessage, options?: { scheduler?: boolean; traceparent?: string }): Promise<SubmitResult>;
  /** `POST /api/scale-requests/{id}/renew` (`renew` in `src/requests/lifecycle.ts`); absent = the route answers 404. */
  renew?(requestId: string, seconds: number | undefined): Promise<LifecycleAnswer>;
  /** Lease figures for health (`leaseView` in `src/requests/lifecycle.ts`); absent = health leaves them out. */
  leases?: {
    view(nowMs: number): Promise<{ tracked: number; due: number; nodesPastLease: number }>;
    /** Summaries of the leased requests, the soonest due first (`GET /api/scale-requests?leased=true`). */
    soonest?(limit: number): Promise<RequestSummary[]>;
  };
  /** `POST /api/slurm/sync` (`runSlurmSync` in `src/slurm/sync.ts`); absent = the route answers 404. */
  slurmSync?(report: SlurmSyncRequest): Promise<{ ok: true; answer: SlurmSyncAnswer } | { ok: false; errors: { path: string; message: string }[] }>;
  /** ResumeFailProgram named these nodes: close the resume demands still waiting for them (`closeGivenUp` in `src/slurm/sync.ts`). Absent = only the terminate. */
  slurmGaveUp?(cluster: string, names: readonly string[]): Promise<string[]>;
  /** `POST /api/scale-requests/{id}/release` (`release` in `src/requests/lifecycle.ts`); absent = 404. */
  release?(requestId: string): Promise<LifecycleAnswer>;
  /** Where callbacks may go: a `callbackUrl` the send-time check would always refuse is a 400. Absent = not checked here. */
  callbackTarget?: CallbackTargetPolicy;
  ledger: LedgerReader;
  /** The tenants document (docs/api.md, Tenants): a request's default tenant by its key, `GET /api/tenants`. Absent: every request `default`. */
  tenants?: Tenants;
  /** Per cluster, what each tenant holds and the cluster's size, for `GET /api/tenants`; absent = no usage shown. */
  tenantUsage?: TenantUsageReader;
  /** The price table in force (docs/api.md, Cost); absent or undefined = records carry no cost. */
  prices?: () => Prices | undefined;
  /** Per tenant: cost today and this month (UTC) over every configured cluster; absent = `costToday` null. */
  tenantCosts?: (nowMs: number) => Promise<ReadonlyMap<string, { today: number; month: number }>>;
  /** The request list and histories; absent = the list, timeline and trends routes answer 404. */
  requests?: RequestsReader;
  state: ScalerStateApi;
  snapshots: SnapshotReader;
  capacity: CapacityReader;
  /** The pure planner (`plan` from `src/planning/planner.ts`). */
  plan(input: PlanInput): Plan;
  /** Options the submission path gives the planner, so an explanation matches what would happen. */
  planOptions?: PlanOptions;
  /** The status view of docs/api.md §4 (`statusView` from `src/snapshots/`). */
  statusView(snapshot: ClusterSnapshot, nowMs: number, options: { stale: boolean }): ClusterStatusView;
  /**
   * Reads a cluster from CycleCloud now and stores the snapshot; null when CycleCloud has no such
   * cluster. Status and plan use it when no snapshot is stored yet (the timer's first run may be a
   * minute away). Absent = those routes answer 404 until the timer has run.
   */
  readLive?: (cluster: string) => Promise<ClusterSnapshot | null>;
  /** Clusters the scaler is configured for (`CYCLECLOUD_CLUSTERS`); shown by health even before a snapshot. */
  configuredClusters?: () => readonly string[];
  /** Approximate message count of a queue; 0 for a queue that does not exist. See {@link queueDepthFrom}. */
  queueDepth(queue: string): Promise<number>;
  queues: { scaleQueue: string; scalePoisonQueue: string };
  /** The HMAC key for incoming signatures (Key Vault or a local setting); undefined = signatures not checked. */
  signingSecret(): Promise<string | undefined>;
  /**
   * Every active HMAC key, current first (a second one during rotation, docs/api.md §4). Absent = only
   * {@link signingSecret}.
   */
  signingSecrets?(): Promise<readonly string[]>;
  /** Where seen signatures are remembered (storage, shared by instances). Absent = in this process only. */
  replayCache?: ReplayCache;
  /** When true, POSTs without a signature are refused (needs a signing secret). Default false. */
  requireSignatures?: boolean;
  /** The fleet-wide CycleCloud governor, shown by health (paused until, creates in flight, calls/min). Absent = not shown. */
  governor?: { view(clusters: readonly string[]): Promise<GovernorView> };
  /** Health answers within this time or reports storage unreachable. Default 5000 ms. */
  healthTimeoutMs?: number;
  /** A snapshot older than this counts as stale in health and status, whatever the failure count. Default: only the store's verdict. */
  staleAfterMs?: number;
}

/** `queueDepth` over the storage account: `getProperties().approximateMessagesCount`, 0 when the queue is missing. */
export function queueDepthFrom(storage: Pick<Storage, 'queue'>): (queue: string) => Promise<number> {
  return async (queue) => {
    try {
      const props = await storage.queue(queue).getProperties();
      return props.approximateMessagesCount ?? 0;
    } catch (error) {
      // A poison queue exists only after the first poisoned message: absent means none.
      if (statusOf(error) === 404) return 0;
      throw error;
    }
  };
}
