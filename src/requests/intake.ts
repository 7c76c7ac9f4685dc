/**
 * Intake: the scale-queue handler and the HTTP admission path.
 *
 * The queue handler throws ONLY for transient failures, so the Functions host retries the message
 * with backoff and, after `maxDequeueCount`, moves it to the poison queue; on that last attempt the
 * request record is first marked `failed` with the reason. Everything else (invalid, not JSON,
 * conflicting) is recorded and counted, and the message is completed: it is never retried and
 * never blocks the queue.
 */
import { DEFAULT_TENANT, type Tenants } from '../platform/tenants.ts';
import type { Logger } from '../platform/log.ts';
import { codeOf } from '../platform/errors.ts';
import { isContinueMessage } from '../tracking/types.ts';
import type { RequestLedgerApi } from '../ledger/types.ts';
import { parseRequestMessage, usableRequestId, type RequestMessage, type RequestRecord } from '../ledger/schemas.ts';
import { isFinal } from '../ledger/record.ts';
import { refusedAtIntake, type CallbackTargetPolicy } from '../platform/callback-target.ts';
import { decodeIntakeMessage, recordableText, sendAdmitted } from './intake-guards.ts';
import { processEntry, WAIT_REASON, type ProcessResult, type QueueSender, type SubmitDeps } from './submit.ts';
import type { LedgerEntry, LifecycleDefaults } from '../ledger/types.ts';
import { isLeaseMessage, onLeaseReminder, release, renew, scheduleLifecycle, type LeaseIndex, type LifecycleDeps } from './lifecycle.ts';
import { parseLifecycleCommand } from '../ledger/schemas.ts';
import { recordMetric } from '../platform/metrics.ts';
import { inSpan, newTraceparent, SpanKind, traceFields } from '../platform/tracing.ts';

/** Counters and the pause switch (`ScalerState`). */
export interface IntakeState {
  isPaused(): Promise<boolean>;
  increment(counter: string): Promise<unknown>;
}

export interface IntakeDeps extends SubmitDeps {
  state: IntakeState;
  /** Where callbacks may go; absent = no intake check (the send-time check still applies). */
  callbackTarget?: CallbackTargetPolicy;
  /** The lease index (`lifecycle.ts`); absent = leases are recorded but nothing enforces them (unit tests of other parts). */
  leases?: LeaseIndex;
  /** `DEFAULT_LEASE_SECONDS`, `DEFAULT_MAX_LIFETIME_SECONDS` for callers' requests that name none. */
  lifecycleDefaults?: LifecycleDefaults;
}

/** The lifecycle's deps out of the intake's, or null when no lease index is wired. */
export function lifecycleDeps(deps: Pick<IntakeDeps, 'ledger' | 'tracker' | 'leases' | 'queue' | 'now'>, logger: Logger): LifecycleDeps | null {
  if (!deps.leases) return null;
  return { ledger: deps.ledger, tracker: deps.tracker, leases: deps.leases, queue: deps.queue, now: deps.now, logger };
}

/**
 * The message's fields that the send-time checks would always refuse (docs/api.md §3): today a
 * `callbackUrl` whose scheme, allow-list or IP-literal host can never be called. Empty = none.
 */
export function intakeRefusals(message: RequestMessage, policy: CallbackTargetPolicy | undefined, tenants?: Tenants): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  const reason = policy && message.callbackUrl ? refusedAtIntake(message.callbackUrl, policy) : null;
  if (reason) out.push({ path: 'callbackUrl', message: reason });
  // A tenant the document does not declare, or a cluster outside its list, can never be served.
  const tenantRefusal = message.kind === 'scale' && tenants ? tenants.refusal(message.tenant ?? DEFAULT_TENANT, message.cluster) : null;
  if (tenantRefusal) out.push({ path: 'tenant', message: tenantRefusal });
  return out;
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

  if (isLeaseMessage(body)) {
    const requestId = usableRequestId(body.requestId);
    if (requestId === null) return recordBroken(deps, meta, log, 'lease message with an invalid requestId');
    const life = lifecycleDeps(deps, log);
    if (!life) return { action: 'missing', requestId, state: null };
    return withTransientHandling(deps, requestId, meta, log, async () => {
      const entry = await onLeaseReminder(life, { ...body, requestId });
      return { action: entry?.record.released ? 'final' : 'tracking', requestId, state: entry?.record.state ?? null } satisfies ProcessResult;
    });
  }

  const kind = body && typeof body === 'object' ? (body as { kind?: unknown }).kind : undefined;
  if (kind === 'renew' || kind === 'release') return handleLifecycleCommand(deps, body, meta, log);

  const first = parseRequestMessage(body);
  const refusals = first.ok ? intakeRefusals(first.value, deps.callbackTarget, deps.tenants) : [];
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
    // A request first seen here (queue-only) starts its trace: the entry keeps it for every later hop.
    const admitted = await deps.ledger.admit(request, deps.now(), {
      readFirst: true,
      traceparent: newTraceparent(),
      ...(deps.lifecycleDefaults ? { lifecycleDefaults: deps.lifecycleDefaults } : {}),
    });
    await noteLifecycle(deps, admitted.outcome, admitted.entry, requestLog);
    // A request first seen here came by the queue; a duplicate is the queue hop of one admitted over
    // HTTP (counted there) or a redelivery, not a new offer.
    if (admitted.outcome !== 'duplicate') recordMetric('scaler.requests', 1, { cluster: request.cluster, outcome: admitted.outcome });
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
    // One span per delivery, child of the accept span kept in the entry (a queue-only request gets a new trace).
    return inSpan(
      'scale-requests process',
      admitted.entry.traceparent,
      SpanKind.CONSUMER,
      { 'messaging.destination.name': 'scale-requests', 'messaging.message.id': meta.messageId },
      ({ traceparent }) => processEntry(deps, request.requestId, requestLog.child(traceFields(traceparent)), { entry: admitted.entry, traceparent }),
    );
  });
}

