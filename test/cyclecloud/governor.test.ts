/**
 * The fleet-wide governor on azurite: two Governor objects on one storage stand for two instances
 * of the scaler. Slots are shared, a dead holder's slot expires, and a 429 with Retry-After seen by
 * one instance holds the other's calls without sending them.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { Governor, governed } from '../../src/cyclecloud/governor.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import type { CycleCloudClient } from '../../src/cyclecloud/client.ts';
import { uniqueNames } from '../helpers/names.ts';

let storage: Storage;
beforeAll(() => {
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
});

async function fleet(max = 1) {
  const names = uniqueNames();
  await storage.ensure({ tables: [names.stateTable] });
  let nowMs = Date.parse('2026-12-07T02:00:00.000Z');
  const clock = { now: () => nowMs, advance: (ms: number) => (nowMs += ms) };
  const make = (waitMs = 0) =>
    new Governor({ storage, names, maxConcurrentCreates: max, now: clock.now, acquireWaitMs: waitMs, pauseCacheMs: 1_000, slotTtlMs: 60_000, autoRenew: false });
  return { clock, a: make(), b: make(), make };
}

/** A client whose calls are counted; `fail` makes the next call throw it. */
function fakeClient() {
  const calls: string[] = [];
  let fail: Error | undefined;
  const answer = async (name: string) => {
    calls.push(name);
    if (fail) {
      const e = fail;
      fail = undefined;
      throw e;
    }
    return { operationId: 'op', sets: [{ added: 1 }], nodes: [] } as never;
  };
  const client = new Proxy({} as CycleCloudClient, { get: (_t, name) => (name === 'close' ? async () => {} : () => answer(String(name))) });
  return { client, calls, failNext: (e: Error) => (fail = e) };
}

