/**
 * The operator CLI's view of the HTTP API: one call per route, errors turned into messages that
 * say what is wrong and what to do. The function key travels in the `x-functions-key` header and
 * never appears in a message.
 */
import type { TenantsResponse } from '../http/tenant-routes.ts';
import type { Accepted, ClusterStatus, Health, LifecycleAccepted, PlanResponse, Problem } from '../http/schemas.ts';
import type { RequestRecord } from '../ledger/schemas.ts';
import { codeOf, ScalerError } from '../platform/errors.ts';

/** Exit codes of every command (README "CLI"). */
export const EXIT = {
  /** Success; for `watch`/`status`: the request is fulfilled (or not final yet for `status`). */
  ok: 0,
  /** The request ended failed, rejected or partially_fulfilled; `health`: degraded. */
  requestFailed: 1,
  /** Bad flags or a body that does not validate locally. */
  usage: 2,
  /** The API refused the call or could not be reached (401, 404, 400, 409, 413, 5xx, network). */
  http: 3,
} as const;

export type CliErrorCode = 'CLI_UNAUTHORIZED' | 'CLI_NOT_FOUND' | 'CLI_INVALID' | 'CLI_CONFLICT' | 'CLI_HTTP' | 'CLI_NETWORK' | 'CLI_USAGE';

/** Every failure the CLI reports: a message for people, a code for scripts, the exit code to use. */
export class CliError extends ScalerError<CliErrorCode> {
  override readonly name = 'CliError';
  readonly exitCode: number;
  readonly status: number | undefined;
  readonly errors: { path: string; message: string }[] | undefined;

  constructor(code: CliErrorCode, message: string, options: { status?: number; errors?: { path: string; message: string }[]; cause?: unknown } = {}) {
    super(code, message, options);
    this.exitCode = code === 'CLI_USAGE' ? EXIT.usage : EXIT.http;
    this.status = options.status;
    this.errors = options.errors;
  }

  /** What `--json` prints for this error. */
  toJSON(): Record<string, unknown> {
    return { error: { code: this.code, message: this.message, ...(this.status ? { status: this.status } : {}), ...(this.errors ? { errors: this.errors } : {}) } };
  }
}

