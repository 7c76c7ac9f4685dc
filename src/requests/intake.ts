/**
 * Intake: the scale-queue handler and the HTTP admission path.
 *
 * The queue handler throws ONLY for transient failures, so the Functions host retries the message
 * with backoff and, after `maxDequeueCount`, moves it to the poison queue; on that last attempt the
 * request record is first marked `failed` with the reason. Everything else (invalid, not JSON,
 * conflicting) is recorded and counted, and the message is completed: it is never retried and
 * never blocks the queue.
 */
import type { Logger } from '../platform/log.ts';
import { codeOf } from '../platform/errors.ts';
import { isContinueMessage } from '../tracking/types.ts';
import type { RequestLedgerApi } from '../ledger/types.ts';
import { parseRequestMessage, usableRequestId, type RequestMessage, type RequestRecord } from '../ledger/schemas.ts';
import { isFinal } from '../ledger/record.ts';
import { refusedAtIntake, type CallbackTargetPolicy } from '../platform/callback-target.ts';
import { decodeIntakeMessage, recordableText, sendAdmitted } from './intake-guards.ts';
import { processEntry, WAIT_REASON, type ProcessResult, type QueueSender, type SubmitDeps } from './submit.ts';

/** Counters and the pause switch (`ScalerState`). */
export interface IntakeState {
  isPaused(): Promise<boolean>;
  increment(counter: string): Promise<unknown>;
}

export interface IntakeDeps extends SubmitDeps {
  state: IntakeState;
  /** Where callbacks may go; absent = no intake check (the send-time check still applies). */
  callbackTarget?: CallbackTargetPolicy;
}

/**
 * The message's fields that the send-time checks would always refuse (docs/api.md §3): today a
 * `callbackUrl` whose scheme, allow-list or IP-literal host can never be called. Empty = none.
 */
export function intakeRefusals(message: RequestMessage, policy: CallbackTargetPolicy | undefined): { path: string; message: string }[] {
  if (!policy || !message.callbackUrl) return [];
  const reason = refusedAtIntake(message.callbackUrl, policy);
  return reason ? [{ path: 'callbackUrl', message: reason }] : [];
}

export interface QueueMessageMeta {
  /** The queue message id (Functions `triggerMetadata.id`). */
  messageId: string;
  dequeueCount: number;
  /** The host's `maxDequeueCount` (default 5). */
  maxDequeueCount: number;
  /** Where the host moves the message after the last attempt, e.g. `scale-requests-poison`. */
  poisonQueue: string;
}

const MAX_REASON_FIELDS = 20;

/**
 * Handles one message of the scale queue. `message` is what the host hands over: a parsed object
 * for JSON, a string for other text. Returns what was done, for logs and tests.
 */
