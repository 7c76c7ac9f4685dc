/**
 * The one error family of the CycleCloud client (STYLE: `name`, stable `code`, `cause`).
 *
 * What a caller can act on is enumerable (`code`, `status`, `retryAfterMs`, `ambiguous`, what
 * CycleCloud said); what could leak is not: the request and response details are non-enumerable
 * properties, so a logger that copies an error's own fields, or `JSON.stringify(error)`, cannot
 * print them. The Authorization header is never stored at all.
 */
import { ScalerError } from '../platform/errors.ts';
import type { CycleCloudErrorCode } from './api.ts';

export type { CycleCloudErrorCode } from './api.ts';

/** CycleCloud's own explanation, from its `{Exception, Message, Detail}` error body. */
export interface CycleCloudErrorDetails {
  exception?: string;
  message?: string;
  detail?: string;
}

/** The request that failed, without its Authorization header. */
export interface CycleCloudErrorRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** The response that made the request fail, when there was one. */
export interface CycleCloudErrorResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

export interface CycleCloudErrorOptions extends ErrorOptions {
  status?: number;
  retryAfterMs?: number;
  /** Default false. */
  ambiguous?: boolean;
  cycleCloud?: CycleCloudErrorDetails;
  request?: CycleCloudErrorRequest;
  response?: CycleCloudErrorResponse;
}

export class CycleCloudError extends ScalerError<CycleCloudErrorCode> {
  override name = 'CycleCloudError' as const;
  /** HTTP status, when CycleCloud answered. */
  readonly status?: number;
  /** How long CycleCloud asked us to wait (`Retry-After`), when it said. */
  readonly retryAfterMs?: number;
  /**
   * True when the request may have reached CycleCloud and been applied (timeout or reset after
   * sending, 5xx on a POST): callers must reconcile (by request id) before trying again.
   */
  readonly ambiguous: boolean;
  /** CycleCloud's `{Exception, Message, Detail}`, when its error body had them. */
  readonly cycleCloud?: CycleCloudErrorDetails;
  /** Non-enumerable: never logged or serialised. */
  declare readonly request?: CycleCloudErrorRequest;
  /** Non-enumerable: never logged or serialised. */
  declare readonly response?: CycleCloudErrorResponse;

  constructor(code: CycleCloudErrorCode, message: string, options: CycleCloudErrorOptions = {}) {
    super(code, message, options);
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    this.ambiguous = options.ambiguous ?? false;
    if (options.cycleCloud !== undefined) this.cycleCloud = options.cycleCloud;
    // Request and response may carry sensitive headers: keep them off every enumeration.
    Object.defineProperty(this, 'request', { value: options.request, enumerable: false });
    Object.defineProperty(this, 'response', { value: options.response, enumerable: false });
  }
}

/** True for a {@link CycleCloudError}, also across duplicate module copies (checks `name`). */
export function isCycleCloudError(error: unknown): error is CycleCloudError {
  return error instanceof CycleCloudError || (error instanceof Error && error.name === 'CycleCloudError' && 'code' in error);
}

/** The stable code for a non-2xx HTTP status. */
export function codeForStatus(status: number): CycleCloudErrorCode {
  if (status === 401 || status === 403) return 'CC_AUTH';
  if (status === 404) return 'CC_NOT_FOUND';
  if (status === 409) return 'CC_CONFLICT';
  if (status === 429) return 'CC_THROTTLED';
  if (status === 408) return 'CC_TIMEOUT';
  if (status >= 500) return 'CC_UNAVAILABLE';
  // 400, 422 and every other 4xx: the request itself was wrong.
  return 'CC_BAD_REQUEST';
}

/** An error after which the call may or may not have reached CycleCloud: the outcome is resolved by request id. */
export function isAmbiguous(e: CycleCloudError): boolean {
  return e.ambiguous || e.code === 'CC_CONFLICT' || e.code === 'CC_TIMEOUT' || e.code === 'CC_BAD_RESPONSE';
}

/** CycleCloud will not take this call however often it is sent. */
export function isPermanent(e: CycleCloudError): boolean {
  return !e.ambiguous && (e.code === 'CC_BAD_REQUEST' || e.code === 'CC_NOT_FOUND');
}
