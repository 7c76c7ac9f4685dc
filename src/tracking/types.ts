/**
 * What the submission path hands the tracker, and the internal wake-up message both use.
 */

/** Starts following one CycleCloud operation until every node is final. */
export interface TrackStart {
  cluster: string;
  /**
   * CycleCloud's operation id, from the 202 of the create or terminate; null when that answer was
   * lost (a lookup by request id does not say it: OperationStatus is `{action, startTime}`). The
   * operation is then followed by `cycleCloudRequestId`, which always names it.
   */
  operationId: string | null;
  /** The CycleCloud requestId the operation was sent under: the tracker's key. */
  cycleCloudRequestId: string;
  /** The caller's requestId (ledger key). */
  requestId: string;
  /** `create` for scale requests, `terminate` for terminate requests and compensations, `start` for a terminate request's `action: "start"`. */
  action: 'create' | 'terminate' | 'start';
  /** For creates: the submission generation (see SubmissionAttempt). */
  generation: number;
  /** For creates: the sets as sent, with which demand each node belongs to. */
  sets: { nodearray: string; machineType: string; placementGroupId: string | null; count: number; added: number; colocated: boolean; demands: { index: number; count: number }[] }[];
  /** For compensations: the node names being terminated. */
  nodeNames?: string[];
  /** For terminates: the CycleCloud NodeId of each name, when known (a name may be reused by a later node). */
  nodeIds?: Record<string, string>;
}

/**
 * What the tracker needs of the request pipeline: a way to make it look at a request again (a
 * demand to re-plan, lost nodes to replace). The composition root passes `continuePort` from
 * `src/requests/queue.ts`; the tracker never holds the pipeline itself.
 */
export interface RequestPipelinePort {
  continueRequest(requestId: string, reason: string): Promise<void>;
}

export interface TrackerApi {
  /** Idempotent on (cluster, cycleCloudRequestId): writes the tracker record (if absent) and schedules the first poll. */
  start(t: TrackStart): Promise<void>;
}

/**
 * An internal message on the scale queue meaning "look at this ledger entry again": a waiting request
 * whose backoff elapsed, or a demand the tracker wants re-planned. Recognised before validation; it is
 * never a caller's message (callers cannot send `$scaler`).
 */
export interface ContinueMessage {
  $scaler: 'continue';
  requestId: string;
  reason?: string;
  /**
   * For the pipeline's own backoff wake-ups: the ledger entry's `nextAttemptAtMs` when it was sent.
   * A wake-up whose value no longer matches was superseded and is dropped.
   */
  wakeAtMs?: number;
}

export function isContinueMessage(m: unknown): m is ContinueMessage {
  return !!m && typeof m === 'object' && (m as { $scaler?: unknown }).$scaler === 'continue' && typeof (m as { requestId?: unknown }).requestId === 'string';
}
