/**
 * The CycleCloud REST client over undici (reference/cyclecloud-rest-api.md §1–2).
 *
 * What it guarantees to callers:
 * - every response body is validated with the wire schemas; a body that does not match is a
 *   `CC_BAD_RESPONSE` naming the first bad path, never echoing the body;
 * - GETs are retried on 429/502/503/504, connection errors and timeouts (`Retry-After` honoured, otherwise
 *   exponential backoff with full jitter, abortable waits); POSTs are never retried, because a
 *   create that timed out may have been applied: the caller reconciles by request id instead
 *   (`CycleCloudError.ambiguous` says when that is needed);
 * - a 401 invalidates the credentials and retries once with fresh ones (nothing was done on a 401,
 *   so this is safe for POSTs too), which picks up a rotated password;
 * - the password and the Basic header are registered as secrets and stored on no error.
 */
import { parseRetryAfterMs } from '../platform/retry-after.ts';
import { Agent, type Dispatcher } from 'undici';
import { setTimeout as delay } from 'node:timers/promises';
import type { z } from 'zod';
import packageJson from '../../package.json' with { type: 'json' };
import type { CallOptions, CycleCloudApi, GetClusterStatusOptions, ListNodesOptions, ScaleNodearrayOptions } from './api.ts';
import {
  ClusterStatus,
  CycleCloudErrorBody,
  NodeCreationResult,
  NodeList,
  NodeManagementResult,
  OperationList,
  OperationStatus,
  type NodeCreationRequest,
  type NodeManagementRequest,
} from './schemas.ts';
import { CycleCloudError, codeForStatus, type CycleCloudErrorCode, type CycleCloudErrorDetails } from './errors.ts';
import type { CredentialProvider, CycleCloudCredentials } from '../platform/credentials.ts';
import { registerSecret, scrub, silentLogger, type Logger } from '../platform/log.ts';
import { codeOf } from '../platform/errors.ts';
import { recordMetric } from '../platform/metrics.ts';

export interface CycleCloudRetryOptions {
  /** Extra attempts after the first, for GETs only. Default 4. */
  maxRetries?: number;
  /** First backoff ceiling; doubles per attempt (full jitter below it). Default 250. */
  baseDelayMs?: number;
  /**
   * Longest wait between attempts. Default 20000. A `Retry-After` longer than this ends the
   * retries (the error keeps `retryAfterMs`) rather than retrying earlier than CycleCloud asked.
   */
  maxDelayMs?: number;
}

export interface CycleCloudClientOptions {
  /** CycleCloud root, e.g. `https://cyclecloud.example.com:8443` (no `/api` prefix). */
  baseUrl: string;
  credentials: CredentialProvider;
  /** PEM text of a CA (or the self-signed certificate) to trust. Default: the system CAs. */
  caPem?: string;
  /** Disables certificate verification (logged as a warning). Default false. */
  insecure?: boolean;
  /** Default 10000. */
  connectTimeoutMs?: number;
  /** Time to the response headers. Default 30000. */
  headersTimeoutMs?: number;
  /** Longest pause while the body streams. Default 60000. */
  bodyTimeoutMs?: number;
  retry?: CycleCloudRetryOptions;
  /** Default: silent. */
  logger?: Logger;
  /** Abortable wait (tests pass a fake). Default: `node:timers/promises` setTimeout. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** In [0, 1): jitter. Default `Math.random`. */
  random?: () => number;
  /** Clock, for `Retry-After` dates and durations. Default `Date.now`. */
  now?: () => number;
  /** Transport (tests: a MockAgent). Default: an undici Agent built from the TLS and timeout options, closed by `close()`. */
  dispatcher?: Dispatcher;
  /** Sent as `X-Cycle-Client-Version` and `User-Agent`. Default `cyclecloud-scaler:<package version>`. */
  userAgent?: string;
}

export type CycleCloudClient = CycleCloudApi & {
  /** Closes the connection pool this client created (not an injected dispatcher). */
  close(): Promise<void>;
};

