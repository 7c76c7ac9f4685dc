/**
 * The request ledger's interface (implemented in `ledger.ts` over Table storage, ETag concurrency).
 * One entry per caller `requestId`. The public record (docs/api.md §5) is part of it; the rest is the
 * scaler's own bookkeeping, never returned over HTTP.
 */
import type { RequestMessage, RequestRecord, RequestState } from './schemas.ts';

export interface SubmissionAttempt {
  /** 0 for the first create, +1 for each re-plan after compensation. */
  generation: number;
  /** The CycleCloud requestId used for this create (deterministic from requestId + generation). */
  cycleCloudRequestId: string;
  /** Intent is written before the call; the outcome after. */
  state: 'intent' | 'accepted' | 'unknown' | 'failed';
  operationId: string | null;
  /** The sets sent, with the demand each node belongs to. */
  sets: {
    nodearray: string;
    machineType: string;
    placementGroupId: string | null;
    count: number;
    added: number | null;
    message: string | null;
    demands: { index: number; count: number }[];
    nameFormat?: string;
    nameOffset?: number;
    /** The set's bucket is spot (its nodearray is `Interruptible`). */
    spot?: true;
  }[];
  submittedAtMs: number;
  /** When the create was last sent again after a lookup found nothing (absent: only at `submittedAtMs`). */
  sentAtMs?: number;
  /** When CycleCloud's answer (or the reconciliation that found the create) was received. */
  acceptedAtMs?: number;
  /**
   * Sent in a batch (src/requests/create-batch.ts): the CycleCloud requestId of the one create that
   * carried this attempt's sets beside other requests' (`cycleCloudRequestId` then names only this
   * attempt's share: its nodes' `ccscale-create` tag, its reservation, its tracker). Absent: the
   * create was this attempt's alone, under `cycleCloudRequestId`.
   */
  batch?: string;
}

export interface LedgerEntry {
  record: RequestRecord;
  /** W3C `traceparent` of the span that accepted the request: every later hop's span is its child. */
  traceparent?: string;
  /** The validated message (null when the message was rejected unparsed). */
  request: RequestMessage | null;
  /** sha256 of the canonical JSON of the message: same id + same hash = duplicate; different = conflict. */
  bodyHash: string;
  attempts: SubmissionAttempt[];
  /** Absolute deadline for the request (epoch ms). */
  deadlineAtMs: number;
  /** Next time a waiting request should be planned again (epoch ms) or null. */
  nextAttemptAtMs: number | null;
  /** Table ETag of the row this was read from. */
  etag?: string;
  /**
   * Last known outcome of every node the request created, by node key (`nodeKey` in `record.ts`: the
   * CycleCloud NodeId when known, else the name — CycleCloud reuses a removed node's name).
   */
  nodeOutcomes?: Record<string, NodeOutcome>;
  /** Partial colocated sets being terminated: their nodes no longer count, their groups are never reused. */
  compensations?: Compensation[];
  /** Demand indexes that will not be retried (rejected by the planner, re-plan attempts exhausted), with why. */
  closedDemands?: Record<number, string>;
  /** How many times in a row the request was put back to wait (drives the continue backoff). */
  waits?: number;
  /** State and ready-node changes with their time, oldest first (the console's timeline and trends; `listing.ts`). */
  transitions?: Transition[];
  /** Demands of `capacity: "spot-first"` whose spot nodes missed `spotFallbackSeconds`: planned on regular buckets only from then on. */
  regularOnly?: number[];
  /** The shutdowns the scaler sent for a released request (`lease.ts`), one per round of nodes found alive. */
  releases?: ReleaseRound[];
  /** Slurm node names the sync already told slurmctld to set down for this request (`src/slurm/sync.ts`): never twice. */
  slurmReported?: string[];
}

/**
 * One shutdown of a released request's nodes: written as `intent` before the call, `sent` once
 * CycleCloud took it. An `intent` found later is sent again under the same CycleCloud requestId,
 * which CycleCloud answers 409 if it had it: a node is never shut down twice.
 */
