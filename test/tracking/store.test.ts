import { beforeAll, describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { TrackerStore, TrackerStoreError, type TrackerRecord } from '../../src/tracking/store.ts';
import { initialState } from '../../src/tracking/machine.ts';
import { uniqueNames } from '../helpers/names.ts';

const T0 = 1_700_000_000_000;
let store: TrackerStore;

function record(operationId: string, over: Partial<TrackerRecord> = {}, nextPollAtMs = T0 + 5_000): TrackerRecord {
  const state = initialState({ cluster: 'hpc', operationId, cycleCloudRequestId: operationId, requestId: 'r', action: 'create', generation: 0, sets: [] }, T0);
  state.nextPollAtMs = nextPollAtMs;
  return { state, outbox: [], wakeToken: 'w1', leaseUntilMs: 0, ...over };
}

beforeAll(async () => {
  const names = uniqueNames();
  store = new TrackerStore({ storage: Storage.fromConnectionString(inject('storageConnectionString')), names });
  await store.ensure();
});

describe('TrackerStore', () => {
  it('creates once and returns the existing record afterwards', async () => {
    // Prepare
    const first = record('op/1#x');
    // Act
    const a = await store.create(first);
    const b = await store.create({ ...first, wakeToken: 'other' });
    // Assess
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.record.wakeToken).toBe('w1');
    expect((await store.get('hpc', 'op/1#x'))?.state.operationId).toBe('op/1#x');
  });

  it('refuses a write with a stale ETag', async () => {
    const { record: r } = await store.create(record('op-2'));
    await store.replace({ ...r, wakeToken: 'w2' });
    await expect(store.replace({ ...r, wakeToken: 'w3' })).rejects.toBeInstanceOf(TrackerStoreError);
  });

  it('grants the poll lease to exactly one of two concurrent takers', async () => {
    const { record: r } = await store.create(record('op-3'));
    const results = await Promise.all([store.tryLease(r, T0, 60_000), store.tryLease(r, T0, 60_000)]);
    expect(results.filter((x) => x !== null)).toHaveLength(1);
    const fresh = (await store.get('hpc', 'op-3'))!;
    expect(fresh.leaseUntilMs).toBe(T0 + 60_000);
    expect(await store.tryLease(fresh, T0 + 1_000, 60_000)).toBeNull();
    expect(await store.tryLease(fresh, T0 + 61_000, 60_000)).not.toBeNull();
  });

  it('lists overdue and crashed records, not healthy, leased or final ones', async () => {
    // Prepare: its own cluster-independent ids; times relative to "now".
    const now = T0 + 3_600_000;
    await store.create(record('late', {}, now - 10 * 60_000));
    await store.create(record('fresh', {}, now - 60_000));
    await store.create(record('crashed', { leaseUntilMs: now - 1_000 }, now + 30_000));
    await store.create(record('busy', { leaseUntilMs: now + 60_000 }, now - 10 * 60_000));
    const done = record('done', {}, now - 10 * 60_000);
    done.state.final = true;
    await store.create(done);
    // Act
    const overdue = await store.listOverdue(now, 180_000);
    // Assess
    const ids = overdue.map((r) => r.state.cycleCloudRequestId).filter((id) => ['late', 'fresh', 'crashed', 'busy', 'done'].includes(id));
    expect(ids.sort()).toEqual(['crashed', 'late']);
  });

  it('refuses to replace a record that carries no ETag (never an unconditional write)', async () => {
    await store.create(record('no-etag'));
    await expect(store.replace(record('no-etag', { wakeToken: 'w9' }))).rejects.toBeInstanceOf(TrackerStoreError);
    expect((await store.get('hpc', 'no-etag'))?.wakeToken).toBe('w1');
  });

  it("lists a cluster's active operations from the index, which drops them once final or deleted", async () => {
    const a = (await store.create({ ...record('idx-a'), state: { ...record('idx-a').state, cluster: 'idx/c' } })).record;
    await store.create({ ...record('idx-b'), state: { ...record('idx-b').state, cluster: 'idx/c' } });
    await store.create({ ...record('idx-c'), state: { ...record('idx-c').state, cluster: 'idx/c2' } });
    expect((await store.listActive('idx/c')).map((r) => r.state.cycleCloudRequestId).sort()).toEqual(['idx-a', 'idx-b']);
    await store.replace({ ...a, state: { ...a.state, final: true } });
    await store.delete('idx/c', 'idx-b');
    expect(await store.listActive('idx/c')).toEqual([]);
    expect((await store.listActive('idx/c2')).map((r) => r.state.cycleCloudRequestId)).toEqual(['idx-c']);
  });

  it('keeps a record with thousands of nodes in one entity', async () => {
    const r = record('big');
    r.state.nodes = Array.from({ length: 5000 }, (_, i) => ({
      name: `ondemand-${i}`,
      id: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
      status: 'Ready',
      outcome: 'ready' as const,
      statusMessage: null,
      setIndex: 0,
      demandIndex: 0,
      placementGroupId: null,
      seen: true,
      terminating: false,
      changedAtMs: T0,
    }));
    await store.create(r);
    expect((await store.get('hpc', 'big'))?.state.nodes).toHaveLength(5000);
  });
});
