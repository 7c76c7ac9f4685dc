/**
 * Fault injection and the `/__sim/` hooks over real HTTP: each fault mode, matching and `times`,
 * and every hook another process can drive.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterStatus, CycleCloudErrorBody, NodeCreationResult, NodeList } from '../../src/cyclecloud/schemas.ts';
import { startSimulator, type CallRecord, type SimulatorHandle } from '../../src/simulator/server.ts';
import { call } from './http.ts';

let h: SimulatorHandle;
let nowMs = Date.UTC(2026, 0, 1);

beforeEach(async () => {
  nowMs = Date.UTC(2026, 0, 1);
  h = await startSimulator({ port: 0, stepMs: 1000, now: () => nowMs });
});

afterEach(async () => {
  await h.close();
});

const createBody = (requestId: string) => ({ requestId, sets: [{ nodearray: 'ondemand', count: 2 }] });

describe('fault modes', () => {
  it('status: answers the code with a CycleCloud body, applies nothing, and is used up', async () => {
    // Prepare
    h.faults.add({ method: 'POST', path: 'nodes/create', kind: 'status', status: 502 });
    // Act
    const failed = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('s-1') });
    const next = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('s-1') });
    // Assess
    expect(failed.status).toBe(502);
    expect(CycleCloudErrorBody.parse(failed.json).Message).toBeTruthy();
    expect(next.status).toBe(202); // the id was not registered by the failed call
    expect(h.nodes('hpc')).toHaveLength(2);
  });

  it('status defaults to 503', async () => {
    h.faults.add({ kind: 'status' });
    expect((await call(h, 'GET', '/clusters/hpc/status')).status).toBe(503);
  });

  it('throttle: 429 with Retry-After', async () => {
    h.faults.add({ path: /\/status$/, kind: 'throttle', retryAfterSec: 7, times: 2 });
    const a = await call(h, 'GET', '/clusters/hpc/status');
    const b = await call(h, 'GET', '/clusters/hpc/status');
    const c = await call(h, 'GET', '/clusters/hpc/status');
    expect([a.status, b.status, c.status]).toEqual([429, 429, 200]);
    expect(a.headers.get('retry-after')).toBe('7');
  });

  it('latency: delays, then answers normally', async () => {
    h.faults.add({ kind: 'latency', latencyMs: 300 });
    // A client that gives up after 50 ms sees nothing…
    const impatient = fetch(`${h.url}/clusters/hpc/status`, {
      headers: { authorization: `Basic ${Buffer.from(`${h.username}:${h.password}`).toString('base64')}` },
      signal: AbortSignal.timeout(50),
    });
    await expect(impatient).rejects.toThrow();
    // …and the next call (fault used up) answers at once.
    expect((await call(h, 'GET', '/clusters/hpc/status')).status).toBe(200);
  });

  it('latency: the answer arrives after the delay', async () => {
    h.faults.add({ kind: 'latency', latencyMs: 120 });
    const started = performance.now();
    const res = await call(h, 'GET', '/clusters/hpc/status');
    expect(res.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(110);
  });

  it('reset: the connection drops with no answer and nothing is applied', async () => {
    h.faults.add({ method: 'POST', path: 'nodes/create', kind: 'reset' });
    await expect(call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('r-1') })).rejects.toThrow();
    expect(h.nodes('hpc')).toHaveLength(0);
    expect(h.calls.at(-1)).toMatchObject({ method: 'POST', path: '/clusters/hpc/nodes/create', status: 0 });
  });

  it('commit-then-fail (reset): the client sees an error but the nodes exist under the request id', async () => {
    // Prepare
    h.faults.add({ method: 'POST', path: 'nodes/create', kind: 'commit-then-fail' });
    // Act
    const outcome = call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('ctf-1') });
    // Assess
    await expect(outcome).rejects.toThrow();
    const retry = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('ctf-1') });
    const byRequest = NodeList.parse((await call(h, 'GET', '/clusters/hpc/nodes?request_id=ctf-1')).json);
    expect(retry.status).toBe(409);
    expect(byRequest.nodes.map((n) => n.Name)).toEqual(['ondemand-1', 'ondemand-2']);
  });

  it('commit-then-fail with a status: answers 500 after applying', async () => {
    h.faults.add({ path: 'nodes/create', kind: 'commit-then-fail', status: 500 });
    const res = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('ctf-2') });
    expect(res.status).toBe(500);
    expect(h.nodes('hpc')).toHaveLength(2);
    expect(h.operations.map((o) => o.requestId)).toEqual(['ctf-2']);
  });

  it('a fault matches only its method and path', async () => {
    h.faults.add({ method: 'GET', path: 'nodes/create', kind: 'status' });
    h.faults.add({ method: 'POST', path: '/operations', kind: 'status' });
    const res = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('m-1') });
    expect(res.status).toBe(202);
    expect(h.faults.list()).toHaveLength(2);
    h.faults.clear();
    expect(h.faults.list()).toHaveLength(0);
  });

  it('close() ends a request waiting in latency', async () => {
    h.faults.add({ kind: 'latency', latencyMs: 60_000 });
    const pending = call(h, 'GET', '/clusters/hpc/status');
    await new Promise((r) => setTimeout(r, 50));
    await h.close();
    await expect(pending).rejects.toThrow();
  });
});

describe('call log', () => {
  it('records method, path, query, status and body of CycleCloud calls only', async () => {
    await call(h, 'GET', '/clusters/hpc/status?nodes=true');
    await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('log-1') });
    await call(h, 'GET', '/__sim/state');
    expect(h.calls.map((c) => [c.method, c.path, c.query, c.status])).toEqual([
      ['GET', '/clusters/hpc/status', { nodes: 'true' }, 200],
      ['POST', '/clusters/hpc/nodes/create', {}, 202],
    ]);
    expect(h.calls[1]?.body).toEqual(createBody('log-1'));
  });
});

describe('hooks over HTTP', () => {
  it('faults: add (path or pathRegex), list, clear', async () => {
    const added = await call(h, 'POST', '/__sim/faults', { body: { kind: 'throttle', pathRegex: '/status$', retryAfterSec: 3 } });
    const throttled = await call(h, 'GET', '/clusters/hpc/status');
    await call(h, 'POST', '/__sim/faults', { body: { kind: 'status', path: 'status', times: 5 } });
    const listed = await call(h, 'GET', '/__sim/faults');
    const cleared = await call(h, 'DELETE', '/__sim/faults');
    const ok = await call(h, 'GET', '/clusters/hpc/status');
    const bad = await call(h, 'POST', '/__sim/faults', { body: { kind: 'explode' } });
    expect(added.status).toBe(201);
    expect([throttled.status, throttled.headers.get('retry-after')]).toEqual([429, '3']);
    expect((listed.json as { faults: unknown[] }).faults).toEqual([expect.objectContaining({ kind: 'status', path: 'status', remaining: 5 })]);
    expect(cleared.status).toBe(204);
    expect(ok.status).toBe(200);
    expect(bad.status).toBe(400);
    expect(CycleCloudErrorBody.parse(bad.json).Message).toContain('kind:');
  });

  it('nodes: fail, hold, release', async () => {
    await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('hooks-1') });
    const fail = await call(h, 'POST', '/__sim/nodes/hpc/ondemand-1/fail', { body: { message: 'disk full' } });
    const hold = await call(h, 'POST', '/__sim/nodes/hpc/ondemand-2/hold');
    nowMs += 3000;
    const held = h.nodes('hpc').map((n) => [n.Status, n.StatusMessage]);
    await call(h, 'POST', '/__sim/nodes/hpc/ondemand-2/release');
    nowMs += 2000;
    const unknown = await call(h, 'POST', '/__sim/nodes/hpc/ondemand-9/fail');
    expect([fail.status, hold.status, unknown.status]).toEqual([204, 204, 404]);
    expect(held).toEqual([
      ['Failed', 'disk full'],
      ['Acquiring', undefined],
    ]);
    expect(h.nodes('hpc')[1]?.Status).toBe('Ready');
  });

  it('limits: the cluster and a nodearray can be given room for a bench of 1,000 nodes', async () => {
    const mpiOf = (s: ReturnType<typeof ClusterStatus.parse>) => s.nodearrays.find((n) => n.name === 'mpi')!;
    await call(h, 'POST', '/__sim/limits', { body: { cluster: 'hpc', maxCount: 1_200, maxCoreCount: 1_200 * 120 } });
    await call(h, 'POST', '/__sim/limits', { body: { cluster: 'hpc', nodearray: 'mpi', maxCount: 1_000, maxCoreCount: 1_000 * 120 } });
    await call(h, 'POST', '/__sim/buckets', { body: { cluster: 'hpc', nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', patch: { quotaCoreCount: 1_000 * 120 } } });
    const s = ClusterStatus.parse((await call(h, 'GET', '/clusters/hpc/status')).json);
    expect(mpiOf(s).buckets[0]).toMatchObject({ availableCount: 1_000 });
    expect((await call(h, 'POST', '/__sim/limits', { body: { cluster: 'hpc', maxCount: -1 } })).status).toBe(400);
    expect([400, 404]).toContain((await call(h, 'POST', '/__sim/limits', { body: { cluster: 'hpc', nodearray: 'nope', maxCount: 1 } })).status);
  });

  it('fail-next-nodes, capacity-failure, limit-next-create and buckets', async () => {
    // Act
    await call(h, 'POST', '/__sim/fail-next-nodes', { body: { cluster: 'hpc', count: 1, message: 'OverconstrainedAllocationRequest' } });
    await call(h, 'POST', '/__sim/capacity-failure', { body: { cluster: 'hpc', nodearray: 'ondemand', machineType: 'standard_f32s_v2', throttleSec: 30 } });
    await call(h, 'POST', '/__sim/limit-next-create', { body: { cluster: 'hpc', nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', added: 1 } });
    await call(h, 'POST', '/__sim/buckets', { body: { cluster: 'hpc', nodearray: 'ondemand', machineType: 'Standard_HC44rs', patch: { quotaCoreCount: 132 } } });
    const s = ClusterStatus.parse((await call(h, 'GET', '/clusters/hpc/status')).json);
    const mpi = NodeCreationResult.parse((await call(h, 'POST', '/clusters/hpc/nodes/create', { body: { sets: [{ nodearray: 'mpi', count: 3 }] } })).json);
    nowMs += 1000;
    const badPatch = await call(h, 'POST', '/__sim/buckets', { body: { cluster: 'hpc', nodearray: 'ondemand', machineType: 'Standard_HC44rs', patch: { vcpuCount: 1 } } });
    // Assess
    const [f, hc] = s.nodearrays[0]!.buckets;
    expect(f).toMatchObject({ availableCount: 0, lastCapacityFailure: 0 });
    expect(hc).toMatchObject({ quotaCount: 3, availableCount: 2 }); // floor((132 - 44) / 44)
    expect(mpi.sets[0]?.added).toBe(1);
    expect(h.nodes('hpc')[0]).toMatchObject({ Status: 'Failed', StatusMessage: 'OverconstrainedAllocationRequest' });
    expect(badPatch.status).toBe(400);
  });

  it('calls and state', async () => {
    await call(h, 'POST', '/clusters/hpc/nodes/create', { body: createBody('st-1') });
    const calls = (await call(h, 'GET', '/__sim/calls')).json as { calls: CallRecord[] };
    const state = (await call(h, 'GET', '/__sim/state')).json as { clusters: Record<string, { nodes: unknown[]; status: unknown }>; operations: Array<{ requestId?: string }> };
    await call(h, 'DELETE', '/__sim/calls');
    expect(calls.calls.map((c) => c.path)).toEqual(['/clusters/hpc/nodes/create']);
    expect(state.clusters.hpc?.nodes).toHaveLength(2);
    expect(ClusterStatus.safeParse(state.clusters.hpc?.status).success).toBe(true);
    expect(state.operations.map((o) => o.requestId)).toEqual(['st-1']);
    expect(h.calls).toHaveLength(0);
  });
});
