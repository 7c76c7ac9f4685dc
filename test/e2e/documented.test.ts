/**
 * The core promise against CycleCloud as documented, through `npm start` and its simulator in its
 * default (documented) mode: no stuck request, no orphan node, no over-ask. Each scenario broke on
 * the product before it followed operations by request id, waited out CycleCloud trouble instead of
 * burning deliveries, and reserved capacity per cluster.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RequestRecord } from '../../src/ledger/schemas.ts';
import { eventually, sleep, startScaler, type RunningScaler } from './harness.ts';
import { askedFor, createCallsOf, memberCreatesOf } from '../helpers/creates.ts';

let host: RunningScaler;

const post = (path: string, body: unknown) => host.api(path, { method: 'POST', body: JSON.stringify(body) });
const sim = (path: string, body?: unknown) => host.sim$(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
const record = async (id: string): Promise<RequestRecord> => (await (await host.api(`/scale-requests/${id}`)).json()) as RequestRecord;
const creates = async (prefix: string) => createCallsOf(await host.simCalls(), prefix);
type SimState = {
  clusters: { hpc: { nodes: Array<{ Name: string; Status: string; Tags?: Record<string, string> }> } };
  operations: Array<{ requestId?: string; action: string; nodeIds: string[] }>;
};
const state = async (): Promise<SimState> => (await (await host.sim$('/__sim/state')).json()) as SimState;
const health = async () => (await (await host.api('/health')).json()) as { poison: { count: number }; overAsk: number; orphans: { adopted: number; terminated: number } };

beforeAll(async () => {
  host = await startScaler({
    storageConnectionString: inject('storageConnectionString'),
    env: { SNAPSHOT_SCHEDULE: '*/2 * * * * *', REQUEST_DEADLINE_MINUTES: '3' },
  });
}, 60_000);

afterAll(async () => {
  await host?.stop();
}, 30_000);

