/**
 * What the submission path hands the tracker, and the internal wake-up message both use.
 */

/** Starts following one CycleCloud operation until every node is final. */
export interface TrackStart {
  cluster: string;
  /** The request's W3C `traceparent` (its ledger entry's): each poll's span is its child. */
  traceparent?: string;
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
  sets: {
    nodearray: string;
    machineType: string;
    placementGroupId: string | null;
    count: number;
    added: number;
    colocated: boolean;
    demands: { index: number; count: number }[];
    /** The set's bucket is spot: its nodes are recorded as spot. */
    spot?: true;
    /** A spot set of a `spot-first` demand: nodes not Ready this long after the start are given up for regular ones. */
    spotFallbackMs?: number;
  }[];
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

/** Which nodes a terminate (or shutdown, or start) names, as `nodes/terminate` takes them. */
export interface TerminateTarget {
  ids?: string[];
  names?: string[];
  hostnames?: string[];
  ip_addresses?: string[];
  filter?: string;
}

/** One terminate (or shutdown, or start) to send under a deterministic CycleCloud requestId and follow. */
export interface TerminateOrder {
  cluster: string;
  /** The caller's requestId (ledger key). */
  requestId: string;
  /** Derived from `requestId` (`src/ledger/record.ts`): the same order always goes under the same id. */
  cycleCloudRequestId: string;
  generation: number;
  action: 'terminate' | 'shutdown' | 'start';
  target: TerminateTarget;
  /**
   * The nodes the tracker follows (those CycleCloud refused are left out), with their NodeIds where
   * known. Default: the nodes CycleCloud answered with, or after a 409 those it lists under the id.
   */
  follow?: { names: string[]; nodeIds?: Record<string, string> };
  /** Sends while the outcome stays unknown (timeouts, resets, 5xx after sending). Default 3. */
  rounds?: number;
}

/** What CycleCloud took of a terminate order. */
export interface TerminateResult {
  /** From the 202; null after a 409 (CycleCloud had it already: it is followed by its request id). */
  operationId: string | null;
  /** The nodes of the answer, or after a 409 those CycleCloud lists under the request id (only without `follow`). */
  nodes: { id: string | null; name: string; status: string; error: string | null }[];
  /** CycleCloud calls made. */
  calls: number;
}

export interface TrackerApi {
  /**
   * Idempotent on (cluster, cycleCloudRequestId): writes the tracker record (if absent) and schedules
   * the first poll. A create's colocated sets that CycleCloud filled only in part (`added` < `count`)
   * are compensated before it returns: the partial set is terminated and the demand left to re-plan.
   */
  start(t: TrackStart): Promise<void>;
  /**
   * The one terminate-and-reconcile path: sends the order under its CycleCloud requestId, resolves
   * an unknown outcome by sending it again under the same id (409 = CycleCloud has it), and starts
   * the tracker on it. Throws the CycleCloud error when CycleCloud refuses it or the outcome stays
   * unknown after `rounds` sends.
   */
  terminate(order: TerminateOrder): Promise<TerminateResult>;
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
