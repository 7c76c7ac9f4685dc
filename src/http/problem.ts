/**
 * RFC 9457 problem details for every error the API answers. Details name the field or the limit,
 * never echo a signature, a key or the payload.
 */
import type { HttpResponseInit } from '@azure/functions';
import type { FieldError } from '../ledger/schemas.ts';
import type { Problem } from './schemas.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const JSON_CONTENT_TYPE = 'application/json';

/** Stable codes of the HTTP API's problems; `type` is derived from them. */
export type HttpProblemCode =
  | 'HTTP_VALIDATION'
  | 'HTTP_NOT_JSON'
  | 'HTTP_TOO_LARGE'
  | 'HTTP_NOT_FOUND'
  | 'HTTP_CONFLICT'
  | 'HTTP_SIGNATURE'
  | 'HTTP_INTERNAL'
  | 'HTTP_UNSUPPORTED_MEDIA_TYPE'
  | 'HTTP_UNAUTHORIZED'
  | 'HTTP_CONFIG';

const TITLES: Record<HttpProblemCode, string> = {
  HTTP_VALIDATION: 'The request is invalid',
  HTTP_NOT_JSON: 'The body is not JSON',
  HTTP_TOO_LARGE: 'The body is too large',
  HTTP_NOT_FOUND: 'Not found',
  HTTP_CONFLICT: 'Conflict',
  HTTP_SIGNATURE: 'The signature was refused',
  HTTP_INTERNAL: 'Internal error',
  HTTP_UNSUPPORTED_MEDIA_TYPE: 'The content type is not JSON',
  HTTP_UNAUTHORIZED: 'A valid function key is required',
  HTTP_CONFIG: 'A setting is invalid',
};

/** `urn:cyclecloud-scaler:problem:validation` for `HTTP_VALIDATION`: stable, no host to keep alive. */
export function problemType(code: HttpProblemCode): string {
  return `urn:cyclecloud-scaler:problem:${code.slice('HTTP_'.length).toLowerCase().replace(/_/g, '-')}`;
}

export function problem(status: number, code: HttpProblemCode, detail: string, errors?: FieldError[]): HttpResponseInit {
  const body: Problem = { type: problemType(code), title: TITLES[code], status, detail, code, ...(errors ? { errors } : {}) };
  return { status, jsonBody: body, headers: { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store' } };
}

/** 400 naming every bad field (`parseRequestMessage` already names unknown keys as `demands.0.x`). */
export function validationProblem(errors: FieldError[]): HttpResponseInit {
  const named = errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message));
  const detail = named.length <= 3 ? named.join('; ') : `${named.slice(0, 3).join('; ')} (and ${named.length - 3} more)`;
  return problem(400, 'HTTP_VALIDATION', detail, errors);
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, jsonBody: body, headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store', ...headers } };
}