type Method = 'GET' | 'POST';
type Query = Record<string, string | number | boolean | undefined>;

interface Call<S extends z.ZodType> {
  method: Method;
  path: string;
  query?: Query;
  body?: unknown;
  schema: S;
  abortSignal?: AbortSignal | undefined;
  /** Maps a failed response to a different error (e.g. "No operation found" → CC_NOT_FOUND). */
  refine?: (error: CycleCloudError, text: string) => CycleCloudError;
}

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const MAX_ERROR_TEXT = 500;
const NO_OPERATION = /No operation found for request id/i;

// Errors raised before the request can have reached CycleCloud: never ambiguous.
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
// The client was closed: nothing was sent and nothing will be.
const CLOSED_ERRORS = new Set(['UND_ERR_DESTROYED', 'UND_ERR_CLOSED']);
const TIMEOUT_ERRORS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const TLS_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS|ERR_SSL|EPROTO|HOSTNAME|ALTNAME/;

const enc = encodeURIComponent;

/** `/clusters/hpc/nodes/create` → `/clusters/{cluster}/nodes/create`: metric labels without ids. */
export function operationLabel(path: string): string {
  return path
    .replace(/^\/clusters\/[^/]+/, '/clusters/{cluster}')
    .replace(/^\/operations\/[^/?]+$/, '/operations/{id}')
    .replace(/\/scale\/[^/]+$/, '/scale/{nodearray}');
}

export { parseRetryAfterMs };

/** Full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)). `attempt` starts at 0. */
export function backoffDelayMs(attempt: number, baseDelayMs: number, maxDelayMs: number, random: () => number): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

function errorCodeOf(error: unknown): string | undefined {
  const code = codeOf(error);
  if (code) return code;
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause && cause !== error ? errorCodeOf(cause) : undefined;
}

function describeText(text: string): string {
  const flat = scrub(text).replace(/\s+/g, ' ').trim();
  return flat.length > MAX_ERROR_TEXT ? `${flat.slice(0, MAX_ERROR_TEXT)}…` : flat;
}

/** CycleCloud's `{Exception, Message, Detail}` when the error body has them. */
function errorDetails(text: string): CycleCloudErrorDetails | undefined {
  if (!text.trimStart().startsWith('{')) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = CycleCloudErrorBody.safeParse(json);
  if (!parsed.success) return undefined;
  const { Exception, Message, Detail } = parsed.data;
  if (Exception === undefined && Message === undefined && Detail === undefined) return undefined;
  return {
    ...(Exception !== undefined ? { exception: describeText(Exception) } : {}),
    ...(Message !== undefined ? { message: describeText(Message) } : {}),
    ...(Detail !== undefined ? { detail: describeText(Detail) } : {}),
  };
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'the body';
  const path = issue.path.map(String).join('.') || '(root)';
  return `${path}: ${issue.message}`;
}

function basicHeader(creds: CycleCloudCredentials): string {
  const token = Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64');
  registerSecret(creds.password);
  registerSecret(token);
  return `Basic ${token}`;
}

/**
 * Creates a {@link CycleCloudClient}.
 *
 * @example
 * const cc = createCycleCloudClient({ baseUrl: 'https://cc:8443', credentials, caPem });
 * const status = await cc.getClusterStatus('hpc', { nodes: true });
 * await cc.close();
 */