describe('CycleCloud as documented, through npm start', () => {
  it('a create whose answer is lost (commit-then-500) is followed by its request id and fulfilled, not poisoned', async () => {
    expect((await sim('/__sim/faults', { method: 'POST', path: 'nodes/create', kind: 'commit-then-fail', status: 500, times: 1 })).status).toBe(201);
    expect(
      (await post('/scale-requests', { requestId: 'doc-lost-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }] })).status,
    ).toBe(202);
    const final = await host.waitFinal('doc-lost-1', 60_000);
    expect(final.state).toBe('fulfilled');
    // CycleCloud never said the operation id: the record says so, and names the request id it follows.
    expect(final.operations).toEqual([expect.objectContaining({ operationId: null, cycleCloudRequestId: 'doc-lost-1-g0', state: 'done' })]);
    expect(await creates('doc-lost-1')).toHaveLength(1);
    expect((await health()).poison.count).toBe(0);
  });

  it('CycleCloud down after a lost answer never ends the request failed: it waits with a reason, then finishes with one create', async () => {
    await sim('/__sim/faults', { method: 'POST', path: 'nodes/create', kind: 'commit-then-fail', status: 500, times: 1 });
    // Every lookup fails for a while: long enough for the five deliveries a message has.
    await sim('/__sim/faults', { method: 'GET', path: '/nodes', kind: 'status', status: 503, times: 12 });
    expect(
      (await post('/scale-requests', { requestId: 'doc-down-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }] })).status,
    ).toBe(202);
    const waiting = await eventually(
      async () => {
        const r = await record('doc-down-1');
        return r.reason?.includes('CycleCloud') ? r : undefined;
      },
      20_000,
      'a reason naming CycleCloud',
    );
    expect(['queued', 'planning', 'submitted']).toContain(waiting.state);
    await host.sim$('/__sim/faults', { method: 'DELETE' });
    const final = await host.waitFinal('doc-down-1', 90_000);
    expect(final.state).toBe('fulfilled');
    expect(await creates('doc-down-1')).toHaveLength(1);
    expect((await health()).poison.count).toBe(0);
  });

  it('a create whose answer is lost and whose request id CycleCloud then forgets is found by its tags, not created twice', async () => {
    await sim('/__sim/faults', { method: 'POST', path: 'nodes/create', kind: 'commit-then-fail', status: 500, times: 1 });
    // Each lookup by request id finds nothing, as if CycleCloud had forgotten it at once.
    await sim('/__sim/documentation-gaps', { requestIdRetentionMs: 0 });
    try {
      expect(
        (await post('/scale-requests', { requestId: 'doc-forgot-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] }] })).status,
      ).toBe(202);
      const final = await host.waitFinal('doc-forgot-1', 60_000);
      expect(final.state).toBe('fulfilled');
      expect(final.nodes).toHaveLength(2);
    } finally {
      await sim('/__sim/documentation-gaps', { requestIdRetentionMs: 1e15 });
    }
    const applied = (await state()).operations.filter((o) => o.action === 'create' && o.requestId === 'doc-forgot-1-g0');
    expect(applied).toHaveLength(1);
    // The nodes say whose they are.
    const tagged = (await state()).clusters.hpc.nodes.filter((n) => n.Tags?.['ccscale-request'] === 'doc-forgot-1');
    expect(tagged).toHaveLength(2);
  });

  it('a burst of 100 one-node requests against 12 free nodes never over-asks and never backs off by its own race', async () => {
    // 12 free HB120rs_v3 nodes (quota for 12 × 120 cores), nothing else in that bucket.
    expect((await sim('/__sim/buckets', { cluster: 'hpc', nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', patch: { quotaCoreCount: 12 * 120 } })).status).toBe(204);
    // Plans read the stored snapshot: wait for one taken after the quota changed (an older one
    // still shows 64 free, and a batch planned on it would rightly ask for them).
    type Status = { nodearrays: Array<{ name: string; buckets: Array<{ machineType: string; availableCount: number }> }> };
    await eventually(
      async () => {
        const s = (await (await host.api('/clusters/hpc/status')).json()) as Status;
        const b = s.nodearrays.find((n) => n.name === 'mpi')?.buckets.find((x) => x.machineType === 'Standard_HB120rs_v3');
        return b?.availableCount === 12 ? b : undefined;
      },
      15_000,
      'a snapshot showing the 12 free nodes',
    );
    const ids = Array.from({ length: 100 }, (_, i) => `doc-burst-${i}`);
    const answers = await Promise.all(ids.map((id) => post('/scale-requests', { requestId: id, cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] })));
    expect(answers.every((a) => a.status === 202)).toBe(true);
    const fulfilled = await eventually(
      async () => {
        const records = await Promise.all(ids.map(record));
        const done = records.filter((r) => r.state === 'fulfilled');
        return done.length >= 12 ? done : undefined;
      },
      90_000,
      '12 burst requests fulfilled',
    );
    await sleep(3_000);
    // Creates may be batched: a call carries the sets of several requests, each tagged with its own.
    const calls = createCallsOf(await host.simCalls(), 'doc-burst-');
    const sent = new Set(calls.map((c) => String((c.body as { requestId?: string }).requestId)));
    const ops = (await state()).operations.filter((o) => o.action === 'create' && sent.has(o.requestId ?? ''));
    // A create CycleCloud applied is answered 202. The same create sent again under its request id
    // (its answer slow on a loaded machine, the lookup not finding it yet) is refused with 409 and
    // asks for nothing; any other answer would be a create that did not apply.
    const applied = calls.filter((c) => c.status === 202);
    expect(calls.filter((c) => c.status !== 202 && c.status !== 409).map((c) => c.status)).toEqual([]);
    const asked = applied.reduce((n, c) => n + askedFor(c, 'doc-burst-'), 0);
    const added = ops.reduce((n, o) => n + o.nodeIds.length, 0);
    expect(fulfilled).toHaveLength(12);
    // Every create got exactly what it asked for, and nothing was asked beyond the 12 free nodes.
    const members = applied.flatMap(memberCreatesOf);
    expect(asked, `applied creates: ${members.join(' ')}`).toBe(12);
    expect(added).toBe(12);
    // 12 requests' creates, each applied once, in at most 12 calls (fewer when they were batched)
    expect(members).toHaveLength(12);
    expect(new Set(members).size).toBe(12);
    expect(applied.length).toBeLessThanOrEqual(12);
    const h = await health();
    expect(h.overAsk).toBe(0);
    // No bucket went into capacity backoff: the waiting requests say why they wait, and it is not a backoff.
    const waiting = (await Promise.all(ids.map(record))).filter((r) => r.state !== 'fulfilled');
    expect(waiting.length).toBe(88);
    for (const r of waiting) expect(r.reason ?? '').not.toMatch(/backoff|capacity failure/i);
  }, 150_000);
});
