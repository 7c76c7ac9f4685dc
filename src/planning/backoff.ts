/**
 * Capacity-failure backoff per (cluster, nodearray, machineType), pure.
 *
 * The policy follows Kubernetes cluster-autoscaler's node-group backoff (reference/peers.md §0.4):
 * the first failure backs a bucket off for `minMs`; a failure that arrives after the backoff ended
 * (but within `resetAfterMs` of the previous one) doubles it, capped at `maxMs`; a failure while
 * still backing off does not double (the same capacity shortage reported twice is one event); and
 * `resetAfterMs` without failures forgets the history.
 */
import type { CapacityBackoff } from './types.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';

export interface BackoffPolicy {
  /** First backoff. Default 5 min. */
  minMs?: number;
  /** Longest backoff. Default 30 min. */
  maxMs?: number;
  /** Quiet time after which the failure history is forgotten. Default 3 h. */
  resetAfterMs?: number;
}

export const DEFAULT_BACKOFF_POLICY: Required<BackoffPolicy> = { minMs: 5 * 60_000, maxMs: 30 * 60_000, resetAfterMs: 3 * 3_600_000 };

/** What is remembered about one bucket. */
export interface BackoffState {
  nodearray: string;
  machineType: string;
  /** Backoffs started since the last reset (1 after the first failure). */
  failures: number;
  /** When the latest failure happened (for de-duplication and reset). */
  lastFailureAtMs: number;
  /** Current backoff length. */
  durationMs: number;
  untilMs: number;
  reason: string;
}

export interface CapacityFailure {
  nodearray: string;
  machineType: string;
  reason: string;
  /** When the failure happened, if known (e.g. from CycleCloud's `lastCapacityFailure`); default now. */
  failedAtMs?: number;
}

/**
 * Failures reported within this distance of the last one are the same failure seen again (a
 * snapshot each minute repeats CycleCloud's `lastCapacityFailure`, which has 1-second resolution).
 */
const SAME_FAILURE_MS = 5_000;

/**
 * The state after a failure. Returns `prev` unchanged (same object) when the failure is one already
 * recorded, so callers can skip the write.
 */
export function nextBackoff(prev: BackoffState | null, failure: CapacityFailure, nowMs: number, policy: BackoffPolicy = {}): BackoffState {
  const { minMs, maxMs, resetAfterMs } = { ...DEFAULT_BACKOFF_POLICY, ...policy };
  const failedAtMs = Math.min(failure.failedAtMs ?? nowMs, nowMs);
  if (prev && failedAtMs <= prev.lastFailureAtMs + SAME_FAILURE_MS) return prev;
  const base = { nodearray: failure.nodearray, machineType: failure.machineType, lastFailureAtMs: failedAtMs, reason: failure.reason };
  if (!prev || failedAtMs - prev.lastFailureAtMs >= resetAfterMs) {
    return { ...base, failures: 1, durationMs: minMs, untilMs: failedAtMs + minMs };
  }
  if (failedAtMs < prev.untilMs) {
    // Still backing off: remember the newer failure, keep the length and the end.
    return { ...base, failures: prev.failures, durationMs: prev.durationMs, untilMs: prev.untilMs };
  }
  const durationMs = Math.min(maxMs, prev.durationMs * 2);
  return { ...base, failures: prev.failures + 1, durationMs, untilMs: failedAtMs + durationMs };
}

/** True while the bucket should be skipped. */
export function isBackingOff(state: BackoffState, nowMs: number): boolean {
  return state.untilMs > nowMs;
}

/** The planner's view of a state. */
export function toCapacityBackoff(state: BackoffState): CapacityBackoff {
  return { nodearray: state.nodearray, machineType: state.machineType, untilMs: state.untilMs, reason: state.reason };
}

/**
 * The capacity failures a snapshot reveals: buckets whose `lastCapacityFailureSec` is younger than
 * `windowSec` at `takenAt`, with the absolute failure time (so repeated snapshots dedupe).
 */
export function snapshotCapacityFailures(snapshot: ClusterSnapshot, windowSec = 300): CapacityFailure[] {
  const takenAtMs = Date.parse(snapshot.takenAt);
  const out: CapacityFailure[] = [];
  for (const na of snapshot.nodearrays) {
    for (const b of na.buckets) {
      const sec = b.lastCapacityFailureSec;
      if (sec === null || sec < 0 || sec >= windowSec) continue;
      out.push({
        nodearray: na.name,
        machineType: b.machineType,
        failedAtMs: takenAtMs - Math.round(sec * 1000),
        reason: `CycleCloud reported a capacity failure on ${na.name}/${b.machineType}`,
      });
    }
  }
  return out;
}

// Azure allocation failures as CycleCloud words them in `sets[].message` and node StatusMessage.
const CAPACITY_MESSAGE = /capacity|allocat|SkuNotAvailable|OverconstrainedAllocationRequest|ZonalAllocationFailed|not enough|insufficient|quota/i;

/**
 * Whether a create set that added fewer nodes than asked failed for capacity (as opposed to, say,
 * a name collision): the message speaks of capacity, allocation, SKU availability or quota.
 */
export function isCapacityShortfall(asked: number, added: number, message: string | undefined): boolean {
  return added < asked && message !== undefined && CAPACITY_MESSAGE.test(message);
}