export async function handleScaleQueueMessage(
  deps: IntakeDeps,
  message: unknown,
  meta: QueueMessageMeta,
  logger: Logger,
): Promise<ProcessResult | { action: 'rejected' | 'conflict' | 'superseded'; requestId: string; state: string | null }> {
  const log = logger.child({ queueMessageId: meta.messageId, dequeueCount: meta.dequeueCount });
  const decoded = decodeIntakeMessage(message);
  if (!decoded.ok) return recordBroken(deps, meta, log, decoded.reason);
  const body: unknown = decoded.body;

  if (isContinueMessage(body)) {
    // Its id becomes a storage key: one that is not a valid requestId is recorded, never retried.
    const requestId = usableRequestId(body.requestId);
    if (requestId === null) return recordBroken(deps, meta, log, 'continue message with an invalid requestId');
    let consumedWakeAtMs: number | undefined;
    if (body.reason === WAIT_REASON && typeof body.wakeAtMs === 'number') {
      const entry = await deps.ledger.get(requestId);
      // Superseded only by another scheduled wake-up. With none scheduled (a create went out and
      // cleared it, then the run died before tracking it) this is the only message left that
      // finishes the job: dropping it would leave the request open for ever.
      if (entry && !isFinal(entry) && entry.nextAttemptAtMs !== null && entry.nextAttemptAtMs !== body.wakeAtMs) {
        log.debug('superseded wake-up dropped', { requestId });
        return { action: 'superseded', requestId, state: entry.record.state };
      }
      consumedWakeAtMs = body.wakeAtMs;
    }
    return withTransientHandling(deps, requestId, meta, log, () => processEntry(deps, requestId, log, consumedWakeAtMs === undefined ? {} : { consumedWakeAtMs }));
  }

  const first = parseRequestMessage(body);
  const refusals = first.ok ? intakeRefusals(first.value, deps.callbackTarget) : [];
  const parsed: typeof first = refusals.length > 0 ? { ok: false, errors: refusals } : first;
  const rawId = (body as { requestId?: unknown }).requestId;
  const usableId = usableRequestId(rawId);
  if (!parsed.ok) {
    const key = usableId ?? `msg-${meta.messageId}`;
    const rawCluster = (body as { cluster?: unknown }).cluster;
    const cluster = recordableText(rawCluster);
    const shown = parsed.errors.slice(0, MAX_REASON_FIELDS).map((e) => `${e.path || '(message)'}: ${e.message}`);
    const more = parsed.errors.length > MAX_REASON_FIELDS ? `; and ${parsed.errors.length - MAX_REASON_FIELDS} more` : '';
    const reason = `invalid request: ${shown.join('; ')}${more}`;
    // A message that says it is a terminate request is recorded as one, even when invalid.
    const kind = (body as { kind?: unknown }).kind === 'terminate' ? 'terminate' : 'scale';
    const entry = await deps.ledger.reject(key, cluster, reason, parsed.errors, deps.now(), kind);
    await deps.state.increment('rejectedMessages');
    if (entry.record.state !== 'rejected') log.warn('invalid message reuses a known requestId; the existing record stands', { requestId: key, reason });
    else log.warn('message rejected', { requestId: key, reason });
    return { action: 'rejected', requestId: key, state: entry.record.state };
  }

  const request = parsed.value;
  // docs/api.md §3: a demand's jobId is a label carried into logs (and the record's demands).
  const requestLog = withJobIds(log, request);
  return withTransientHandling(deps, request.requestId, meta, requestLog, async () => {
    // Most deliveries are of a request admitted over HTTP: read first (1 round trip, not 3).
    const admitted = await deps.ledger.admit(request, deps.now(), { readFirst: true });
    if (admitted.outcome === 'conflict') {
      // The first record stands; the conflicting message is recorded on its own so it is visible.
      const key = `msg-${meta.messageId}`;
      await deps.ledger.reject(
        key,
        request.cluster,
        `conflict: requestId ${request.requestId} already exists with different content`,
        [{ path: 'requestId', message: 'already used with different content' }],
        deps.now(),
      );
      await deps.state.increment('rejectedMessages');
      requestLog.warn('message conflicts with an existing request', { requestId: request.requestId, recordedAs: key });
      return { action: 'conflict', requestId: request.requestId, state: admitted.entry.record.state };
    }
    // An HTTP submission admits before it enqueues, so its message's first delivery finds the entry:
    // only a message seen before (dequeueCount > 1) is a real redelivery worth a line at info.
    if (admitted.outcome === 'duplicate') {
      if (meta.dequeueCount > 1) requestLog.info('duplicate delivery; continuing the existing request', { requestId: request.requestId });
      else requestLog.debug('request already admitted (HTTP, or the same message sent again); continuing it', { requestId: request.requestId });
    }
    return processEntry(deps, request.requestId, requestLog, { entry: admitted.entry });
  });
}