/**
 * A request just admitted gets its lease reminder; one still `queued` on a later delivery gets its
 * index row again (one write), in case the run that admitted it died before scheduling.
 */
async function noteLifecycle(deps: IntakeDeps, outcome: 'created' | 'duplicate' | 'conflict', entry: LedgerEntry, log: Logger): Promise<void> {
  const life = lifecycleDeps(deps, log);
  if (!life || outcome === 'conflict' || entry.record.released) return;
  if (!entry.record.lease && !entry.record.maxLifetime) return;
  if (outcome === 'created') await scheduleLifecycle(life, entry);
  else if (entry.record.state === 'queued') {
    const due = [entry.record.lease?.expiresAt, entry.record.maxLifetime?.endsAt].filter((t): t is string => !!t).map((t) => Date.parse(t));
    await life.leases.note(entry.record.requestId, entry.record.cluster, Math.min(...due));
  }
}

/** A queue `renew` or `release` of an existing request; a bad or refused one is recorded under `msg-<id>` and counted. */
async function handleLifecycleCommand(
  deps: IntakeDeps,
  body: unknown,
  meta: QueueMessageMeta,
  log: Logger,
): Promise<ProcessResult | { action: 'rejected'; requestId: string; state: string | null }> {
  const parsed = parseLifecycleCommand(body);
  const refuse = async (reason: string, errors: { path: string; message: string }[]) => {
    const key = `msg-${meta.messageId}`;
    const entry = await deps.ledger.reject(key, null, reason, errors, deps.now());
    await deps.state.increment('rejectedMessages');
    log.warn('lifecycle message refused', { recordedAs: key, reason });
    return { action: 'rejected' as const, requestId: key, state: entry.record.state };
  };
  if (!parsed.ok) return refuse(`invalid request: ${parsed.errors.map((e) => `${e.path || '(message)'}: ${e.message}`).join('; ')}`, parsed.errors);
  const command = parsed.value;
  const life = lifecycleDeps(deps, log.child({ requestId: command.requestId }));
  if (!life) return refuse(`${command.kind}: leases are not enabled on this host`, [{ path: 'kind', message: 'not enabled' }]);
  return withTransientHandling(deps, command.requestId, meta, log, async () => {
    const outcome = command.kind === 'renew' ? await renew(life, command.requestId, command.seconds) : await release(life, command.requestId);
    if (!outcome.ok) return refuse(`${command.kind} ${command.requestId}: ${outcome.message}`, [{ path: 'requestId', message: outcome.message }]);
    return { action: 'tracking', requestId: command.requestId, state: outcome.entry.record.state } satisfies ProcessResult;
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
  /** Defaults for callers' requests (`DEFAULT_LEASE_SECONDS`, `DEFAULT_MAX_LIFETIME_SECONDS`). */
  lifecycleDefaults?: LifecycleDefaults;
  /** Schedules a new leased request's reminder; absent = none (the queue delivery still writes its index row). */
  lifecycle?: LifecycleDeps;
}

/**
 * Admits a validated message to the ledger and enqueues it on the scale queue (the queue path does
 * the work). A duplicate still `queued` is enqueued again: harmless, since processing is
 * idempotent, and it revives a request whose first enqueue failed after the admit.
 */
export async function submitRequest(
  deps: SubmitRequestDeps,
  message: RequestMessage,
  options: { scheduler?: boolean; traceparent?: string } = {},
): Promise<{ outcome: 'created' | 'duplicate' | 'conflict'; record: RequestRecord }> {
  // A scheduler's own requests (Slurm) get no default lease or lifetime: it suspends its nodes itself.
  const defaults = options.scheduler ? undefined : deps.lifecycleDefaults;
  const admitted = await deps.ledger.admit(message, deps.now(), {
    ...(defaults ? { lifecycleDefaults: defaults } : {}),
    // The caller's accept span, or (Slurm, the CLI's own calls) a new trace the entry keeps.
    traceparent: options.traceparent ?? newTraceparent(),
  });
  recordMetric('scaler.requests', 1, { cluster: admitted.entry.record.cluster, outcome: admitted.outcome });
  if (admitted.outcome === 'created' && deps.lifecycle && (admitted.entry.record.lease || admitted.entry.record.maxLifetime))
    await scheduleLifecycle(deps.lifecycle, admitted.entry);
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
