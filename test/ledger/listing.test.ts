import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { applyNodeStates, applySubmission, settle } from '../../src/ledger/record.ts';
import { markReleased } from '../../src/ledger/lease.ts';
import { MAX_TRANSITIONS, listPartition, nextTransitions, trendsOf } from '../../src/ledger/listing.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { uniqueNames } from '../helpers/names.ts';

// 23:50 UTC: the first requests of a test land on one day, later ones on the next.
const T0 = Date.UTC(2026, 10, 29, 23, 50);
const MIN = 60_000;

function request(requestId: string, cluster = 'hpc', count = 2, jobId?: string): ScaleRequest {
  return { kind: 'scale', requestId, cluster, demands: [{ nodearray: 'ondemand', count, ...(jobId ? { jobId } : {}) }] };
}

/** Drives an entry to fulfilled through the record rules the tracker uses. */
async function fulfil(ledger: RequestLedger, requestId: string, count: number, at: () => number): Promise<void> {
  await ledger.update(requestId, (e) =>
    applySubmission(
      e,
      {
        generation: 0,
        cycleCloudRequestId: `${requestId}-g0`,
        state: 'accepted',
        operationId: `op-${requestId}`,
        sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count, added: count, message: null, demands: [{ index: 0, count }] }],
        submittedAtMs: at(),
      },
      at(),
    ),
  );
  const nodes = Array.from({ length: count }, (_, i) => ({ name: `${requestId}-${i}`, id: `${requestId}-id-${i}`, status: 'Ready', demand: 0, outcome: 'ready' as const }));
  await ledger.update(requestId, (e) => settle(applyNodeStates(e, `op-${requestId}`, nodes, at()), at()));
}

describe('request list rows on azurite', () => {
  const names = uniqueNames();
  let now = T0;
  let ledger: RequestLedger;

  beforeAll(async () => {
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    await storage.ensure({ tables: [names.requestsTable] });
    ledger = new RequestLedger({ storage, names, now: () => now });
    // Prepare: five requests over 20 minutes, across midnight, on two clusters
    await ledger.admit(request('a-1', 'hpc', 2, '4711'), now);
    now += 4 * MIN;
    await ledger.admit(request('a-2', 'hpc', 3), now);
    now += 4 * MIN; // 23:58
    await ledger.admit(request('b-1', 'gpu', 1, '4712'), now);
    now += 4 * MIN; // 00:02 next day
    await ledger.admit(request('b-2', 'gpu', 1), now);
    await fulfil(ledger, 'a-1', 2, () => now);
    now += 2 * MIN;
    await ledger.admit(request('c-1', 'hpc', 1, '4711'), now);
    await fulfil(ledger, 'a-2', 3, () => now);
    now += MIN;
  });

  it('lists newest first across days, in pages that follow a cursor', async () => {
    // Act
    const first = await ledger.listing.list({ limit: 2 });
    const second = await ledger.listing.list({ limit: 2, cursor: first.nextCursor! });
    const third = await ledger.listing.list({ limit: 2, cursor: second.nextCursor! });
    // Assess
    expect(first.items.map((i) => i.requestId)).toEqual(['c-1', 'b-2']);
    expect(second.items.map((i) => i.requestId)).toEqual(['b-1', 'a-2']);
    expect(third.items.map((i) => i.requestId)).toEqual(['a-1']);
    expect(third.nextCursor).toBeNull();
    expect(listPartition(T0)).not.toBe(listPartition(now));
  });

  it('filters by state and cluster in the query', async () => {
    const fulfilled = await ledger.listing.list({ states: ['fulfilled'] });
    const gpu = await ledger.listing.list({ cluster: 'gpu' });
    const openHpc = await ledger.listing.list({ cluster: 'hpc', states: ['queued', 'submitted'] });
    expect(fulfilled.items.map((i) => i.requestId)).toEqual(['a-2', 'a-1']);
    expect(fulfilled.items[0]).toMatchObject({ state: 'fulfilled', requested: 3, ready: 3, cluster: 'hpc', finalAt: new Date(now - MIN).toISOString() });
    expect(gpu.items.map((i) => i.requestId)).toEqual(['b-2', 'b-1']);
    expect(openHpc.items.map((i) => i.requestId)).toEqual(['c-1']);
  });

  it('lists only what was created since the given time', async () => {
    const recent = await ledger.listing.list({ sinceMs: T0 + 8 * MIN });
    expect(recent.items.map((i) => i.requestId)).toEqual(['c-1', 'b-2', 'b-1']);
  });

  it("finds requests by id prefix and by a demand's job id (whole id only)", async () => {
    expect((await ledger.listing.search('a-')).map((i) => i.requestId)).toEqual(['a-2', 'a-1']);
    expect((await ledger.listing.search('4711')).map((i) => i.requestId)).toEqual(['c-1', 'a-1']);
    expect((await ledger.listing.search('471')).map((i) => i.requestId)).toEqual([]);
    expect((await ledger.listing.search("o'neil")).map((i) => i.requestId)).toEqual([]);
  });

  it('records the timeline of a request: states and ready nodes with their time', async () => {
    const entry = await ledger.get('a-1');
    expect(entry!.transitions!.map((t) => [t.state, t.ready])).toEqual([
      ['queued', 0],
      ['submitted', 0],
      ['fulfilled', 2],
    ]);
    expect(entry!.transitions![0]!.atMs).toBe(T0);
  });

  it('gives trends the rows of a window: requests per bucket, accept → fulfilled, nodes ready', async () => {
    const rows = await ledger.listing.trendRows(T0, now);
    const trends = trendsOf(rows, T0, now, 5 * MIN);
    expect(trends.totals).toMatchObject({ requests: 5, fulfilled: 2, nodesReady: 5 });
    // a-1: created T0, fulfilled at T0+12 min; a-2: created T0+4, fulfilled at T0+14
    expect(trends.totals.p50Seconds).toBe(600);
    expect(trends.totals.p95Seconds).toBe(720);
    expect(trends.buckets.map((b) => b.requests)).toEqual([2, 1, 2]);
  });
});

