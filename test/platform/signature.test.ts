import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { rawPathOf, signBody, signRequest, verifyRequestSignature, verifySignature } from '../../src/platform/signature.ts';

const SECRET = 'a-signing-secret-of-some-length';
const NEXT = 'the-next-signing-secret-in-rotation';
const NOW = 1_800_000_000_000;
const TS = String(NOW / 1000);
const hmac = (text: string, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(text).digest('hex')}`;

describe('callback signatures (docs/api.md §4: "<timestamp>.<raw body>")', () => {
  it('signs the timestamp and the raw body, so a receiver checks it with one HMAC', () => {
    const { signature, timestamp } = signBody(SECRET, '{"a":1}', NOW);
    expect(timestamp).toBe(TS);
    expect(signature).toBe(hmac(`${TS}.{"a":1}`));
  });

  it('refuses the body-only form: a captured signature cannot be replayed with a fresh timestamp', () => {
    const body = '{"requestId":"x"}';
    expect(verifySignature(SECRET, body, hmac(`${TS}.${body}`), TS, NOW)).toMatchObject({ ok: true });
    expect(verifySignature(SECRET, body, hmac(body), TS, NOW)).toEqual({ ok: false, reason: 'mismatch' });
    // The same signature with a newer timestamp no longer matches.
    const later = String(NOW / 1000 + 60);
    expect(verifySignature(SECRET, body, hmac(`${TS}.${body}`), later, NOW + 60_000)).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('refuses outside the 5-minute window, and without a timestamp', () => {
    const body = '{}';
    const old = String(NOW / 1000 - 301);
    expect(verifySignature(SECRET, body, hmac(`${old}.${body}`), old, NOW)).toEqual({ ok: false, reason: 'expired' });
    expect(verifySignature(SECRET, body, hmac(`${TS}.${body}`), undefined, NOW)).toEqual({ ok: false, reason: 'missing' });
    expect(verifySignature(SECRET, body, 'sha1=abc', TS, NOW)).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('incoming request signatures (docs/api.md §4: "<timestamp>.<METHOD>.<path>.<raw body>")', () => {
  const parts = { method: 'POST', path: '/api/scale-out/pause', body: '' };

  it('signs timestamp, method, path and body', () => {
    const { signature } = signRequest(SECRET, { ...parts, method: 'post' }, NOW);
    expect(signature).toBe(hmac(`${TS}.POST./api/scale-out/pause.`));
    expect(verifyRequestSignature(SECRET, parts, signature, TS, NOW)).toMatchObject({ ok: true, digest: signature.slice(7) });
  });

  it('binds the route: one signature of an empty body is not valid for another path or method', () => {
    const { signature } = signRequest(SECRET, parts, NOW);
    expect(verifyRequestSignature(SECRET, { ...parts, path: '/api/scale-out/resume' }, signature, TS, NOW)).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyRequestSignature(SECRET, { ...parts, method: 'PUT' }, signature, TS, NOW)).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('accepts either of two active secrets (rotation), and neither other', () => {
    const byNext = signRequest(NEXT, parts, NOW).signature;
    const byOld = signRequest(SECRET, parts, NOW).signature;
    expect(verifyRequestSignature([NEXT, SECRET], parts, byNext, TS, NOW).ok).toBe(true);
    expect(verifyRequestSignature([NEXT, SECRET], parts, byOld, TS, NOW).ok).toBe(true);
    expect(verifyRequestSignature([NEXT], parts, byOld, TS, NOW)).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyRequestSignature([], parts, byOld, TS, NOW)).toEqual({ ok: false, reason: 'mismatch' });
  });
});

describe('rawPathOf', () => {
  it('keeps the path as sent, without query or fragment', () => {
    expect(rawPathOf('https://h.example/api/scale-requests?code=k')).toBe('/api/scale-requests');
    expect(rawPathOf('http://127.0.0.1:7071/api/a%2Fb#x')).toBe('/api/a%2Fb');
    expect(rawPathOf('https://h.example')).toBe('/');
  });
});
