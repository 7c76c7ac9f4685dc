/**
 * Callbacks (docs/api.md §3 `callbackUrl`, §4 signature): when a request reaches a final state its
 * public record is POSTed to the caller, signed, from its own queue so a slow or failing receiver
 * never holds up the tracker.
 *
 * Delivery is at least once, deduplicated per record version: a small row per request in
 * `names.stateTable` (PartitionKey `callbacks`) remembers the last delivered `updatedAt` and a short
 * claim, so two messages for the same final record (two trackers finishing together, a redelivery)
 * POST once. A receiver should still be idempotent on `X-Scaler-Request-Id` (a crash between the
 * POST and the bookkeeping repeats it).
 *
 * Failures (non-2xx, network, 10 s timeout, a redirect) are retried by re-enqueueing the message
 * with a visibility delay: 10 s, 30 s, 2 min, 10 min, 20 min, 30 min (7 tries over ~1 h; a
 * receiver's `Retry-After` lengthens a delay), then given up and logged. The secret, the signature
 * and the URL's query string are never logged.
 */
import { parseRetryAfterMs } from '../platform/retry-after.ts';
import type { Storage } from '../platform/storage.ts';
import { decodeQueueMessage, encodeQueueMessage, statusOf } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import type { Logger } from '../platform/log.ts';
import { registerSecret } from '../platform/log.ts';
import { codeOf } from '../platform/errors.ts';
import { signBody } from '../platform/signature.ts';
import { checkCallbackTarget, postGuarded, type CallbackTargetPolicy } from './callback-guard.ts';
import type { RequestLedgerApi } from '../ledger/types.ts';
import { FINAL_STATES, publicRecord, usableRequestId } from '../ledger/schemas.ts';
import { recordMetric } from '../platform/metrics.ts';
import { SpanKind, SpanStatusCode, startSpan } from '../platform/tracing.ts';

/** Default delays before each retry (the first try is immediate). */
export const DEFAULT_CALLBACK_RETRY_DELAYS_MS: readonly number[] = [10_000, 30_000, 120_000, 600_000, 1_200_000, 1_800_000];
/** Default per-POST timeout. */
export const DEFAULT_CALLBACK_TIMEOUT_MS = 10_000;
const MAX_RETRY_AFTER_MS = 60 * 60_000;

export interface CallbackMessage {
  $callback: 'deliver';
  requestId: string;
  /** 0 for the first try. */
  attempt: number;
}

export interface CallbackSenderDeps {
  storage: Storage;
  names: StorageNames;
  ledger: Pick<RequestLedgerApi, 'get'>;
  /** The HMAC key; undefined = callbacks are sent unsigned. */
  signingSecret: () => Promise<string | undefined>;
  /**
   * Transport override (tests). Default: node's client through the SSRF guard's own DNS lookup
   * ({@link postGuarded}). Either way the target is checked first ({@link checkCallbackTarget}).
   */
  fetch?: typeof fetch;
  /** Where callbacks may go (README "Security"). Default: public https hosts only. */
  target?: CallbackTargetPolicy;
  now: () => number;
  logger: Logger;
  /** Delays before retries. Default {@link DEFAULT_CALLBACK_RETRY_DELAYS_MS}. */
  retryDelaysMs?: readonly number[];
  /** Per-POST timeout. Default 10 000. */
  timeoutMs?: number;
}

export interface EnqueueCallbackOptions {
  /** Visibility delay of the message. Default 0. */
  delayMs?: number;
  /** Default 0. */
  attempt?: number;
}

export interface CallbackSender {
  /** Queues a delivery of the request's record (when it has a `callbackUrl` and is final). */
  enqueue(requestId: string, options?: EnqueueCallbackOptions): Promise<void>;
  /**
   * The callback queue's handler. Never throws for delivery problems (they are retried from the
   * queue); throws only when storage fails, so the host retries the message.
   */
  handleCallbackMessage(message: unknown, meta: { dequeueCount: number }, logger?: Logger): Promise<void>;
}

const PARTITION = 'callbacks';

