/**
 * Signatures of docs/api.md §4: HMAC-SHA256, hex, in `X-Scaler-Signature: sha256=<hex>`, with
 * `X-Scaler-Timestamp: <unix seconds>` bound into what is signed:
 *
 * - incoming requests sign `"<timestamp>.<METHOD>.<path>.<raw body>"` (path without the query, as
 *   the client sent it), so a signature is valid for one route, one method, one moment;
 * - callbacks sign `"<timestamp>.<raw body>"`.
 *
 * A signature whose timestamp is more than 5 minutes from the clock is refused; replays inside the
 * window are refused by the caller's replay cache (see `src/platform/replay-cache.ts`). Several
 * secrets may be active at once (rotation): a signature made with any of them is accepted, and
 * every comparison always runs so timing does not reveal which one matched.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-scaler-signature';
export const TIMESTAMP_HEADER = 'x-scaler-timestamp';
/** Default acceptance window: 5 minutes either side. */
export const DEFAULT_TOLERANCE_MS = 5 * 60 * 1000;

export interface SignedRequestParts {
  /** Upper-cased before signing. */
  method: string;
  /** The path as sent, without query or fragment, e.g. `/api/scale-requests`. */
  path: string;
  body: string | Uint8Array;
}

export interface Signature {
  /** `sha256=<hex>` */
  signature: string;
  /** Unix seconds. */
  timestamp: string;
}

const timestampOf = (nowMs: number) => String(Math.floor(nowMs / 1000));

/** Callback form: HMAC over `<timestamp>.<raw body>`. */
export function signBody(secret: string, body: string | Uint8Array, nowMs: number): Signature {
  const timestamp = timestampOf(nowMs);
  return { signature: `sha256=${mac(secret, [`${timestamp}.`], body)}`, timestamp };
}

/** Incoming-request form: HMAC over `<timestamp>.<METHOD>.<path>.<raw body>`. */
export function signRequest(secret: string, parts: SignedRequestParts, nowMs: number): Signature {
  const timestamp = timestampOf(nowMs);
  return { signature: `sha256=${mac(secret, requestPrefix(timestamp, parts), parts.body)}`, timestamp };
}

export type VerifyResult = { ok: true; digest: string; timestampMs: number } | { ok: false; reason: 'missing' | 'malformed' | 'expired' | 'mismatch' };

/** Verifies a callback signature (`<timestamp>.<raw body>`) against one or more secrets. */
export function verifySignature(
  secrets: string | readonly string[],
  body: string | Uint8Array,
  signatureHeader: string | null | undefined,
  timestampHeader: string | null | undefined,
  nowMs: number,
  toleranceMs: number = DEFAULT_TOLERANCE_MS,
): VerifyResult {
  return verify(secrets, (ts) => [`${ts}.`], body, signatureHeader, timestampHeader, nowMs, toleranceMs);
}

/** Verifies an incoming request's signature (`<timestamp>.<METHOD>.<path>.<raw body>`). */
export function verifyRequestSignature(
  secrets: string | readonly string[],
  parts: SignedRequestParts,
  signatureHeader: string | null | undefined,
  timestampHeader: string | null | undefined,
  nowMs: number,
  toleranceMs: number = DEFAULT_TOLERANCE_MS,
): VerifyResult {
  return verify(secrets, (ts) => requestPrefix(ts, parts), parts.body, signatureHeader, timestampHeader, nowMs, toleranceMs);
}

function verify(
  secrets: string | readonly string[],
  prefix: (timestamp: string) => string[],
  body: string | Uint8Array,
  signatureHeader: string | null | undefined,
  timestampHeader: string | null | undefined,
  nowMs: number,
  toleranceMs: number,
): VerifyResult {
  if (!signatureHeader || !timestampHeader) return { ok: false, reason: 'missing' };
  const m = /^sha256=([0-9a-f]{64})$/i.exec(signatureHeader.trim());
  const ts = timestampHeader.trim();
  if (!m || !/^\d{1,12}$/.test(ts)) return { ok: false, reason: 'malformed' };
  const timestampMs = Number(ts) * 1000;
  if (Math.abs(nowMs - timestampMs) > toleranceMs) return { ok: false, reason: 'expired' };
  const digest = m[1]!.toLowerCase();
  const given = Buffer.from(digest, 'hex');
  const list = (typeof secrets === 'string' ? [secrets] : secrets).filter((s) => s.length > 0);
  let matched = false;
  for (const secret of list) {
    const expected = Buffer.from(mac(secret, prefix(ts), body), 'hex');
    // Every secret is compared, matched or not: timing does not say which one is in use.
    if (expected.length === given.length && timingSafeEqual(expected, given)) matched = true;
  }
  return matched ? { ok: true, digest, timestampMs } : { ok: false, reason: 'mismatch' };
}

function requestPrefix(timestamp: string, parts: SignedRequestParts): string[] {
  return [`${timestamp}.${parts.method.toUpperCase()}.${parts.path}.`];
}

function mac(secret: string, prefix: string[], body: string | Uint8Array): string {
  const hmac = createHmac('sha256', secret);
  for (const p of prefix) hmac.update(p);
  return hmac.update(body).digest('hex');
}

/**
 * The path of a request URL exactly as sent (no query, no fragment, no normalisation), so the
 * signature binds what the client signed. `https://h/api/x?code=k` → `/api/x`.
 */
export function rawPathOf(url: string): string {
  const afterScheme = url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/, '');
  const cut = afterScheme.search(/[?#]/);
  const path = cut === -1 ? afterScheme : afterScheme.slice(0, cut);
  return path === '' ? '/' : path;
}