/** Not JSON, or no usable requestId: recorded under `msg-<queue message id>`, counted, completed. */
async function recordBroken(deps: IntakeDeps, meta: QueueMessageMeta, log: Logger, reason: string): Promise<{ action: 'rejected'; requestId: string; state: string | null }> {
  const key = `msg-${meta.messageId}`;
  log.warn('unreadable message removed', { recordedAs: key, reason });
  const entry = await deps.ledger.reject(key, null, reason, [{ path: '', message: reason }], deps.now());
  await deps.state.increment('rejectedMessages');
  return { action: 'rejected', requestId: key, state: entry.record.state };
}

/**
 * Runs `work`; a failure is transient by definition here (everything permanent is recorded, not
 * thrown). On the last delivery the record first says where the message went and why.
 */
async function withTransientHandling<T>(deps: IntakeDeps, requestId: string, meta: QueueMessageMeta, log: Logger, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const why = error instanceof Error ? `${codeOf(error) ? `${codeOf(error)}: ` : ''}${error.message}` : String(error);
    const last = meta.dequeueCount >= meta.maxDequeueCount;
    log.warn(last ? 'transient failure on the last attempt; the message goes to the poison queue' : 'transient failure; the queue will retry', {
      requestId,
      error,
      dequeueCount: meta.dequeueCount,
    });
    if (last) {
      try {
        const entry = await deps.ledger.get(requestId);
        if (entry && !isFinal(entry)) {
          await deps.ledger.update(requestId, (e) => {
            if (isFinal(e)) return e;
            if (e.attempts.some((a) => a.state !== 'failed')) {
              // A create of this request exists or may exist in CycleCloud: failing the request would
              // orphan its nodes. It stays open and the snapshot timer's sweeper wakes it again to
              // resolve and track the create (docs/api.md §5).
              e.record.reason = `message moved to ${meta.poisonQueue} after ${meta.dequeueCount} attempts (${why}); the request stays open until its CycleCloud create is resolved and tracked`;
              e.record.updatedAt = new Date(deps.now()).toISOString();
              return e;
            }
            e.record.state = 'failed';
            e.record.reason = `moved to ${meta.poisonQueue} after ${meta.dequeueCount} attempts: ${why}`;
            e.record.updatedAt = new Date(deps.now()).toISOString();
            e.nextAttemptAtMs = null;
            return e;
          });
        }
        await deps.state.increment('poisonedMessages');
      } catch (recordError) {
        log.error('could not record the poison reason', { requestId, error: recordError });
      }
    }
    throw error;
  }
}

/** What the HTTP API needs to admit a request. */
export interface SubmitRequestDeps {
  ledger: Pick<RequestLedgerApi, 'admit'>;
  /** The scale queue. */
  queue: QueueSender;
  now: () => number;
  /** Where a failed send is logged (the sweeper re-sends it). */
  logger?: Logger;
}

/**
 * Admits a validated message to the ledger and enqueues it on the scale queue (the queue path does
 * the work). A duplicate still `queued` is enqueued again: harmless, since processing is
 * idempotent, and it revives a request whose first enqueue failed after the admit.
 */
export async function submitRequest(deps: SubmitRequestDeps, message: RequestMessage): Promise<{ outcome: 'created' | 'duplicate' | 'conflict'; record: RequestRecord }> {
  const admitted = await deps.ledger.admit(message, deps.now());
  if (admitted.outcome === 'created' || (admitted.outcome === 'duplicate' && admitted.entry.record.state === 'queued')) {
    await sendAdmitted(deps.queue, message, deps.logger);
  }
  return { outcome: admitted.outcome, record: admitted.entry.record };
}

/** docs/api.md §3: a demand's `jobId` is a label carried into logs (and the record's demands). */
export function withJobIds(log: Logger, request: RequestMessage): Logger {
  const jobIds = request.kind === 'scale' ? [...new Set(request.demands.flatMap((d) => (d.jobId === undefined ? [] : [d.jobId])))] : [];
  return jobIds.length > 0 ? log.child({ jobIds }) : log;
}