export interface ClientOptions {
  /** Base URL of the Functions host, without `/api`. Default `http://127.0.0.1:7071`. */
  baseUrl: string;
  /** Function key; omitted = no header (anonymous routes still work). */
  key?: string;
  /** Per-call timeout. Default 30 000 ms. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

const isProblem = (v: unknown): v is Problem => !!v && typeof v === 'object' && typeof (v as Problem).detail === 'string';

export class ScalerClient {
  readonly #base: string;
  readonly #key: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new CliError('CLI_USAGE', `--url must be a URL like http://127.0.0.1:7071`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError('CLI_USAGE', '--url must be http or https');
    // Keep a path prefix (a reverse proxy) but never a trailing slash, a query, or the `/api` the
    // local host prints as its base URL (routes add it themselves).
    this.#base = `${url.origin}${url.pathname.replace(/\/+$/, '').replace(/\/api$/, '')}`;
    this.#key = options.key || undefined;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch = options.fetch ?? fetch;
  }

  get baseUrl(): string {
    return this.#base;
  }

  /**
   * One call. `accept` lists statuses that carry a normal body (health answers 503 with its body).
   * Anything else becomes a {@link CliError} naming what is wrong.
   */
  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, accept: readonly number[] = []): Promise<ApiResponse<T>> {
    const url = `${this.#base}/api/${path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#key) headers['x-functions-key'] = this.#key;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      const why = err.name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : (codeOf(err.cause) ?? (err.cause instanceof Error ? err.cause.message : err.message));
      throw new CliError('CLI_NETWORK', `cannot reach the scaler at ${this.#base} (${why}); check --url`, { cause: error });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if ((res.status >= 200 && res.status < 300) || accept.includes(res.status)) return { status: res.status, body: parsed as T };
    throw errorFor(res.status, method, path, parsed);
  }

  submit(message: unknown): Promise<ApiResponse<Accepted>> {
    return this.call('POST', 'scale-requests', message);
  }

  terminate(message: unknown): Promise<ApiResponse<Accepted>> {
    return this.call('POST', 'terminate', message);
  }

  /** `POST /api/scale-requests/{id}/renew`: `{}` (the lease's own length) or `{seconds}`. */
  renew(requestId: string, seconds?: number): Promise<ApiResponse<LifecycleAccepted>> {
    return this.call('POST', `scale-requests/${encodeURIComponent(requestId)}/renew`, seconds === undefined ? {} : { seconds });
  }

  /** `POST /api/scale-requests/{id}/release`. */
  release(requestId: string): Promise<ApiResponse<LifecycleAccepted>> {
    return this.call('POST', `scale-requests/${encodeURIComponent(requestId)}/release`, {});
  }

  /** The record; `explain` adds each demand's nodearray, bucket and explanation. */
  record(requestId: string, options: { explain?: boolean; cost?: boolean } = {}): Promise<ApiResponse<RequestRecord>> {
    const query = [...(options.explain ? ['explain=true'] : []), ...(options.cost ? ['cost=true'] : [])].join('&');
    return this.call('GET', `scale-requests/${encodeURIComponent(requestId)}${query ? `?${query}` : ''}`);
  }

  plan(message: unknown): Promise<ApiResponse<PlanResponse>> {
    return this.call('POST', 'plan', message);
  }

  clusterStatus(cluster: string): Promise<ApiResponse<ClusterStatus>> {
    return this.call('GET', `clusters/${encodeURIComponent(cluster)}/status`);
  }

  /** `GET /api/clusters/{c}/capacity` (the console's view): per bucket also `gpuCount`, which the contract's status leaves out. */
  clusterCapacity(cluster: string): Promise<ApiResponse<{ nodearrays: { name: string; buckets: { bucketId: string; gpuCount?: number }[] }[] }>> {
    return this.call('GET', `clusters/${encodeURIComponent(cluster)}/capacity`);
  }

  tenants(): Promise<ApiResponse<TenantsResponse>> {
    return this.call('GET', 'tenants');
  }

  health(): Promise<ApiResponse<Health>> {
    return this.call('GET', 'health', undefined, [503]);
  }

  scaleOut(action: 'pause' | 'resume' | 'get'): Promise<ApiResponse<{ paused: boolean }>> {
    return action === 'get' ? this.call('GET', 'scale-out') : this.call('POST', `scale-out/${action}`);
  }
}

function errorFor(status: number, method: string, path: string, body: unknown): CliError {
  const problem = isProblem(body) ? body : undefined;
  const detail = problem?.detail;
  if (status === 401) {
    if (problem?.code === 'HTTP_SIGNATURE') return new CliError('CLI_UNAUTHORIZED', `the request signature was refused: ${detail}`, { status });
    return new CliError('CLI_UNAUTHORIZED', 'the function key was refused: pass --key or set SCALER_KEY', { status });
  }
  if (status === 404) {
    return new CliError('CLI_NOT_FOUND', detail ? `not found: ${detail}` : `not found: ${method} /api/${path} (is --url the scaler?)`, { status });
  }
  if (status === 400) {
    const errors = problem?.errors;
    const lines = errors?.length ? errors.map((e) => `  ${e.path || '(body)'}: ${e.message}`).join('\n') : `  ${detail ?? 'invalid request'}`;
    return new CliError('CLI_INVALID', `the scaler refused the request as invalid:\n${lines}`, { status, ...(errors ? { errors } : {}) });
  }
  if (status === 409) return new CliError('CLI_CONFLICT', `conflict: ${detail ?? 'the requestId exists with a different body'}`, { status });
  if (status === 413) return new CliError('CLI_HTTP', `the body is too large: ${detail ?? 'over 256 KiB'}`, { status });
  return new CliError('CLI_HTTP', `the scaler answered ${status}${detail ? `: ${detail}` : ''}`, { status });
}
