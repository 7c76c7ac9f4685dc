/**
 * `X-Scaler-Signature: sha256=<hex HMAC-SHA256>` over `<timestamp>.<raw body>`, with
 * `X-Scaler-Timestamp: <unix seconds>`. Binding the timestamp into the MAC stops replays of an old
 * body with a fresh timestamp; signatures older than the window are refused (CONTRACT §4).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-scaler-signature';
export const TIMESTAMP_HEADER = 'x-scaler-timestamp';
/** Default acceptance window: 5 minutes either side. */
export const DEFAULT_TOLERANCE_MS = 5 * 60 * 1000;

export function signBody(secret: string, body: string | Uint8Array, nowMs: number): { signature: string; timestamp: string } {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { signature: `sha256=${mac(secret, timestamp, body)}`, timestamp };
}

export type VerifyResult = { ok: true } | { ok: false; reason: 'missing' | 'malformed' | 'expired' | 'mismatch' };

export function verifySignature(
  secret: string,
  body: string | Uint8Array,
  signatureHeader: string | null | undefined,
  timestampHeader: string | null | undefined,
  nowMs: number,
  toleranceMs: number = DEFAULT_TOLERANCE_MS,
): VerifyResult {
  if (!signatureHeader || !timestampHeader) return { ok: false, reason: 'missing' };
  const m = /^sha256=([0-9a-f]{64})$/i.exec(signatureHeader.trim());
  if (!m || !/^\d{1,12}$/.test(timestampHeader.trim())) return { ok: false, reason: 'malformed' };
  const ts = Number(timestampHeader.trim()) * 1000;
  if (Math.abs(nowMs - ts) > toleranceMs) return { ok: false, reason: 'expired' };
  const expected = Buffer.from(mac(secret, timestampHeader.trim(), body), 'hex');
  const given = Buffer.from(m[1]!.toLowerCase(), 'hex');
  return expected.length === given.length && timingSafeEqual(expected, given) ? { ok: true } : { ok: false, reason: 'mismatch' };
}

function mac(secret: string, timestamp: string, body: string | Uint8Array): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}
