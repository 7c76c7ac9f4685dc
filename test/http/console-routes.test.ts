import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/http/routes.ts';
import { capacityView, parseListQuery, trendBucketMs } from '../../src/http/console-routes.ts';
import type { RequestsReader } from '../../src/http/deps.ts';
import type { ListRequestsQuery, RequestSummary } from '../../src/ledger/listing.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { bodyOf, fakeDeps, headerOf, httpRequest, snapshotFixture, T0 } from './fakes.ts';

const handler = (name: string) => ROUTES.find((r) => r.name === name)!.handler;

function summary(over: Partial<RequestSummary>): RequestSummary {
  return {
    requestId: 'r',
    cluster: 'hpc',
    kind: 'scale',
    state: 'queued',
    requested: 1,
    ready: 0,
    demands: 1,
    jobIds: [],
    reason: null,
    createdAt: new Date(T0).toISOString(),
    updatedAt: new Date(T0).toISOString(),
    finalAt: null,
    leaseExpiresAt: null,
    released: null,
    spot: 0,
    evicted: 0,
    ...over,
  };
}

/** A request list in memory that records what the routes asked of it. */
function fakeRequests(items: RequestSummary[], entries: Record<string, LedgerEntry> = {}) {
  const calls: { list: ListRequestsQuery[]; search: { text: string; options: unknown }[]; trendRows: [number, number][] } = { list: [], search: [], trendRows: [] };
  const reader: RequestsReader = {
    list: async (q) => {
      calls.list.push(q);
      return { items, nextCursor: '9999999999999~r' };
    },
    search: async (text, options) => {
      calls.search.push({ text, options });
      return items;
    },
    trendRows: async (from, to) => {
      calls.trendRows.push([from, to]);
      return [
        {
          createdAtMs: to - 120_000,
          transitions: [
            { state: 'queued', ready: 0, atMs: to - 120_000 },
            { state: 'fulfilled', ready: 3, atMs: to - 60_000 },
          ],
        },
      ];
    },
    entry: async (id) => entries[id] ?? null,
  };
  return { reader, calls };
}

describe('GET /api/scale-requests (list)', () => {
  it('passes state, cluster, page size, cursor and window to the list, and answers the page', async () => {
    // Prepare
    const { reader, calls } = fakeRequests([summary({ requestId: 'a', state: 'failed' })]);
    const { deps, world } = fakeDeps({ requests: reader });
    // Act
    const res = await handler('scaleRequestsList')(
      deps,
      httpRequest('GET', '/api/scale-requests', { query: 'state=failed,partially_fulfilled&cluster=hpc&limit=20&cursor=9999999999999~job-1&hours=2' }),
    );
    // Assess
    expect(res.status).toBe(200);
    expect(bodyOf(res)).toMatchObject({ items: [{ requestId: 'a', state: 'failed' }], nextCursor: '9999999999999~r' });
    expect(calls.list).toEqual([{ states: ['failed', 'partially_fulfilled'], cluster: 'hpc', limit: 20, cursor: '9999999999999~job-1', sinceMs: world.nowMs - 2 * 3_600_000 }]);
  });

  it('names every bad parameter in one 400', async () => {
    const { deps } = fakeDeps({ requests: fakeRequests([]).reader });
    const res = await handler('scaleRequestsList')(deps, httpRequest('GET', '/api/scale-requests', { query: 'state=done&limit=0&cursor=abc&hours=x' }));
    expect(res.status).toBe(400);
    expect(bodyOf<{ errors: { path: string }[] }>(res).errors.map((e) => e.path)).toEqual(['state', 'limit', 'hours', 'cursor']);
    expect(parseListQuery(new URL(`https://x/api/scale-requests?q=${'a'.repeat(129)}`), 0)).toMatchObject({ ok: false, errors: [{ path: 'q' }] });
  });

  it('leased=true lists the leased requests soonest first, with the state and cluster filters; a bad value is a 400', async () => {
    const soonest = [summary({ requestId: 'soon', state: 'fulfilled', leaseExpiresAt: '2026-12-07T12:01:00.000Z' }), summary({ requestId: 'later', state: 'submitted' })];
    const limits: number[] = [];
    const { deps } = fakeDeps({
      requests: fakeRequests([]).reader,
      leases: {
        view: async () => ({ tracked: 2, due: 0, nodesPastLease: 0 }),
        soonest: async (limit) => {
          limits.push(limit);
          return soonest;
        },
      },
    });
    const all = await handler('scaleRequestsList')(deps, httpRequest('GET', '/api/scale-requests', { query: 'leased=true&limit=5' }));
    const fulfilled = await handler('scaleRequestsList')(deps, httpRequest('GET', '/api/scale-requests', { query: 'leased=true&state=fulfilled' }));
    const bad = await handler('scaleRequestsList')(deps, httpRequest('GET', '/api/scale-requests', { query: 'leased=yes' }));

    expect(bodyOf<{ items: { requestId: string }[] }>(all).items.map((i) => i.requestId)).toEqual(['soon', 'later']);
    expect(bodyOf<{ items: { requestId: string }[] }>(fulfilled).items.map((i) => i.requestId)).toEqual(['soon']);
    expect(limits).toEqual([5, 50]);
    expect(bad.status).toBe(400);
    expect(bodyOf<{ errors: unknown[] }>(bad).errors).toEqual([{ path: 'leased', message: 'must be true or false' }]);
  });

  it('searches by id or job id with q, then applies the state and cluster filters', async () => {
    const { reader, calls } = fakeRequests([
      summary({ requestId: 'a', state: 'failed' }),
      summary({ requestId: 'b', state: 'fulfilled' }),
      summary({ requestId: 'c', state: 'failed', cluster: 'gpu' }),
    ]);
    const { deps } = fakeDeps({ requests: reader });
    const res = await handler('scaleRequestsList')(deps, httpRequest('GET', '/api/scale-requests', { query: 'q=4711&state=failed&cluster=hpc' }));
    expect(bodyOf<{ items: RequestSummary[]; nextCursor: null }>(res)).toMatchObject({ items: [{ requestId: 'a' }], nextCursor: null });
    expect(calls.search).toEqual([{ text: '4711', options: { limit: 50 } }]);
  });

  it('answers 404 when the deployment keeps no list', async () => {
    const { deps } = fakeDeps();
    expect((await handler('scaleRequestsList')(deps, httpRequest('GET', '/api/scale-requests'))).status).toBe(404);
    expect((await handler('trends')(deps, httpRequest('GET', '/api/trends'))).status).toBe(404);
  });
});