export function createCycleCloudClient(options: CycleCloudClientOptions): CycleCloudClient {
  const base = new URL(options.baseUrl);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('CycleCloud baseUrl must be an http(s) URL');
  // Credentials belong in the credential provider, where they are cached and redacted.
  if (base.username || base.password) throw new TypeError('CycleCloud baseUrl must not contain credentials');
  const origin = base.origin;
  const basePath = base.pathname.replace(/\/+$/, '');

  const maxRetries = options.retry?.maxRetries ?? 4;
  const baseDelayMs = options.retry?.baseDelayMs ?? 250;
  const maxDelayMs = options.retry?.maxDelayMs ?? 20_000;
  const headersTimeout = options.headersTimeoutMs ?? 30_000;
  const bodyTimeout = options.bodyTimeoutMs ?? 60_000;
  const logger = options.logger ?? silentLogger;
  const sleepImpl = options.sleep ?? ((ms: number, signal?: AbortSignal) => delay(ms, undefined, signal ? { signal } : {}));
  // Whatever the sleep implementation throws on abort, callers see their own abort reason.
  const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    sleepImpl(ms, signal).catch((error: unknown) => {
      throw signal?.aborted ? signal.reason : error;
    });
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const userAgent = options.userAgent ?? `cyclecloud-scaler:${packageJson.version}`;

  if (options.insecure) logger.warn('CycleCloud TLS certificate verification is disabled', { cycleCloudUrl: origin });

  const ownedAgent = options.dispatcher
    ? undefined
    : new Agent({
        connect: {
          ...(options.caPem ? { ca: options.caPem } : {}),
          rejectUnauthorized: !options.insecure,
          timeout: options.connectTimeoutMs ?? 10_000,
        },
        headersTimeout,
        bodyTimeout,
      });
  const dispatcher: Dispatcher = options.dispatcher ?? ownedAgent!;
  let closing: Promise<void> | undefined;

  const pathOf = (path: string, query?: Query): string => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      // CycleCloud expects lowercase booleans (`nodes=true`), like its generated clients send.
      if (v !== undefined) params.append(k, typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v));
    }
    const qs = params.toString();
    return `${basePath}${path}${qs ? `?${qs}` : ''}`;
  };

  const fail = (
    code: CycleCloudErrorCode,
    message: string,
    extra: { status?: number; retryAfterMs?: number; ambiguous?: boolean; cycleCloud?: CycleCloudErrorDetails; cause?: unknown },
    req: { method: Method; url: string; headers: Record<string, string> },
    resHeaders?: Record<string, string | string[] | undefined>,
  ) =>
    new CycleCloudError(code, message, {
      ...extra,
      request: req,
      ...(extra.status !== undefined && resHeaders ? { response: { status: extra.status, headers: resHeaders } } : {}),
    });

  /** `cyclecloud_call_ms` per attempt and `cyclecloud_errors` per failed one, labelled by operation, not by ids. */
  function callMetrics(call: { method: string; path: string }, status: number, durationMs: number, code: string | undefined): void {
    const operation = `${call.method} ${operationLabel(call.path)}`;
    logger.metric('cyclecloud_call_ms', durationMs, { operation, status });
    recordMetric('cyclecloud.client.duration', durationMs / 1000, { operation, outcome: status });
    if (code) {
      logger.metric('cyclecloud_errors', 1, { operation, status, code });
      recordMetric('cyclecloud.client.errors', 1, { operation, outcome: code });
    }
  }

  async function send<S extends z.ZodType>(call: Call<S>): Promise<z.output<S>> {
    const path = pathOf(call.path, call.query);
    const label = `CycleCloud ${call.method} ${basePath}${call.path}`;
    const retryable = call.method === 'GET';
    let attempt = 0;
    let reauthenticated = false;
    let rejected: CycleCloudCredentials | undefined;

    for (;;) {
      const creds = await options.credentials.get(call.abortSignal ? { abortSignal: call.abortSignal } : {});
      if (rejected && rejected.username === creds.username && rejected.password === creds.password) {
        // Fresh credentials are the ones just refused: a second try would only count as another
        // failed login against the account.
        throw new CycleCloudError('CC_AUTH', `${label} failed: HTTP 401: CycleCloud refused the credentials`, { status: 401 });
      }
      const headers: Record<string, string> = {
        accept: 'application/json',
        'x-cycle-client-version': userAgent,
        'user-agent': userAgent,
        ...(call.body !== undefined ? { 'content-type': 'application/json' } : {}),
      };
      const req = { method: call.method, url: `${origin}${path}`, headers: { ...headers } };
      const startedAtMs = now();
      let status: number;
      let resHeaders: Record<string, string | string[] | undefined>;
      let text: string;
      let error: CycleCloudError;
      try {
        const res = await dispatcher.request({
          origin,
          path,
          method: call.method,
          headers: { ...headers, authorization: basicHeader(creds) },
          ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
          signal: call.abortSignal ?? null,
          headersTimeout,
          bodyTimeout,
        });
        status = res.statusCode;
        resHeaders = res.headers;
        text = await res.body.text();
      } catch (cause) {
        if (call.abortSignal?.aborted) throw call.abortSignal.reason;
        const code = errorCodeOf(cause) ?? '';
        const timeout = TIMEOUT_ERRORS.has(code);
        const tls = TLS_ERROR.test(code);
        const closed = CLOSED_ERRORS.has(code);
        const beforeSend = CONNECT_ERRORS.has(code) || tls || closed;
        error = fail(
          timeout ? 'CC_TIMEOUT' : 'CC_NETWORK',
          `${label} failed: ${tls ? 'TLS: ' : ''}${scrub(cause instanceof Error ? cause.message : String(cause))}${code ? ` (${code})` : ''}`,
          // A reset or timeout after sending may have left a POST applied on the server.
          { ambiguous: call.method !== 'GET' && !beforeSend, cause },
          req,
        );
        logger.debug('cyclecloud request failed', { method: call.method, path: call.path, code: error.code, attempt, durationMs: now() - startedAtMs });
        callMetrics(call, 0, now() - startedAtMs, error.code);
        // A certificate that does not verify will not verify on the next attempt either.
        if (retryable && !tls && !closed && attempt < maxRetries) {
          const delayMs = backoffDelayMs(attempt, baseDelayMs, maxDelayMs, random);
          logger.info('cyclecloud retry scheduled', { method: call.method, path: call.path, code: error.code, attempt: attempt + 1, delayMs });
          await sleep(delayMs, call.abortSignal);
          attempt++;
          continue;
        }
        throw error;
      }

      logger.debug('cyclecloud request', { method: call.method, path: call.path, status, attempt, durationMs: now() - startedAtMs });
      callMetrics(call, status, now() - startedAtMs, status >= 400 ? codeForStatus(status) : undefined);

      if (status >= 200 && status < 300) {
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch (cause) {
          throw fail('CC_BAD_RESPONSE', `${label} returned HTTP ${status} with a body that is not JSON`, { status, cause }, req, resHeaders);
        }
        const parsed = call.schema.safeParse(json);
        if (!parsed.success) {
          throw fail('CC_BAD_RESPONSE', `${label} returned a body that does not match the expected shape at ${firstIssue(parsed.error)}`, { status }, req, resHeaders);
        }
        return parsed.data;
      }

      if (status === 401 && !reauthenticated) {
        // 401 means nothing was done: safe to repeat even a POST once with fresh credentials.
        reauthenticated = true;
        rejected = creds;
        options.credentials.invalidate();
        logger.info('cyclecloud credentials refused; refetching once', { method: call.method, path: call.path });
        continue;
      }

      const details = errorDetails(text);
      const said = details ? [details.message, details.detail].filter(Boolean).join(': ') || details.exception || '' : describeText(text);
      const retryAfterMs = parseRetryAfterMs(resHeaders['retry-after'], now());
      error = fail(
        codeForStatus(status),
        `${label} failed: HTTP ${status}${said ? `: ${said}` : ''}`,
        {
          status,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
          // A 5xx on a POST may come after the server applied it (proxy timeout, crash mid-way).
          ambiguous: call.method !== 'GET' && status >= 500,
          ...(details ? { cycleCloud: details } : {}),
        },
        req,
        resHeaders,
      );
      if (call.refine) error = call.refine(error, text);

      if (retryable && RETRYABLE_STATUS.has(status) && attempt < maxRetries && (retryAfterMs === undefined || retryAfterMs <= maxDelayMs)) {
        const delayMs = retryAfterMs ?? backoffDelayMs(attempt, baseDelayMs, maxDelayMs, random);
        logger.info('cyclecloud retry scheduled', { method: call.method, path: call.path, status, code: error.code, attempt: attempt + 1, delayMs });
        await sleep(delayMs, call.abortSignal);
        attempt++;
        continue;
      }
      throw error;
    }
  }

  const signalOf = (o?: CallOptions) => o?.abortSignal;

  const manage = (action: 'terminate' | 'deallocate' | 'shutdown' | 'start' | 'remove') => (cluster: string, request: NodeManagementRequest, o?: CallOptions) =>
    send({ method: 'POST', path: `/clusters/${enc(cluster)}/nodes/${action}`, body: request, schema: NodeManagementResult, abortSignal: signalOf(o) });

  const noOperation = (error: CycleCloudError, text: string): CycleCloudError =>
    error.code !== 'CC_NOT_FOUND' && NO_OPERATION.test(text)
      ? new CycleCloudError('CC_NOT_FOUND', error.message, {
          ...(error.status !== undefined ? { status: error.status } : {}),
          ...(error.cycleCloud ? { cycleCloud: error.cycleCloud } : {}),
          ...(error.request ? { request: error.request } : {}),
          ...(error.response ? { response: error.response } : {}),
        })
      : error;

  return {
    getClusterStatus: (cluster, o?: GetClusterStatusOptions) =>
      send({ method: 'GET', path: `/clusters/${enc(cluster)}/status`, query: { nodes: o?.nodes ?? false }, schema: ClusterStatus, abortSignal: signalOf(o) }),

    listNodes: (cluster, o?: ListNodesOptions) =>
      send({
        method: 'GET',
        path: `/clusters/${enc(cluster)}/nodes`,
        query: { operation: o?.operationId, request_id: o?.requestId },
        schema: NodeList,
        abortSignal: signalOf(o),
        refine: noOperation,
      }),

    createNodes: (cluster, request: NodeCreationRequest, o) =>
      send({ method: 'POST', path: `/clusters/${enc(cluster)}/nodes/create`, body: request, schema: NodeCreationResult, abortSignal: signalOf(o) }),

    terminateNodes: manage('terminate'),
    deallocateNodes: manage('deallocate'),
    shutdownNodes: manage('shutdown'),
    startNodes: manage('start'),
    removeNodes: manage('remove'),

    scaleNodearray: (cluster, nodearray, o: ScaleNodearrayOptions) => {
      if ((o.totalNodeCount === undefined) === (o.totalCoreCount === undefined)) {
        return Promise.reject(new TypeError('scaleNodearray needs exactly one of totalNodeCount and totalCoreCount'));
      }
      return send({
        method: 'POST',
        path: `/clusters/${enc(cluster)}/scale/${enc(nodearray)}`,
        query: { totalNodeCount: o.totalNodeCount, totalCoreCount: o.totalCoreCount },
        schema: NodeCreationResult,
        abortSignal: signalOf(o),
      });
    },

    getOperation: (operationId, o) => send({ method: 'GET', path: `/operations/${enc(operationId)}`, schema: OperationStatus, abortSignal: signalOf(o) }),

    async findOperationByRequestId(requestId, o) {
      try {
        // The trailing slash is part of CycleCloud's documented path.
        const list = await send({ method: 'GET', path: '/operations/', query: { request_id: requestId }, schema: OperationList, abortSignal: signalOf(o), refine: noOperation });
        return list[0] ?? null;
      } catch (error) {
        if (error instanceof CycleCloudError && error.code === 'CC_NOT_FOUND') return null;
        throw error;
      }
    },

    close: () => {
      // Idempotent: composition roots and tests may both close the client.
      closing ??= ownedAgent?.close() ?? Promise.resolve();
      return closing;
    },
  };
}
