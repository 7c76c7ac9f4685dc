/**
 * `X-Scaler-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with `X-Scaler-Timestamp: <unix
 * seconds>`, exactly as docs/api.md §4 states, so any receiver can check it with one HMAC of the bytes
 * it got. Signatures whose timestamp is outside the window are refused.
 *
 * Incoming signatures over `<timestamp>.<raw body>` (the form this project documented before it was
 * aligned with the contract) are accepted too: that form is strictly stronger, since it binds the
 * timestamp, and callers already using it keep working.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-scaler-signature';
export const TIMESTAMP_HEADER = 'x-scaler-timestamp';
/** Default acceptance window: 5 minutes either side. */
export const DEFAULT_TOLERANCE_MS = 5 * 60 * 1000;

export function signBody(secret: string, body: string | Uint8Array, nowMs: number): { signature: string; timestamp: string } {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { signature: `sha256=${mac(secret, undefined, body)}`, timestamp };
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
  const given = Buffer.from(m[1]!.toLowerCase(), 'hex');
  const matches = (hex: string) => {
    const expected = Buffer.from(hex, 'hex');
    return expected.length === given.length && timingSafeEqual(expected, given);
  };
  // Both comparisons always run, so timing does not reveal which form was tried.
  const overBody = matches(mac(secret, undefined, body));
  const overTimestampAndBody = matches(mac(secret, timestampHeader.trim(), body));
  return overBody || overTimestampAndBody ? { ok: true } : { ok: false, reason: 'mismatch' };
}

/** HMAC-SHA256 hex of the raw body, or of `<timestamp>.<raw body>` when a timestamp is given. */
function mac(secret: string, timestamp: string | undefined, body: string | Uint8Array): string {
  const hmac = createHmac('sha256', secret);
  if (timestamp !== undefined) hmac.update(`${timestamp}.`);
  return hmac.update(body).digest('hex');
}