describe('Governor', () => {
  it('shares the create slots of a cluster between instances: the one over the limit is told to wait, nothing sent', async () => {
    const { a, b } = await fleet(2);
    const s1 = await a.acquire('create', 'hpc');
    await b.acquire('create', 'hpc');
    const over = await b.acquire('create', 'hpc').catch((e: unknown) => e);
    expect(over).toBeInstanceOf(CycleCloudError);
    expect(over).toMatchObject({ code: 'CC_THROTTLED', ambiguous: false });
    expect((over as CycleCloudError).retryAfterMs).toBeGreaterThanOrEqual(1_000);
    expect((over as Error).message).toMatch(/2 create\(s\) of cluster hpc are in flight across the fleet/);
    // Another cluster is not held by hpc's creates
    await expect(b.acquire('create', 'other')).resolves.toEqual(expect.any(String));
    await a.release('create', 'hpc', s1, true);
    await expect(b.acquire('create', 'hpc')).resolves.toEqual(expect.any(String));
  });

  it('one batch per cluster across the fleet, whatever the create limit', async () => {
    const { a, b } = await fleet(5);
    const held = await a.acquire('batch', 'hpc');
    await expect(b.acquire('batch', 'hpc')).rejects.toMatchObject({ code: 'CC_THROTTLED', message: expect.stringMatching(/a batch for cluster hpc is being sent/) });
    await a.release('batch', 'hpc', held);
    await expect(b.acquire('batch', 'hpc')).resolves.toEqual(expect.any(String));
  });

  it('a waiting instance gets the slot as soon as the holder gives it back', async () => {
    const { a, make } = await fleet(1);
    const patient = make(5_000);
    const held = await a.acquire('create', 'hpc');
    const waiting = patient.acquire('create', 'hpc');
    await new Promise((r) => setTimeout(r, 150));
    await a.release('create', 'hpc', held);
    await expect(waiting).resolves.toEqual(expect.any(String));
  });

  it('a slot whose holder died expires after slotTtlMs', async () => {
    const { a, b, clock } = await fleet(1);
    await a.acquire('create', 'hpc'); // never released
    await expect(b.acquire('create', 'hpc')).rejects.toMatchObject({ code: 'CC_THROTTLED' });
    clock.advance(60_001);
    await expect(b.acquire('create', 'hpc')).resolves.toEqual(expect.any(String));
  });

  it('a live holder renews its slot past slotTtlMs; once it stops (killed), the slot expires a ttl after the last renewal', async () => {
    const { a, b, clock } = await fleet(1);
    await a.acquire('batch', 'hpc'); // a slow batch: held for 3 ttl
    for (let k = 0; k < 6; k++) {
      clock.advance(30_000);
      await a.renew();
      await expect(b.acquire('batch', 'hpc')).rejects.toMatchObject({ code: 'CC_THROTTLED' });
    }
    // a dies: no more renewals
    clock.advance(59_000);
    await expect(b.acquire('batch', 'hpc')).rejects.toMatchObject({ code: 'CC_THROTTLED' });
    clock.advance(1_001);
    await expect(b.acquire('batch', 'hpc')).resolves.toEqual(expect.any(String));
    // A renewal from the old holder, after its slot was taken over, does not take it back
    await a.renew();
    await expect(a.acquire('batch', 'hpc')).rejects.toMatchObject({ code: 'CC_THROTTLED' });
  });

  it('renews on its own with a real timer, and stops when the slot is given back', async () => {
    const names = uniqueNames();
    await storage.ensure({ tables: [names.stateTable] });
    const real = new Governor({ storage, names, maxConcurrentCreates: 1, acquireWaitMs: 0, slotTtlMs: 2_000 });
    const other = new Governor({ storage, names, maxConcurrentCreates: 1, acquireWaitMs: 0, slotTtlMs: 2_000, autoRenew: false });
    const id = await real.acquire('batch', 'renewing');
    await new Promise((r) => setTimeout(r, 5_000)); // two and a half ttl
    await expect(other.acquire('batch', 'renewing')).rejects.toMatchObject({ code: 'CC_THROTTLED' });
    await real.release('batch', 'renewing', id);
    const mine = await other.acquire('batch', 'renewing');
    await new Promise((r) => setTimeout(r, 1_000)); // a stray renewal timer would now write
    await other.release('batch', 'renewing', mine);
  }, 20_000);

  it('a 429 with Retry-After seen by one instance holds every instance’s calls until then, without sending them', async () => {
    const { a, b, clock } = await fleet(1);
    const one = fakeClient();
    const two = fakeClient();
    const ccA = governed(one.client, a, silentLogger, clock.now);
    const ccB = governed(two.client, b, silentLogger, clock.now);
    one.failNext(new CycleCloudError('CC_THROTTLED', 'Too Many Requests', { status: 429, retryAfterMs: 30_000 }));
    await expect(ccA.getClusterStatus('hpc')).rejects.toMatchObject({ code: 'CC_THROTTLED' });

    // B (its cached pause read is older than pauseCacheMs) holds its call and says until when
    clock.advance(1_000);
    const held = await ccB.listNodes('hpc').catch((e: unknown) => e);
    expect(held).toMatchObject({ code: 'CC_THROTTLED', message: expect.stringMatching(/paused across the fleet until 2026-12-07T02:00:30.000Z/) });
    expect((held as CycleCloudError).retryAfterMs).toBe(29_000);
    await expect(ccB.createNodes('hpc', { requestId: 'r-g0', sets: [{ nodearray: 'a', count: 1 }] })).rejects.toMatchObject({ code: 'CC_THROTTLED' });
    expect(two.calls).toEqual([]);
    const view = await b.view(['hpc']);
    expect(view).toMatchObject({ pausedUntil: '2026-12-07T02:00:30.000Z', pauseReason: 'CycleCloud answered 429 with Retry-After' });

    // After the pause every call goes again
    clock.advance(29_001);
    await ccB.listNodes('hpc');
    await ccB.createNodes('hpc', { requestId: 'r-g0', sets: [{ nodearray: 'a', count: 1 }] });
    expect(two.calls).toEqual(['listNodes', 'createNodes']);
  });

  it('a governed create takes and gives back its slot, and counts toward the fleet’s creates per minute', async () => {
    const { a, b, clock } = await fleet(1);
    const c = fakeClient();
    const cc = governed(c.client, a, silentLogger, clock.now);
    await cc.createNodes('hpc', { requestId: 'x-g0', sets: [{ nodearray: 'a', count: 1 }] });
    c.failNext(new CycleCloudError('CC_BAD_REQUEST', 'no', { status: 400 }));
    await expect(cc.createNodes('hpc', { requestId: 'y-g0', sets: [{ nodearray: 'a', count: 1 }] })).rejects.toMatchObject({ code: 'CC_BAD_REQUEST' });
    const view = await b.view(['hpc']);
    expect(view.clusters).toEqual([{ cluster: 'hpc', createsInFlight: 0, batchesInFlight: 0, createsPerMinute: 2 }]);
    expect(view.pausedUntil).toBeNull();
    expect((await a.view(['hpc'])).callsPerMinute).toBe(2);
  });

  it('never pauses the fleet on its own refusals (no HTTP status: nothing was sent)', async () => {
    const { a, b, clock } = await fleet(1);
    const c = fakeClient();
    const cc = governed(c.client, b, silentLogger, clock.now);
    await a.acquire('create', 'hpc');
    await expect(cc.createNodes('hpc', { requestId: 'z-g0', sets: [{ nodearray: 'a', count: 1 }] })).rejects.toMatchObject({ code: 'CC_THROTTLED' });
    expect(c.calls).toEqual([]);
    expect((await b.view(['hpc'])).pausedUntil).toBeNull();
  });
});
