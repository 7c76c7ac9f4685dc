import { beforeEach, describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import type { ClusterStatus } from '../../src/cyclecloud/schemas.ts';
import { ClusterStatus as ClusterStatusSchema } from '../../src/cyclecloud/schemas.ts';
import { SnapshotStore } from '../../src/snapshots/store.ts';
import { CapacityMemory } from '../../src/snapshots/capacity-store.ts';
import { captureSnapshots, getFreshSnapshot } from '../../src/snapshots/capture.ts';
import { uniqueNames } from '../helpers/names.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { seedStatusBody } from './wire.ts';

const T0 = Date.parse('2026-11-28T01:00:00.000Z');

function fakeCycleCloud(behaviour: Record<string, () => ClusterStatus | Error>) {
  const calls: { cluster: string; nodes: boolean | undefined }[] = [];
  return {
    calls,
    getClusterStatus: async (cluster: string, options?: { nodes?: boolean }) => {
      calls.push({ cluster, nodes: options?.nodes });
      const out = behaviour[cluster]?.() ?? new Error(`unknown cluster ${cluster}`);
      if (out instanceof Error) throw out;
      return out;
    },
  };
}

const status = (extra: Record<string, unknown> = {}): ClusterStatus =>
  ClusterStatusSchema.parse({ ...seedStatusBody(), nodes: [{ Name: 'ondemand-1', NodeId: 'n1', Template: 'ondemand', Status: 'Ready' }], ...extra });

describe('captureSnapshots', () => {
  let store: SnapshotStore;
  let capacity: CapacityMemory;
  let now = T0;

  beforeEach(async () => {
    const names = uniqueNames();
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    now = T0;
    store = new SnapshotStore(storage, names, { now: () => now, failureThreshold: 2 });
    capacity = new CapacityMemory(storage, names);
    await Promise.all([store.ensure(), capacity.ensure()]);
  });

  it('captures every cluster concurrently; one failure does not stop the others', async () => {
    // Prepare
    const cc = fakeCycleCloud({ a: () => status(), b: () => Object.assign(new Error('CycleCloud answered 503'), { code: 'CC_UNAVAILABLE' }), c: () => status() });
    const logs = captureLogs();
    // Act
    const results = await captureSnapshots({ cyclecloud: cc, store, logger: logs.logger, now: () => now }, ['a', 'b', 'c'], { isPastDue: true });
    // Assess
    expect(results.map((r) => [r.cluster, r.ok])).toEqual([
      ['a', true],
      ['b', false],
      ['c', true],
    ]);
    expect(cc.calls.every((c) => c.nodes === true)).toBe(true);
    const a = results[0]!;
    expect(a.ok && a.snapshot.nodes).toEqual([{ name: 'ondemand-1', id: 'n1', status: 'Ready', nodearray: 'ondemand', placementGroupId: null }]);
    expect((await store.latest('a'))!.takenAt).toBe(new Date(T0).toISOString());
    expect(await store.latest('b')).toBeNull();
    expect(results[1]).toMatchObject({ ok: false, consecutiveFailures: 1, stale: false });
    expect(await store.health('b')).toMatchObject({ consecutiveFailures: 1, lastError: 'CC_UNAVAILABLE: CycleCloud answered 503' });
    const entries = logs.entries();
    expect(entries.some((e) => e.level === 'warn' && e.isPastDue === true)).toBe(true);
    expect(
      entries
        .filter((e) => e.metric === 'snapshot_age_seconds')
        .map((e) => e.cluster)
        .sort(),
    ).toEqual(['a', 'c']);
    expect(entries.some((e) => e.level === 'error' && e.cluster === 'b')).toBe(true);
  });

  it('turns stale after repeated failures and recovers on success', async () => {
    let fail = true;
    const cc = fakeCycleCloud({ a: () => (fail ? new Error('down') : status()) });
    const deps = { cyclecloud: cc, store, logger: captureLogs().logger, now: () => now };
    await captureSnapshots(deps, ['a']);
    const [second] = await captureSnapshots(deps, ['a']);
    expect(second).toMatchObject({ ok: false, consecutiveFailures: 2, stale: true });
    fail = false;
    await captureSnapshots(deps, ['a']);
    expect(await store.health('a')).toMatchObject({ consecutiveFailures: 0, stale: false });
  });

  it('feeds fresh capacity failures to the capacity memory', async () => {
    const body = seedStatusBody() as { nodearrays: { buckets: Record<string, unknown>[] }[] };
    body.nodearrays[0]!.buckets[1]!.lastCapacityFailure = 30;
    const cc = fakeCycleCloud({ hpc: () => ClusterStatusSchema.parse(body) });
    await captureSnapshots({ cyclecloud: cc, store, capacity, logger: captureLogs().logger, now: () => now }, ['hpc']);
    expect(await capacity.active('hpc', T0)).toEqual([
      { nodearray: 'ondemand', machineType: 'Standard_Hc44rs', untilMs: T0 - 30_000 + 300_000, reason: 'CycleCloud reported a capacity failure on ondemand/Standard_Hc44rs' },
    ]);
  });
});

describe('getFreshSnapshot', () => {
  it('uses the stored snapshot while young enough, else reads live and stores it', async () => {
    // Prepare
    const names = uniqueNames();
    let now = T0;
    const store = new SnapshotStore(Storage.fromConnectionString(inject('storageConnectionString')), names, { now: () => now });
    await store.ensure();
    const cc = fakeCycleCloud({ hpc: () => status() });
    const deps = { cyclecloud: cc, store, logger: captureLogs().logger, now: () => now };
    // Act / Assess: nothing stored → live
    expect((await getFreshSnapshot(deps, 'hpc', 60_000)).takenAt).toBe(new Date(T0).toISOString());
    expect(cc.calls).toHaveLength(1);
    now = T0 + 30_000;
    expect((await getFreshSnapshot(deps, 'hpc', 60_000)).takenAt).toBe(new Date(T0).toISOString());
    expect(cc.calls).toHaveLength(1);
    now = T0 + 61_000;
    expect((await getFreshSnapshot(deps, 'hpc', 60_000)).takenAt).toBe(new Date(T0 + 61_000).toISOString());
    expect(cc.calls).toHaveLength(2);
    expect((await store.latest('hpc'))!.takenAt).toBe(new Date(T0 + 61_000).toISOString());
  });

  it('rethrows a failed live read after counting it', async () => {
    const names = uniqueNames();
    const store = new SnapshotStore(Storage.fromConnectionString(inject('storageConnectionString')), names);
    await store.ensure();
    const cc = fakeCycleCloud({ hpc: () => Object.assign(new Error('no route'), { code: 'CC_NETWORK' }) });
    await expect(getFreshSnapshot({ cyclecloud: cc, store, logger: captureLogs().logger, now: () => T0 }, 'hpc', 60_000)).rejects.toMatchObject({ code: 'CC_NETWORK' });
    expect((await store.health('hpc'))!.consecutiveFailures).toBe(1);
  });
});
