/**
 * The callback verification example in docs/security.md is code a scheduler team will paste: run it against
 * signatures the scaler really makes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { signBody } from '../../src/platform/signature.ts';

type Verify = (rawBody: Buffer, headers: Record<string, string>, secrets: string[], now?: number) => boolean;

const dir = mkdtempSync(join(tmpdir(), 'readme-example-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function loadExample(): Promise<Verify> {
  const readme = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
  const m = /<!-- verify-callback-example -->\s*```js\n([\s\S]*?)```/.exec(readme);
  expect(m, 'docs/security.md holds the marked example').not.toBeNull();
  expect(m![1]!.trim().split('\n').length).toBeLessThanOrEqual(12);
  const file = join(dir, `verify-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, m![1]!);
  return ((await import(pathToFileURL(file).href)) as { verifyScalerCallback: Verify }).verifyScalerCallback;
}

describe('docs/security.md: verifying a callback', () => {
  const SECRET = 'the-scalers-signing-key-01234';
  const body = Buffer.from(JSON.stringify({ requestId: 'job-1', state: 'fulfilled' }));

  it('accepts a real callback signature once, and refuses a replay, a tampered body, an old one and a wrong key', async () => {
    const verify = await loadExample();
    const now = Date.now();
    const { signature, timestamp } = signBody(SECRET, body, now);
    const headers = { 'x-scaler-signature': signature, 'x-scaler-timestamp': timestamp };
    expect(verify(body, headers, [SECRET], now)).toBe(true);
    expect(verify(body, headers, [SECRET], now)).toBe(false);
    const fresh = signBody(SECRET, body, now - 1_000);
    const freshHeaders = { 'x-scaler-signature': fresh.signature, 'x-scaler-timestamp': fresh.timestamp };
    expect(verify(Buffer.concat([body, Buffer.from(' ')]), freshHeaders, [SECRET], now)).toBe(false);
    const old = signBody(SECRET, body, now - 6 * 60_000);
    expect(verify(body, { 'x-scaler-signature': old.signature, 'x-scaler-timestamp': old.timestamp }, [SECRET], now)).toBe(false);
    expect(verify(body, freshHeaders, ['another-key-entirely-000000'], now)).toBe(false);
  });

  it('accepts either key during rotation', async () => {
    const verify = await loadExample();
    const now = Date.now();
    const { signature, timestamp } = signBody(SECRET, body, now);
    expect(verify(body, { 'x-scaler-signature': signature, 'x-scaler-timestamp': timestamp }, ['the-new-key-000000000000', SECRET], now)).toBe(true);
  });
});
