import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signBody, verifySignature } from '../../src/platform/signature.ts';

const SECRET = 'a-signing-secret-of-some-length';
const NOW = 1_800_000_000_000;
const hmac = (text: string) => `sha256=${createHmac('sha256', SECRET).update(text).digest('hex')}`;

describe('X-Scaler-Signature (docs/api.md §4: HMAC of the raw body)', () => {
  it('signs the raw body, so a receiver checks it with one HMAC of the bytes it got', () => {
    // Act
    const { signature, timestamp } = signBody(SECRET, '{"a":1}', NOW);

    // Assess
    expect(signature).toBe(hmac('{"a":1}'));
    expect(timestamp).toBe(String(NOW / 1000));
  });

  it('accepts the contract form and the timestamp-bound form, and nothing else', () => {
    // Prepare
    const body = '{"requestId":"x"}';
    const ts = String(NOW / 1000);

    // Act / Assess
    expect(verifySignature(SECRET, body, hmac(body), ts, NOW)).toEqual({ ok: true });
    expect(verifySignature(SECRET, body, hmac(`${ts}.${body}`), ts, NOW)).toEqual({ ok: true });
    expect(verifySignature(SECRET, `${body} `, hmac(body), ts, NOW)).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifySignature(SECRET, body, hmac(body), String(NOW / 1000 - 360), NOW)).toEqual({ ok: false, reason: 'expired' });
    expect(verifySignature(SECRET, body, hmac(body), undefined, NOW)).toEqual({ ok: false, reason: 'missing' });
  });
});
