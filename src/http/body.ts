/**
 * Reading request bodies safely: a size limit checked before reading (docs/api.md §4: 413 over
 * 256 KiB), strict UTF-8 and JSON, and the optional per-caller HMAC signature over the raw bytes.
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, DEFAULT_TOLERANCE_MS, rawPathOf, verifyRequestSignature } from '../platform/signature.ts';
import { problem } from './problem.ts';

/** docs/api.md §4: bodies over 256 KiB are refused with 413. */
export const MAX_BODY_BYTES = 256 * 1024;

export type BodyOutcome = { ok: true; raw: Uint8Array } | { ok: false; response: HttpResponseInit };

function tooLarge(limitBytes: number): HttpResponseInit {
  return problem(413, 'HTTP_TOO_LARGE', `the body exceeds the limit of ${limitBytes} bytes (${limitBytes / 1024} KiB)`);
}

/**
 * Reads the raw body, refusing it by `content-length` before reading anything, and otherwise
 * stopping after `limitBytes + 1` bytes so a chunked body cannot make the function buffer more.
 */
export async function readBoundedBody(request: Pick<HttpRequest, 'headers' | 'body'>, limitBytes: number = MAX_BODY_BYTES): Promise<BodyOutcome> {
  const declared = request.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared.trim()) > limitBytes) {
    return { ok: false, response: tooLarge(limitBytes) };
  }
  const stream = request.body;
  if (!stream) return { ok: true, raw: new Uint8Array(0) };
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const chunk = value instanceof Uint8Array ? value : new Uint8Array(value as ArrayBuffer);
    total += chunk.byteLength;
    if (total > limitBytes) {
      // Stop the producer: the rest of the body is never read.
      await reader.cancel().catch(() => {});
      return { ok: false, response: tooLarge(limitBytes) };
    }
    chunks.push(chunk);
  }
  const raw = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    raw.set(c, offset);
    offset += c.byteLength;
  }
  return { ok: true, raw };
}

export type JsonOutcome = { ok: true; value: unknown } | { ok: false; response: HttpResponseInit };

/** Strict UTF-8 then JSON; the error says what is wrong without quoting the body back. */
export function parseJsonBody(raw: Uint8Array): JsonOutcome {
  if (raw.byteLength === 0) {
    return { ok: false, response: problem(400, 'HTTP_NOT_JSON', 'the body is empty; send a JSON object') };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return { ok: false, response: problem(400, 'HTTP_NOT_JSON', 'the body is not valid UTF-8') };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    // V8's message quotes the body; say only that and where it is not JSON.
    return { ok: false, response: problem(400, 'HTTP_NOT_JSON', 'the body is not valid JSON; send a JSON object with content-type application/json') };
  }
}

export interface SignatureCheckOptions {
  /** The active HMAC keys (current first; a second one during rotation); empty = none configured. */
  secrets: readonly string[];
  /** Refuse unsigned requests. Default false. */
  required?: boolean;
  nowMs: number;
  /** Default 5 minutes (docs/api.md §4). */
  toleranceMs?: number;
}

export type SignatureOutcome =
  | { ok: true; signed: false }
  | { ok: true; signed: true; digest: string; timestampMs: number }
  | { ok: false; response: HttpResponseInit; reason: string };

/** 401 problem+json for a refused signature; the detail never echoes the signature or timestamp given. */
export function signatureRefused(detail: string): HttpResponseInit {
  return problem(401, 'HTTP_SIGNATURE', detail);
}

/**
 * Applies the incoming-signature rule (docs/api.md §4): a signed request is verified whenever a secret
 * is configured, over `<timestamp>.<METHOD>.<path>.<raw body>` with the path as sent; an unsigned
 * one is refused only when signatures are required. Replays are the caller's to refuse (the
 * answer carries the digest to remember).
 */
export function checkSignature(request: Pick<HttpRequest, 'headers' | 'method' | 'url'>, raw: Uint8Array, options: SignatureCheckOptions): SignatureOutcome {
  const signature = request.headers.get(SIGNATURE_HEADER);
  const timestamp = request.headers.get(TIMESTAMP_HEADER);
  const required = options.required ?? false;
  const refuse = (reason: string, detail: string): SignatureOutcome => ({ ok: false, reason, response: signatureRefused(detail) });
  if (!signature) {
    if (!required) return { ok: true, signed: false };
    return refuse('unsigned', 'this API requires X-Scaler-Signature and X-Scaler-Timestamp headers');
  }
  if (options.secrets.length === 0) {
    // Fail closed: a signature we cannot check is not a signature we accept, unless none is needed.
    return required ? refuse('no-secret', 'the signature cannot be verified') : { ok: true, signed: false };
  }
  const toleranceMs = options.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  const parts = { method: request.method, path: rawPathOf(request.url), body: raw };
  const result = verifyRequestSignature(options.secrets, parts, signature, timestamp, options.nowMs, toleranceMs);
  if (result.ok) return { ok: true, signed: true, digest: result.digest, timestampMs: result.timestampMs };
  switch (result.reason) {
    case 'missing':
      return refuse('missing', 'X-Scaler-Timestamp is missing (unix seconds, signed as "<timestamp>.<METHOD>.<path>.<raw body>")');
    case 'malformed':
      return refuse('malformed', 'X-Scaler-Signature must be sha256=<64 hex digits> and X-Scaler-Timestamp unix seconds');
    case 'expired':
      return refuse('expired', `X-Scaler-Timestamp is more than ${Math.round(toleranceMs / 60_000)} minutes away from the server's clock`);
    case 'mismatch':
      return refuse('mismatch', 'X-Scaler-Signature does not match "<timestamp>.<METHOD>.<path>.<raw body>" of this request');
  }
}

/** Media types a POST body may declare: `application/json` and `application/*+json`, UTF-8 only. */
const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.!#$&^_-]+\+)?json$/;

/**
 * docs/api.md §4: a POST whose content type is not JSON gets 415. An empty body without a content
 * type (the pause and resume switches) is fine; a non-empty one must say it is JSON. A charset
 * other than UTF-8 is refused too: the body is read as UTF-8.
 */
export function checkContentType(request: Pick<HttpRequest, 'headers'>, bodyBytes: number | undefined): { ok: true } | { ok: false; response: HttpResponseInit } {
  const header = request.headers.get('content-type');
  const unsupported = (detail: string) => ({ ok: false as const, response: problem(415, 'HTTP_UNSUPPORTED_MEDIA_TYPE', detail) });
  if (header === null || header.trim() === '') {
    if (bodyBytes === undefined || bodyBytes === 0) return { ok: true };
    return unsupported('content-type is missing; send the body with content-type application/json');
  }
  const [type, ...params] = header.split(';');
  if (!JSON_MEDIA_TYPE.test(type!.trim().toLowerCase())) return unsupported('content-type must be application/json');
  for (const param of params) {
    const [name, value] = param.split('=').map((s) => s.trim().toLowerCase());
    if (name === 'charset' && value !== undefined && !['utf-8', 'utf8', '"utf-8"'].includes(value)) {
      return unsupported('content-type charset must be utf-8');
    }
  }
  return { ok: true };
}