describe('transitions and trends (pure)', () => {
  const entry = (state: LedgerEntry['record']['state'], ready: number, updatedAt: number, transitions?: LedgerEntry['transitions']): LedgerEntry => ({
    record: {
      requestId: 'r',
      cluster: 'hpc',
      kind: 'scale',
      state,
      demands: [{ index: 0, requested: 100, created: 100, ready, placementGroupId: null, machineType: null, reason: null }],
      operations: [],
      nodes: [],
      reason: null,
      createdAt: new Date(T0).toISOString(),
      updatedAt: new Date(updatedAt).toISOString(),
    },
    request: null,
    bodyHash: '',
    attempts: [],
    deadlineAtMs: 0,
    nextAttemptAtMs: null,
    ...(transitions ? { transitions } : {}),
  });

  it('keeps state changes and merges the oldest ready steps beyond the bound', () => {
    let prev = entry('submitted', 0, T0, [
      { state: 'queued', ready: 0, atMs: T0 },
      { state: 'submitted', ready: 0, atMs: T0 + 1 },
    ]);
    for (let ready = 1; ready <= 100; ready++) {
      const next = entry('submitted', ready, T0 + ready * 1000);
      next.transitions = nextTransitions(prev, next, 0);
      prev = next;
    }
    const done = entry('fulfilled', 100, T0 + 200_000);
    const list = nextTransitions(prev, done, 0);
    expect(list.length).toBeLessThanOrEqual(MAX_TRANSITIONS);
    expect(list.map((t) => t.state).filter((s, i, a) => s !== a[i - 1])).toEqual(['queued', 'submitted', 'fulfilled']);
    expect(list.at(-1)).toEqual({ state: 'fulfilled', ready: 100, atMs: T0 + 200_000 });
    expect(list.at(-2)!.ready).toBe(100);
  });

  it('starts the history of an entry written before transitions existed at its creation', () => {
    const list = nextTransitions(entry('queued', 0, T0 + 5), entry('submitted', 0, T0 + 9), 0);
    expect(list).toEqual([
      { state: 'queued', ready: 0, atMs: T0 },
      { state: 'submitted', ready: 0, atMs: T0 + 9 },
    ]);
  });

  it('computes nearest-rank percentiles per bucket and ignores what falls outside the window', () => {
    const rows = [10, 20, 30, 40, 1000].map((s, i) => ({
      createdAtMs: T0 + i,
      transitions: [
        { state: 'queued' as const, ready: 0, atMs: T0 + i },
        { state: 'fulfilled' as const, ready: 1, atMs: T0 + i + s * 1000 },
      ],
    }));
    rows.push({ createdAtMs: T0 - 10 * MIN, transitions: [{ state: 'queued', ready: 0, atMs: T0 - 10 * MIN }] });
    const t = trendsOf(rows, T0, T0 + 60 * MIN, 60 * MIN);
    expect(t.buckets).toHaveLength(1);
    expect(t.buckets[0]).toMatchObject({ requests: 5, fulfilled: 5, p50Seconds: 30, p95Seconds: 1000, nodesReady: 5 });
  });
});

describe('list rows carry the lifecycle', () => {
  it('lease expiry, release, spot and evicted counts, read back from the stored rows', async () => {
    // Prepare
    const names = uniqueNames();
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    await storage.ensure({ tables: [names.requestsTable] });
    let now = T0;
    const ledger = new RequestLedger({ storage, names, now: () => now });
    await ledger.admit({ ...request('l-1'), lease: { seconds: 600 } }, now);
    await ledger.admit(request('l-2'), now);
    await fulfil(ledger, 'l-2', 2, () => now);
    now += MIN;
    // Act: l-2's nodes: one spot and evicted, then released
    await ledger.update('l-2', (e) => applyNodeStates(e, 'op-l-2', [{ name: 'l-2-0', id: 'l-2-id-0', status: 'Evicted', demand: 0, outcome: 'failed', spot: true }], now));
    await ledger.update('l-2', (e) => markReleased(e, 'released', now));
    const { items } = await ledger.listing.list({ limit: 10 });

    // Assess
    const byId = Object.fromEntries(items.map((i) => [i.requestId, i]));
    expect(byId['l-1']).toMatchObject({ leaseExpiresAt: new Date(T0 + 600_000).toISOString(), released: null, spot: 0, evicted: 0 });
    expect(byId['l-2']).toMatchObject({ leaseExpiresAt: null, released: 'released', spot: 1, evicted: 1 });
  });
});
