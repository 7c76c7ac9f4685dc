import { beforeEach, describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { ClusterStatus } from '../../src/cyclecloud/schemas.ts';
import { SnapshotStore } from '../../src/snapshots/store.ts';
import { toSnapshot } from '../../src/snapshots/snapshot.ts';
import type { ClusterSnapshot } from '../../src/snapshots/model.ts';
import { uniqueNames } from '../helpers/names.ts';
import { seedSnapshot, T0 } from '../planning/fixtures.ts';
import { bigStatusBody } from './wire.ts';

const at = (ms: number, cluster = 'hpc'): ClusterSnapshot => seedSnapshot({ cluster, takenAt: new Date(ms).toISOString() });

describe('SnapshotStore (azurite)', () => {
  let store: SnapshotStore;
  let now = T0;
  let storage: Storage;
  let names: ReturnType<typeof uniqueNames>;

  beforeEach(async () => {
    names = uniqueNames();
    storage = Storage.fromConnectionString(inject('storageConnectionString'));
    now = T0;
    store = new SnapshotStore(storage, names, { now: () => now, historySize: 3, failureThreshold: 3 });
    await store.ensure();
  });

  it('saves and reads back the latest snapshot', async () => {
    expect(await store.latest('hpc')).toBeNull();
    const s = { ...at(T0), nodes: [{ name: 'ondemand-1', id: 'x', status: 'Ready', nodearray: 'ondemand', placementGroupId: null }] };
    expect(await store.saveSnapshot(s)).toEqual({ latestReplaced: true });
    expect(await store.latest('hpc')).toEqual(s);
  });

  it('keeps a bounded history, newest first, without node lists', async () => {
    for (let i = 0; i < 6; i++) await store.saveSnapshot({ ...at(T0 + i * 60_000), nodes: [] });
    const history = await store.history('hpc');
    expect(history.map((h) => h.takenAt)).toEqual([5, 4, 3].map((i) => new Date(T0 + i * 60_000).toISOString()));
    expect(history[0]).not.toHaveProperty('nodes');
  });

  it('drops history older than the retention even within the count', async () => {
    const kept = new SnapshotStore(storage, names, { now: () => now, historySize: 10, retentionMs: 30 * 86_400_000 });
    await kept.saveSnapshot(at(T0));
    await kept.saveSnapshot(at(T0 + 60_000));
    now = T0 + 31 * 86_400_000;
    await kept.saveSnapshot(at(now));
    expect((await kept.history('hpc')).map((h) => h.takenAt)).toEqual([new Date(now).toISOString()]);
  });

  it('never lets an older snapshot replace a newer one, whatever the order of concurrent saves', async () => {
    // Prepare: ten captures, saved all at once in scrambled order.
    const times = [3, 9, 1, 7, 5, 0, 8, 2, 6, 4].map((i) => T0 + i * 1000);
    // Act
    const results = await Promise.all(times.map((t) => store.saveSnapshot(at(t))));
    // Assess
    expect((await store.latest('hpc'))!.takenAt).toBe(new Date(T0 + 9000).toISOString());
    expect(results.some((r) => r.latestReplaced)).toBe(true);
    expect(await store.saveSnapshot(at(T0 + 5000))).toEqual({ latestReplaced: false });
    expect((await store.latest('hpc'))!.takenAt).toBe(new Date(T0 + 9000).toISOString());
    expect((await store.history('hpc')).length).toBeLessThanOrEqual(3);
  });

  it('counts consecutive failures to stale, and a success resets them', async () => {
    await store.saveSnapshot(at(T0));
    now = T0 + 90_000;
    expect(await store.recordFailure('hpc', Object.assign(new Error('CycleCloud is down'), { code: 'CC_UNAVAILABLE' }), now)).toEqual({ consecutiveFailures: 1, stale: false });
    await store.recordFailure('hpc', new Error('again'), now);
    expect(await store.recordFailure('hpc', new Error('third'), now)).toEqual({ consecutiveFailures: 3, stale: true });
    expect(await store.health('hpc')).toEqual({ takenAt: new Date(T0).toISOString(), ageSeconds: 90, consecutiveFailures: 3, stale: true, lastError: 'third' });
    await store.recordSuccess('hpc', now);
    expect(await store.health('hpc')).toMatchObject({ consecutiveFailures: 0, stale: false, lastError: null });
  });

  it('loses no failure count under concurrent recording', async () => {
    await Promise.all(Array.from({ length: 5 }, (_, i) => store.recordFailure('hpc', new Error(`e${i}`), T0)));
    expect((await store.health('hpc'))!.consecutiveFailures).toBe(5);
  });

  it('reports health null for an unknown cluster and stale by age when configured', async () => {
    expect(await store.health('nope')).toBeNull();
    const aged = new SnapshotStore(storage, names, { now: () => T0 + 10 * 60_000, staleAfterMs: 5 * 60_000 });
    await aged.saveSnapshot(at(T0));
    expect(await aged.health('hpc')).toMatchObject({ ageSeconds: 600, consecutiveFailures: 0, stale: true });
  });

  it('lists clusters, including odd names and ones that only failed', async () => {
    await store.saveSnapshot(at(T0, 'hpc'));
    await store.saveSnapshot(at(T0, "weird/name #1?'é"));
    await store.recordFailure('down', new Error('unreachable'), T0);
    expect(await store.listClusters()).toEqual(['down', 'hpc', "weird/name #1?'é"]);
    expect((await store.latest("weird/name #1?'é"))!.cluster).toBe("weird/name #1?'é");
  });

  it('stores a 200 × 5 snapshot with 10,000 nodes in one entity', async () => {
    const big = toSnapshot('big', ClusterStatus.parse(bigStatusBody(200, 5, 10_000)), T0);
    await store.saveSnapshot(big);
    expect(await store.latest('big')).toEqual(big);
  });
});