describe('GET /api/scale-requests/{requestId}/timeline', () => {
  it('answers the transitions, creates and compensations with ISO times', async () => {
    const entry = {
      record: {
        requestId: 'job-1',
        cluster: 'hpc',
        kind: 'scale',
        state: 'fulfilled',
        demands: [],
        operations: [],
        nodes: [],
        reason: null,
        createdAt: new Date(T0).toISOString(),
        updatedAt: new Date(T0).toISOString(),
      },
      request: null,
      bodyHash: '',
      deadlineAtMs: 0,
      nextAttemptAtMs: null,
      attempts: [
        {
          generation: 0,
          cycleCloudRequestId: 'job-1-g0',
          state: 'accepted',
          operationId: 'op',
          submittedAtMs: T0 + 1000,
          sets: [{ nodearray: 'mpi', machineType: 'X', placementGroupId: 'pg', count: 4, added: 4, message: null, demands: [] }],
        },
      ],
      compensations: [{ demandIndex: 0, placementGroupId: 'pg', nodeNames: ['mpi-1', 'mpi-2'], reason: 'gang incomplete', atMs: T0 + 5000 }],
      transitions: [
        { state: 'queued', ready: 0, atMs: T0 },
        { state: 'fulfilled', ready: 4, atMs: T0 + 9000 },
      ],
    } as LedgerEntry;
    const { deps } = fakeDeps({ requests: fakeRequests([], { 'job-1': entry }).reader });
    const res = await handler('scaleRequestsTimeline')(deps, httpRequest('GET', '/', { params: { requestId: 'job-1' } }));
    expect(bodyOf(res)).toEqual({
      requestId: 'job-1',
      state: 'fulfilled',
      createdAt: new Date(T0).toISOString(),
      transitions: [
        { state: 'queued', ready: 0, at: new Date(T0).toISOString() },
        { state: 'fulfilled', ready: 4, at: new Date(T0 + 9000).toISOString() },
      ],
      attempts: [{ cycleCloudRequestId: 'job-1-g0', state: 'accepted', at: new Date(T0 + 1000).toISOString(), nodes: 4 }],
      compensations: [{ demand: 0, placementGroupId: 'pg', nodes: 2, reason: 'gang incomplete', at: new Date(T0 + 5000).toISOString() }],
    });
    expect((await handler('scaleRequestsTimeline')(deps, httpRequest('GET', '/', { params: { requestId: 'nope' } }))).status).toBe(404);
    expect((await handler('scaleRequestsTimeline')(deps, httpRequest('GET', '/', { params: { requestId: 'bad id' } }))).status).toBe(400);
  });
});

