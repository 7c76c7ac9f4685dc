/**
 * `POST /api/scale-requests/{id}/renew` and `/release` as HTTP: bodies, answers, refusals and the
 * signature rule. What renew and release do to the ledger is tested in test/requests/lifecycle.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { releaseScaleRequest, renewScaleRequest } from '../../src/http/routes.ts';
import { LifecycleAccepted, Problem } from '../../src/http/schemas.ts';
import { newEntry } from '../../src/ledger/record.ts';
import { markReleased, renewLease } from '../../src/ledger/lease.ts';
import type { LifecycleAnswer } from '../../src/http/deps.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { BASE, fakeDeps, httpRequest, signedHeaders, T0 } from './fakes.ts';

const leased = (): LedgerEntry =>
  newEntry({ kind: 'scale', requestId: 'job-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }], lease: { seconds: 60 } }, T0, 30 * 60_000);

/** Deps whose renew and release run the real rules on one stored entry. */
function withEntry(entry: LedgerEntry | null, over: Parameters<typeof fakeDeps>[0] = {}) {
  let stored = entry;
  const calls: { renew: (number | undefined)[]; release: number } = { renew: [], release: 0 };
  const { deps } = fakeDeps({
    renew: async (id, seconds): Promise<LifecycleAnswer> => {
      calls.renew.push(seconds);
      if (!stored || id !== stored.record.requestId) return { ok: false, status: 404, message: `no request with requestId "${id}"` };
      try {
        stored = renewLease(stored, seconds, T0 + 10_000);
        return { ok: true, entry: stored };
      } catch (error) {
        return { ok: false, status: 409, message: (error as Error).message };
      }
    },
    release: async (id): Promise<LifecycleAnswer> => {
      calls.release += 1;
      if (!stored || id !== stored.record.requestId) return { ok: false, status: 404, message: `no request with requestId "${id}"` };
      stored = markReleased(stored, 'released', T0 + 20_000 + calls.release);
      return { ok: true, entry: stored };
    },
    ...over,
  });
  return { deps, calls };
}

const post = (route: 'renew' | 'release', body?: unknown, headers: Record<string, string> = {}, raw?: string) =>
  httpRequest('POST', `/api/scale-requests/job-1/${route}`, { params: { requestId: 'job-1' }, headers, ...(raw !== undefined ? { raw } : body === undefined ? {} : { body }) });

describe('POST /api/scale-requests/{id}/renew', () => {
  it('answers 200 with the new lease for {} (its own length), {"seconds": N} and an empty body', async () => {
    const { deps, calls } = withEntry(leased());
    const own = await renewScaleRequest(deps, post('renew', {}));
    const longer = await renewScaleRequest(deps, post('renew', { seconds: 600 }));
    const empty = await renewScaleRequest(deps, post('renew'));

    expect([own.status, longer.status, empty.status]).toEqual([200, 200, 200]);
    expect(LifecycleAccepted.parse(own.jsonBody)).toEqual({
      requestId: 'job-1',
      state: 'queued',
      statusUrl: `${BASE}/api/scale-requests/job-1`,
      lease: { seconds: 60, expiresAt: new Date(T0 + 70_000).toISOString() },
    });
    expect(LifecycleAccepted.parse(longer.jsonBody).lease).toEqual({ seconds: 600, expiresAt: new Date(T0 + 610_000).toISOString() });
    expect(calls.renew).toEqual([undefined, 600, undefined]);
  });

  it('refuses bad bodies with 400 naming the field, before renewing anything', async () => {
    const { deps, calls } = withEntry(leased());
    const short = await renewScaleRequest(deps, post('renew', { seconds: 30 }));
    const unknown = await renewScaleRequest(deps, post('renew', { sconds: 120 }));
    const notJson = await renewScaleRequest(deps, post('renew', undefined, {}, '{seconds'));

    expect(short.status).toBe(400);
    expect(Problem.parse(short.jsonBody).errors).toEqual([{ path: 'seconds', message: 'must be at least 60 seconds' }]);
    expect(Problem.parse(unknown.jsonBody).errors).toEqual([{ path: 'sconds', message: 'is not a known field' }]);
    expect(notJson.status).toBe(400);
    expect(calls.renew).toEqual([]);
  });

  it('answers 409 naming the expiry or the release, and 404 for an unknown request', async () => {
    const expired = leased();
    expired.record.lease!.expiresAt = new Date(T0 + 5_000).toISOString();
    const late = await renewScaleRequest(withEntry(expired).deps, post('renew', {}));
    const released = await renewScaleRequest(withEntry(markReleased(leased(), 'released', T0)).deps, post('renew', {}));
    const unknown = await renewScaleRequest(withEntry(null).deps, post('renew', {}));

    expect(late.status).toBe(409);
    expect(Problem.parse(late.jsonBody).detail).toBe(`the lease of request "job-1" expired at ${new Date(T0 + 5_000).toISOString()}; its nodes are being shut down`);
    expect(Problem.parse(released.jsonBody).detail).toMatch(/was released at .* \(released\)/);
    expect(unknown.status).toBe(404);
  });

  it('with signatures required: unsigned is 401, signed over the renew path is accepted', async () => {
    const secret = 'renew-secret-0123456789';
    const over = { requireSignatures: true, signingSecret: async () => secret };
    const unsigned = await renewScaleRequest(withEntry(leased(), over).deps, post('renew', {}));
    const raw = '{"seconds":120}';
    const signed = await renewScaleRequest(withEntry(leased(), over).deps, post('renew', undefined, signedHeaders(secret, raw, T0, '/api/scale-requests/job-1/renew'), raw));

    expect(unsigned.status).toBe(401);
    expect(signed.status).toBe(200);
  });
});

describe('POST /api/scale-requests/{id}/release', () => {
  it('answers 202 with the release; repeating it answers the same release', async () => {
    const { deps, calls } = withEntry(leased());
    const first = await releaseScaleRequest(deps, post('release', {}));
    const again = await releaseScaleRequest(deps, post('release'));

    expect([first.status, again.status]).toEqual([202, 202]);
    const a = LifecycleAccepted.parse(first.jsonBody);
    expect(a.released).toEqual({ at: new Date(T0 + 20_001).toISOString(), reason: 'released' });
    expect(a.lease).toBeUndefined();
    expect(LifecycleAccepted.parse(again.jsonBody).released).toEqual(a.released);
    expect(calls.release).toBe(2);
  });

  it('takes no fields', async () => {
    const { deps, calls } = withEntry(leased());
    const res = await releaseScaleRequest(deps, post('release', { now: true }));
    expect(res.status).toBe(400);
    expect(Problem.parse(res.jsonBody).errors).toEqual([{ path: 'now', message: 'is not a known field' }]);
    expect(calls.release).toBe(0);
  });
});