export interface ReleaseRound {
  round: number;
  cycleCloudRequestId: string;
  names: string[];
  /** CycleCloud NodeId by name, where known (names are reused). */
  nodeIds: Record<string, string>;
  /** Node keys (`nodeKey`) the round covers. */
  keys: string[];
  state: 'intent' | 'sent';
  atMs: number;
}

/** One point of a request's history: its state and ready nodes from `atMs` on. */
export interface Transition {
  state: RequestState;
  /** Ready nodes over all demands. */
  ready: number;
  atMs: number;
}

/** A node's fate as the tracker sees it. */
export type NodeOutcome = 'pending' | 'ready' | 'failed' | 'gone' | 'timed_out';

export interface Compensation {
  demandIndex: number;
  placementGroupId: string | null;
  nodeNames: string[];
  /**
   * The same nodes by node key (`nodeKey` in `record.ts`), in the order of `nodeNames`. A name alone
   * is not enough: once CycleCloud removes a terminated node it may give its name to a new one.
   * Absent on compensations recorded without ids (then `nodeNames` are the keys).
   */
  nodeKeys?: string[];
  reason: string;
  atMs: number;
  /**
   * How many nodes CycleCloud added to the group, when the submission compensated a partial add:
   * those it could not list yet (lists may lag a create) still count as lost until the tracker
   * adds them to `nodeKeys`.
   */
  added?: number;
  /** The CycleCloud terminate operation, once sent (absent = terminate still to send or to look up). */
  operationId?: string | null;
  /** The CycleCloud requestId of that terminate. */
  cycleCloudRequestId?: string;
}

export interface AdmitOptions {
  /** Read before creating (see {@link RequestLedgerApi.admit}). */
  readFirst?: boolean;
  /**
   * The lease and max lifetime a new scale request gets when it names none (`DEFAULT_LEASE_SECONDS`,
   * `DEFAULT_MAX_LIFETIME_SECONDS`). Absent for Slurm's requests: Slurm suspends its own nodes.
   */
  lifecycleDefaults?: LifecycleDefaults;
  /** The W3C `traceparent` of the accept span (src/platform/tracing.ts), kept on a new entry. */
  traceparent?: string;
}

export interface LifecycleDefaults {
  leaseSeconds?: number;
  maxLifetimeSeconds?: number;
}

export type AdmitResult = { outcome: 'created'; entry: LedgerEntry } | { outcome: 'duplicate'; entry: LedgerEntry } | { outcome: 'conflict'; entry: LedgerEntry };

export interface RequestLedgerApi {
  get(requestId: string): Promise<LedgerEntry | null>;
  /** Creates the entry in state `queued` unless the requestId exists (then duplicate or conflict). */
  /**
   * Records a new request, or finds the one already recorded under its id (`duplicate` when the
   * content is the same, `conflict` when not). `readFirst` reads before creating: one round trip
   * instead of three when the entry usually exists (a queue delivery of a request admitted over HTTP).
   */
  admit(message: RequestMessage, nowMs: number, options?: AdmitOptions): Promise<AdmitResult>;
  /**
   * Records a message that failed validation as `rejected` (key: its requestId or `msg-<queue message id>`).
   * `kind` is what the message said it was; default `scale` (the message default).
   */
  reject(requestId: string, cluster: string | null, reason: string, errors: { path: string; message: string }[], nowMs: number, kind?: 'scale' | 'terminate'): Promise<LedgerEntry>;
  /** Read-modify-write with ETag; retried on 412. `mutate` may be called more than once. */
  /**
   * Applies `mutate` to the stored entry and writes it back if it changed (ETag-guarded, retried on
   * contention). `known`, the entry as the caller last read or wrote it, saves the read when it is
   * still current; when it is not (or the mutation does nothing or throws on it) the update reads.
   */
  update(requestId: string, mutate: (entry: LedgerEntry) => LedgerEntry | void, known?: LedgerEntry): Promise<LedgerEntry>;
  /** Entries not in a final state (for sweepers). */
  listOpen(cluster?: string): Promise<LedgerEntry[]>;
}