describe('GET /api/clusters/{cluster}/capacity', () => {
  it('adds what is in flight (per bucket and placement group), the backoff in force, quota, staleness and the pause', async () => {
    // Prepare: 2 nodes asked in pg-a and 3 loose HC44rs (machine type in another case) since the snapshot; HC44rs backing off
    const { deps, world } = fakeDeps({
      ledger: {
        getRecord: async () => null,
        inFlight: async () => [
          { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg-a', count: 2 },
          { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg-new', count: 4 },
          { nodearray: 'ondemand', machineType: 'standard_hc44rs', placementGroupId: null, count: 3 },
        ],
      },
      capacity: { active: () => [{ nodearray: 'ondemand', machineType: 'Standard_HC44rs', untilMs: T0 + 90_500, reason: 'OverconstrainedAllocationRequest' }] },
    });
    world.paused = true;
    world.healths.set('hpc', { takenAt: new Date(T0).toISOString(), ageSeconds: 30, consecutiveFailures: 3, stale: true });
    // Act
    const res = await handler('clusterCapacity')(deps, httpRequest('GET', '/', { params: { cluster: 'hpc' } }));
    // Assess
    const body = bodyOf<{
      stale: boolean;
      paused: boolean;
      ageSeconds: number;
      nodearrays: { name: string; buckets: { machineType: string; inFlight: number; quotaCount: number; backoff: unknown; placementGroups: unknown[] }[] }[];
    }>(res);
    expect(body).toMatchObject({ stale: true, paused: true, ageSeconds: 30 });
    const [f32, hc] = body.nodearrays[0]!.buckets;
    expect(f32).toMatchObject({ machineType: 'Standard_F32s_v2', inFlight: 0, quotaCount: 3, backoff: null });
    expect(hc).toMatchObject({ inFlight: 3, backoff: { until: new Date(T0 + 90_500).toISOString(), secondsLeft: 61, reason: 'OverconstrainedAllocationRequest' } });
    expect(body.nodearrays[1]!.buckets[0]).toMatchObject({
      inFlight: 6,
      placementGroups: [
        { name: 'pg-a', activeCount: 4, inFlight: 2 },
        { name: 'pg-new', activeCount: 0, inFlight: 4 },
      ],
    });
    expect((await handler('clusterCapacity')(deps, httpRequest('GET', '/', { params: { cluster: 'nope' } }))).status).toBe(404);
  });

  it('ignores a backoff that has run out', () => {
    const view = capacityView(snapshotFixture(), [], [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', untilMs: T0, reason: 'x' }], T0, { stale: false, paused: false });
    expect(view.nodearrays[0]!.buckets[0]!.backoff).toBeNull();
  });
});

describe('GET /api/trends', () => {
  it('reads the window plus a lookback for long requests, in aligned buckets', async () => {
    const { reader, calls } = fakeRequests([]);
    const { deps, world } = fakeDeps({ requests: reader });
    const res = await handler('trends')(deps, httpRequest('GET', '/api/trends', { query: 'hours=1' }));
    const body = bodyOf<{ fromMs: number; toMs: number; bucketSeconds: number; buckets: unknown[]; totals: Record<string, unknown> }>(res);
    expect(body.bucketSeconds).toBe(60);
    expect(body.toMs % 60_000).toBe(0);
    expect(body.toMs).toBeGreaterThan(world.nowMs);
    expect(body.toMs - body.fromMs).toBe(3_600_000);
    expect(body.buckets).toHaveLength(60);
    expect(body.totals).toEqual({ requests: 1, fulfilled: 1, p50Seconds: 60, p95Seconds: 60, nodesReady: 3 });
    expect(calls.trendRows).toEqual([[body.fromMs - 2 * 3_600_000, body.toMs]]);
    expect((await handler('trends')(deps, httpRequest('GET', '/api/trends', { query: 'hours=49' }))).status).toBe(400);
    expect([trendBucketMs(1), trendBucketMs(6), trendBucketMs(48)]).toEqual([60_000, 300_000, 900_000]);
  });
});

describe('GET /api/counters and GET /api/console', () => {
  it('answers every counter', async () => {
    const { deps, world } = fakeDeps();
    world.counters = { rejectedMessages: 2, poisonedMessages: 1 };
    expect(bodyOf(await handler('counters')(deps, httpRequest('GET', '/api/counters')))).toEqual({ counters: { rejectedMessages: 2, poisonedMessages: 1 } });
  });

  it('serves one self-contained page with a hash-based CSP, gzip when accepted, never cached', async () => {
    const { deps } = fakeDeps();
    const plain = await handler('console')(deps, httpRequest('GET', '/api/console', { query: 'code=fn-key-123456' }));
    const zipped = await handler('console')(deps, httpRequest('GET', '/api/console', { headers: { 'accept-encoding': 'br, gzip' } }));
    const html = String(plain.body);
    expect(plain.status).toBe(200);
    expect(headerOf(plain, 'content-type')).toBe('text/html; charset=utf-8');
    expect(headerOf(plain, 'cache-control')).toBe('no-store');
    expect(headerOf(plain, 'content-security-policy')).toMatch(/^default-src 'none'; script-src 'sha256-[^']+' 'sha256-[^']+'; style-src 'sha256-[^']+'; connect-src 'self'/);
    expect(html).not.toContain('fn-key-123456');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet/); // nothing to fetch
    expect(headerOf(zipped, 'content-encoding')).toBe('gzip');
    expect(gunzipSync(zipped.body as Buffer).toString('utf8')).toBe(html);
  });
});