/** Accepts what a queue trigger hands over: a parsed object, JSON text or base64 JSON text. */
export function parseInternalMessage(message: unknown): Record<string, unknown> | null {
  let value = message;
  if (typeof value === 'string') {
    const text = value.trim();
    try {
      value = JSON.parse(text.startsWith('{') ? text : decodeQueueMessage(text));
    } catch {
      return null;
    }
  }
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

function parseCallbackMessage(message: unknown): CallbackMessage | null {
  const m = parseInternalMessage(message);
  // The id becomes a storage key: anything but a valid requestId is ignored (logged), never retried into poison.
  if (m?.$callback !== 'deliver' || usableRequestId(m.requestId) === null) return null;
  const attempt = typeof m.attempt === 'number' && Number.isInteger(m.attempt) && m.attempt >= 0 ? m.attempt : 0;
  return { $callback: 'deliver', requestId: m.requestId as string, attempt };
}

/** Origin and path only: query strings of webhook URLs often carry tokens. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

function retryAfterMs(header: string | null, nowMs: number): number | undefined {
  const ms = parseRetryAfterMs(header, nowMs);
  return ms === undefined ? undefined : Math.min(ms, MAX_RETRY_AFTER_MS);
}

/**
 * The enqueue side alone: needs only the queue, so the ledger's `onFinal` can queue callbacks
 * before the sender (which reads the ledger) exists.
 */
export function callbackQueue(storage: Pick<Storage, 'queue'>, names: Pick<StorageNames, 'callbackQueue'>): Pick<CallbackSender, 'enqueue'> {
  return {
    async enqueue(requestId, options = {}) {
      const body: CallbackMessage = { $callback: 'deliver', requestId, attempt: options.attempt ?? 0 };
      const delaySec = Math.ceil((options.delayMs ?? 0) / 1000);
      await storage.queue(names.callbackQueue).sendMessage(encodeQueueMessage(body), delaySec > 0 ? { visibilityTimeout: delaySec } : {});
    },
  };
}

export function createCallbackSender(deps: CallbackSenderDeps): CallbackSender {
  const policy: CallbackTargetPolicy = deps.target ?? { allowedHosts: [], localDevelopment: false };
  const delays = deps.retryDelaysMs ?? DEFAULT_CALLBACK_RETRY_DELAYS_MS;
  const timeoutMs = deps.timeoutMs ?? DEFAULT_CALLBACK_TIMEOUT_MS;
  const table = () => deps.storage.table(deps.names.stateTable);

  const { enqueue } = callbackQueue(deps.storage, deps.names);

  /** Claims delivery of `version`; null when it was delivered already or another delivery holds it. */
  async function claim(requestId: string, version: string, nowMs: number): Promise<{ etag: string; previous: string } | null> {
    const leaseUntilMs = nowMs + timeoutMs + 5_000;
    let row: { deliveredVersion?: unknown; leaseUntilMs?: unknown; etag: string } | null = null;
    try {
      row = await table().getEntity<{ deliveredVersion?: string; leaseUntilMs?: number }>(PARTITION, encodeURIComponent(requestId));
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
    try {
      if (!row) {
        const res = await table().createEntity({ partitionKey: PARTITION, rowKey: encodeURIComponent(requestId), deliveredVersion: '', leaseUntilMs });
        return { etag: res.etag ?? '*', previous: '' };
      }
      if (row.deliveredVersion === version) return null;
      if (typeof row.leaseUntilMs === 'number' && row.leaseUntilMs > nowMs) return null;
      const res = await table().updateEntity(
        { partitionKey: PARTITION, rowKey: encodeURIComponent(requestId), deliveredVersion: String(row.deliveredVersion ?? ''), leaseUntilMs },
        'Replace',
        { etag: row.etag },
      );
      return { etag: res.etag ?? '*', previous: String(row.deliveredVersion ?? '') };
    } catch (e) {
      const s = statusOf(e);
      if (s === 409 || s === 412) return null;
      throw e;
    }
  }

  async function finish(requestId: string, etag: string, deliveredVersion: string | null, previous: string): Promise<void> {
    try {
      await table().updateEntity({ partitionKey: PARTITION, rowKey: encodeURIComponent(requestId), deliveredVersion: deliveredVersion ?? previous, leaseUntilMs: 0 }, 'Replace', {
        etag,
      });
    } catch (e) {
      // Losing this bookkeeping only risks a duplicate POST later, never a lost one.
      if (statusOf(e) !== 412) throw e;
    }
  }

  async function handleCallbackMessage(message: unknown, meta: { dequeueCount: number }, logger: Logger = deps.logger): Promise<void> {
    const msg = parseCallbackMessage(message);
    if (!msg) {
      logger.warn('callback message ignored: not a callback delivery', { dequeueCount: meta.dequeueCount });
      return;
    }
    const log = logger.child({ requestId: msg.requestId, attempt: msg.attempt });
    const entry = await deps.ledger.get(msg.requestId);
    const url = entry?.request?.callbackUrl;
    if (!entry || !url) {
      log.info('callback skipped: no such request or no callbackUrl');
      return;
    }
    if (!FINAL_STATES.has(entry.record.state)) {
      log.warn('callback skipped: the request is not final yet', { state: entry.record.state });
      return;
    }
    const version = `${entry.record.state}|${entry.record.updatedAt}`;
    const nowMs = deps.now();
    const claimed = await claim(msg.requestId, version, nowMs);
    if (!claimed) {
      log.info('callback already delivered or being delivered', { version });
      return;
    }

    const target = safeUrl(url);
    // Checked at send time, after DNS resolution: a record's URL may have been valid when admitted.
    const allowed = await checkCallbackTarget(url, policy);
    if (!allowed.ok && !allowed.retryable) {
      await finish(msg.requestId, claimed.etag, null, claimed.previous);
      log.error('callback refused: target not allowed', { url: target, reason: allowed.reason });
      log.metric('callbacks_refused', 1, { requestId: msg.requestId });
      recordMetric('scaler.callbacks', 1, { outcome: 'refused' });
      return;
    }

    const body = JSON.stringify(publicRecord(entry.record));
    // The receiver gets the request's trace: a child span of the accept span, as `traceparent`.
    const span = startSpan('callback', entry.traceparent, SpanKind.CLIENT, { 'http.request.method': 'POST', 'scaler.callback.attempt': msg.attempt });
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Scaler-Request-Id': msg.requestId, traceparent: span.traceparent };
    let outcome: { ok: true; status: number } | { ok: false; status?: number; error?: string; retryAfterMs?: number };
    try {
      // A name that does not resolve now is retried like a network error.
      if (!allowed.ok) throw Object.assign(new Error(allowed.reason), { code: 'CALLBACK_TARGET_REFUSED' });
      const secret = await deps.signingSecret();
      if (secret) {
        registerSecret(secret);
        const { signature, timestamp } = signBody(secret, body, nowMs);
        headers['X-Scaler-Signature'] = signature;
        headers['X-Scaler-Timestamp'] = timestamp;
      }
      let status: number;
      let retryAfter: string | null;
      if (deps.fetch) {
        const res = await deps.fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
        // Never read beyond the status: the receiver's body is not ours.
        await res.body?.cancel().catch(() => undefined);
        status = res.status;
        retryAfter = res.headers.get('retry-after');
      } else {
        ({ status, retryAfter } = await postGuarded(url, headers, body, policy, timeoutMs));
      }
      const ra = retryAfterMs(retryAfter, nowMs);
      outcome = status >= 200 && status < 300 ? { ok: true, status } : { ok: false, status, ...(ra !== undefined ? { retryAfterMs: ra } : {}) };
    } catch (e) {
      const err = e instanceof Error ? e : undefined;
      const timedOut = err?.name === 'TimeoutError' || (err?.name === 'AbortError' && (err.cause as Error | undefined)?.name === 'TimeoutError');
      const code = codeOf(e);
      outcome = {
        ok: false,
        error: timedOut ? `timed out after ${timeoutMs} ms` : code === 'CALLBACK_TARGET_REFUSED' ? (err?.message ?? code) : code || err?.name || 'network error',
      };
    }

    if (!outcome.ok) span.span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.status ? `HTTP ${outcome.status}` : 'no answer' });
    span.span.setAttribute('http.response.status_code', outcome.status ?? 0);
    span.span.end();
    if (outcome.ok) {
      await finish(msg.requestId, claimed.etag, version, claimed.previous);
      log.info('callback delivered', { url: target, status: outcome.status, state: entry.record.state });
      log.metric('callbacks_delivered', 1, { requestId: msg.requestId });
      recordMetric('scaler.callbacks', 1, { outcome: 'delivered' });
      return;
    }
    await finish(msg.requestId, claimed.etag, null, claimed.previous);
    const delay = delays[msg.attempt];
    if (delay === undefined) {
      log.error('callback given up', { url: target, status: outcome.status, error: outcome.error, attempts: msg.attempt + 1 });
      log.metric('callbacks_failed', 1, { requestId: msg.requestId });
      recordMetric('scaler.callbacks', 1, { outcome: 'failed' });
      return;
    }
    const wait = Math.max(delay, outcome.retryAfterMs ?? 0);
    log.warn('callback failed; will retry', { url: target, status: outcome.status, error: outcome.error, retryInMs: wait });
    await enqueue(msg.requestId, { delayMs: wait, attempt: msg.attempt + 1 });
  }

  return { enqueue, handleCallbackMessage };
}
