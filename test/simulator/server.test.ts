/**
 * The simulator's CycleCloud semantics over real HTTP: capacity accounting with the seed's numbers,
 * placement groups, request ids, node lists, lifecycle, management, scale and auth. Every response
 * body is parsed with the same zod schemas the client uses.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterStatus, CycleCloudErrorBody, NodeCreationResult, NodeList, NodeManagementResult, OperationList, type NodearrayBucketStatus } from '../../src/cyclecloud/schemas.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { basic, call } from './http.ts';

const STEP_MS = 1000;
let nowMs = Date.UTC(2026, 0, 1, 12, 0, 0);
let h: SimulatorHandle;

beforeEach(async () => {
  nowMs = Date.UTC(2026, 0, 1, 12, 0, 0);
  h = await startSimulator({ port: 0, stepMs: STEP_MS, now: () => nowMs, password: 's3cret-pw' });
});

afterEach(async () => {
  await h.close();
});

async function status(nodes = false): Promise<ClusterStatus> {
  const res = await call(h, 'GET', `/clusters/hpc/status${nodes ? '?nodes=true' : ''}`);
  expect(res.status).toBe(200);
  return ClusterStatus.parse(res.json);
}

function bucket(s: ClusterStatus, nodearray: string, machineType: string): NodearrayBucketStatus {
  const b = s.nodearrays.find((n) => n.name === nodearray)?.buckets.find((x) => x.definition?.machineType.toLowerCase() === machineType.toLowerCase());
  if (!b) throw new Error(`no bucket ${nodearray}/${machineType}`);
  return b;
}

async function create(body: unknown): Promise<NodeCreationResult> {
  const res = await call(h, 'POST', '/clusters/hpc/nodes/create', { body });
  expect(res.status).toBe(202);
  const result = NodeCreationResult.parse(res.json);
  expect(res.headers.get('location')).toBe(`/operations/${result.operationId}`);
  return result;
}

describe('status', () => {
  it('reproduces the seed numbers for ondemand', async () => {
    // Act
    const s = await status();
    // Assess
    expect(s).toMatchObject({ state: 'Started', maxCount: 100, maxCoreCount: 10_000 });
    const f = bucket(s, 'ondemand', 'Standard_F32s_v2');
    const hc = bucket(s, 'ondemand', 'Standard_HC44rs');
    expect(f).toMatchObject({
      maxCount: 3,
      maxCoreCount: 96,
      availableCount: 3,
      availableCoreCount: 96,
      quotaCount: 3,
      quotaCoreCount: 100,
      consumedCoreCount: 0,
      maxPlacementGroupCoreSize: 1280,
      lastCapacityFailure: -1,
      valid: true,
      placementGroups: [],
    });
    expect(hc).toMatchObject({
      maxCount: 11,
      maxCoreCount: 484,
      availableCount: 11,
      availableCoreCount: 484,
      quotaCount: 200,
      quotaCoreCount: 8800,
      consumedCoreCount: 44,
      maxPlacementGroupCoreSize: 1760,
    });
    expect(hc.virtualMachine).toMatchObject({ vcpuCount: 44, memory: 327.83, infiniband: true });
    expect(bucket(s, 'mpi', 'Standard_HB120rs_v3')).toMatchObject({ maxPlacementGroupSize: 4, maxPlacementGroupCoreSize: 480 });
    expect(bucket(s, 'mpi', 'Standard_HB120rs_v3').maxCount).toBeGreaterThanOrEqual(16);
  });

  it('unknown cluster is 404 with a CycleCloud error body', async () => {
    const res = await call(h, 'GET', '/clusters/nope/status');
    expect(res.status).toBe(404);
    expect(CycleCloudErrorBody.parse(res.json).Message).toContain('nope');
  });
});

describe('create', () => {
  it('capacity decreases after a create, shared across the buckets of a nodearray', async () => {
    // Act: two HC44rs nodes (case as the seed writes it)
    const result = await create({ requestId: 'r-1', sets: [{ nodearray: 'ondemand', count: 2, definition: { machineType: 'Standard_Hc44rs' } }] });
    const s = await status(true);
    // Assess
    expect(result.sets).toEqual([{ added: 2 }]);
    const hc = bucket(s, 'ondemand', 'Standard_HC44rs');
    expect(hc).toMatchObject({ activeCount: 2, activeCoreCount: 88, availableCount: 9, consumedCoreCount: 44 + 88 });
    expect(hc.activeNodes).toEqual(['ondemand-1', 'ondemand-2']);
    // The nodearray's 500 cores are shared: 412 left → floor(412/32) = 12, but F32's own quota (3) binds.
    expect(bucket(s, 'ondemand', 'Standard_F32s_v2').availableCount).toBe(3);
    expect(s.nodes?.map((n) => [n.Name, n.Status, n.TargetState, n.MachineType, n.Template])).toEqual([
      ['ondemand-1', 'Acquiring', 'Started', 'Standard_HC44rs', 'ondemand'],
      ['ondemand-2', 'Acquiring', 'Started', 'Standard_HC44rs', 'ondemand'],
    ]);
    expect(s.nodes?.[0]?.PrivateIp).toBeUndefined();
  });

  it('nodearray limit is shared: 10 HC44rs leave 60 cores, so F32 can add 1', async () => {
    await create({ sets: [{ nodearray: 'ondemand', count: 10, definition: { machineType: 'Standard_HC44rs' } }] });
    const s = await status();
    expect(bucket(s, 'ondemand', 'Standard_F32s_v2').availableCount).toBe(1);
    expect(bucket(s, 'ondemand', 'Standard_HC44rs').availableCount).toBe(1);
  });

  it('count beyond capacity adds what fits, with a message', async () => {
    const result = await create({ sets: [{ nodearray: 'ondemand', count: 5, definition: { machineType: 'Standard_F32s_v2' } }] });
    expect(result.sets[0]?.added).toBe(3);
    expect(result.sets[0]?.message).toMatch(/Only 3 of 5/);
  });

  it('without a definition picks the first bucket that can take the whole set', async () => {
    const result = await create({ sets: [{ nodearray: 'ondemand', count: 4 }] });
    expect(result.sets).toEqual([{ added: 4 }]);
    expect(h.nodes('hpc').map((n) => n.MachineType)).toEqual(Array(4).fill('Standard_HC44rs'));
  });

  it('placement group cap: a colocated create of 6 into groups of 4 adds 4 with a message; the group is listed', async () => {
    // Act
    const result = await create({ sets: [{ nodearray: 'mpi', count: 6, placementGroupId: 'pg0' }] });
    const again = await create({ sets: [{ nodearray: 'mpi', count: 1, placementGroupId: 'pg0' }] });
    const s = await status();
    // Assess
    expect(result.sets[0]?.added).toBe(4);
    expect(result.sets[0]?.message).toMatch(/placement group pg0 holds at most 4/);
    expect(again.sets[0]?.added).toBe(0);
    expect(bucket(s, 'mpi', 'Standard_HB120rs_v3').placementGroups).toEqual([{ name: 'pg0', activeCount: 4, activeCoreCount: 480 }]);
    expect(h.nodes('hpc').every((n) => n.PlacementGroupId === 'pg0')).toBe(true);
  });

  it('a repeated requestId is 409 with an empty body, even when the first create added nothing', async () => {
    // Prepare: nothing fits
    h.setBucket('hpc', 'ondemand', 'Standard_F32s_v2', { quotaCoreCount: 0 });
    const first = await create({ requestId: 'dup', sets: [{ nodearray: 'ondemand', count: 1, definition: { machineType: 'Standard_F32s_v2' } }] });
    // Act
    const second = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: { requestId: 'dup', sets: [{ nodearray: 'ondemand', count: 1 }] } });
    // Assess
    expect(first.sets[0]?.added).toBe(0);
    expect(second.status).toBe(409);
    expect(second.text).toBe('');
    expect(h.nodes('hpc')).toHaveLength(0);
  });

  it('names take the lowest unused index; nameFormat/nameOffset are honoured and collisions skipped', async () => {
    await create({ sets: [{ nodearray: 'ondemand', count: 3 }] });
    await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: { names: ['ondemand-2'] } });
    nowMs += STEP_MS;
    await create({ sets: [{ nodearray: 'ondemand', count: 2 }] });
    const custom = await create({ sets: [{ nodearray: 'ondemand', count: 2, nameFormat: 'ondemand-%d', nameOffset: 4 }] });
    expect(
      h
        .nodes('hpc')
        .map((n) => n.Name)
        .sort(),
    ).toEqual(['ondemand-1', 'ondemand-2', 'ondemand-3', 'ondemand-4', 'ondemand-5', 'ondemand-6']);
    expect(custom.sets[0]?.message).toContain('ondemand-4');
  });

  it('node records carry nodeAttributes and Configuration', async () => {
    await create({ sets: [{ nodearray: 'ondemand', count: 1, nodeAttributes: { KeepAlive: true, Tags: { job: '7' }, Configuration: { slurm: { partition: 'hpc' } } } }] });
    const [node] = h.nodes('hpc');
    expect(node).toMatchObject({ KeepAlive: true, Tags: { job: '7' }, Configuration: { slurm: { partition: 'hpc' } }, Region: 'westeurope' });
    expect(node?.NodeId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    [{ sets: [] }, 'sets'],
    [{ sets: [{ nodearray: 'ondemand', count: 0 }] }, 'sets.0.count'],
    [{ sets: [{ count: 1 }] }, 'sets.0.nodearray'],
    ['{not json', 'body'],
  ])('an invalid body is 400 naming the field (%#)', async (body, field) => {
    const res = await call(h, 'POST', '/clusters/hpc/nodes/create', { body });
    expect(res.status).toBe(400);
    expect(CycleCloudErrorBody.parse(res.json).Message).toContain(`${field}:`);
  });

  it('an unknown machine type or nodearray is 400 InvalidAttributeException and creates nothing', async () => {
    const mt = await call(h, 'POST', '/clusters/hpc/nodes/create', {
      body: {
        sets: [
          { nodearray: 'ondemand', count: 1 },
          { nodearray: 'ondemand', count: 1, definition: { machineType: 'Standard_X1' } },
        ],
      },
    });
    const na = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: { sets: [{ nodearray: 'nosuch', count: 1 }] } });
    expect(mt.status).toBe(400);
    expect(CycleCloudErrorBody.parse(mt.json)).toMatchObject({
      Exception: expect.stringContaining('InvalidAttributeException'),
      Message: 'MachineType Standard_X1 is not recognized',
    });
    expect(na.status).toBe(400);
    expect(h.nodes('hpc')).toHaveLength(0);
  });

  it('a capacity failure reports 0 available for the throttle time and a create adds 0 with a message', async () => {
    h.capacityFailure('hpc', 'ondemand', 'Standard_HC44rs', 60);
    nowMs += 10_000;
    const during = bucket(await status(), 'ondemand', 'Standard_HC44rs');
    const result = await create({ sets: [{ nodearray: 'ondemand', count: 1, definition: { machineType: 'Standard_HC44rs' } }] });
    nowMs += 51_000;
    const after = bucket(await status(), 'ondemand', 'Standard_HC44rs');
    expect(during).toMatchObject({ availableCount: 0, lastCapacityFailure: 10 });
    expect(result.sets[0]).toMatchObject({ added: 0, message: expect.stringContaining('capacity failure') });
    expect(after.availableCount).toBe(11);
    expect(after.lastCapacityFailure).toBe(61);
  });

  it('limitNextCreate makes the next create into that bucket partial, once', async () => {
    h.limitNextCreate('hpc', 'mpi', 'Standard_HB120rs_v3', 2);
    const first = await create({ sets: [{ nodearray: 'mpi', count: 4, placementGroupId: 'g1' }] });
    const second = await create({ sets: [{ nodearray: 'mpi', count: 4, placementGroupId: 'g2' }] });
    expect(first.sets[0]).toMatchObject({ added: 2, message: expect.any(String) });
    expect(second.sets).toEqual([{ added: 4 }]);
  });
});

describe('nodes and operations', () => {
  it('lists nodes by operation and by request id, with the operation', async () => {
    // Prepare
    const a = await create({ requestId: 'req-a', sets: [{ nodearray: 'ondemand', count: 2 }] });
    await create({ requestId: 'req-b', sets: [{ nodearray: 'mpi', count: 1 }] });
    // Act
    const byOp = NodeList.parse((await call(h, 'GET', `/clusters/hpc/nodes?operation=${a.operationId}`)).json);
    const byReq = NodeList.parse((await call(h, 'GET', '/clusters/hpc/nodes?request_id=req-a')).json);
    const all = NodeList.parse((await call(h, 'GET', '/clusters/hpc/nodes')).json);
    const unknown = await call(h, 'GET', '/clusters/hpc/nodes?request_id=never');
    // Assess
    expect(byOp.nodes.map((n) => n.Name)).toEqual(['ondemand-1', 'ondemand-2']);
    expect(byOp.operation).toEqual({ action: 'create', startTime: new Date(nowMs).toISOString() });
    expect(byReq).toEqual(byOp);
    expect(all.nodes).toHaveLength(3);
    expect(all.operation).toBeUndefined();
    expect(unknown.status).toBe(404);
    expect(unknown.text).toBe('No operation found for request id never');
  });

  it('operations by request id (0 or 1) and by id, as documented: {action, startTime} only', async () => {
    const a = await create({ requestId: 'req-op', sets: [{ nodearray: 'ondemand', count: 1 }] });
    const found = (await call(h, 'GET', '/operations/?request_id=req-op')).json;
    const none = OperationList.parse((await call(h, 'GET', '/operations/?request_id=nope')).json);
    const byId = (await call(h, 'GET', `/operations/${a.operationId}`)).json;
    const missing = await call(h, 'GET', '/operations/00000000-0000-0000-0000-000000000000');
    expect(found).toEqual([{ action: 'create', startTime: expect.any(String) }]);
    expect(none).toEqual([]);
    expect(byId).toEqual({ action: 'create', startTime: expect.any(String) });
    expect(missing.status).toBe(404);
  });

  it('an undocumented operationId only behind its explicit option', async () => {
    const other = await startSimulator({ port: 0, stepMs: STEP_MS, undocumentedOperationIds: true });
    try {
      const res = await other.sim.createNodes('hpc', { requestId: 'x-1', sets: [{ nodearray: 'ondemand', count: 1 }] });
      expect(other.sim.findOperations('x-1')).toEqual([{ action: 'create', startTime: expect.any(String), operationId: res.operationId }]);
    } finally {
      await other.close();
    }
  });

  it('forgets request ids (lookups 404, the id may be used again) and lags node lists, as the docs leave open', async () => {
    await create({ requestId: 'gap-1', sets: [{ nodearray: 'ondemand', count: 1 }] });
    const hook = await call(h, 'POST', '/__sim/forget-request-ids');
    const lookup = await call(h, 'GET', '/clusters/hpc/nodes?request_id=gap-1');
    const again = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: { requestId: 'gap-1', sets: [{ nodearray: 'ondemand', count: 1 }] } });
    expect(hook.status).toBe(204);
    expect(lookup.status).toBe(404);
    expect(lookup.text).toBe('No operation found for request id gap-1');
    expect(again.status).toBe(202);

    const gaps = await call(h, 'POST', '/__sim/documentation-gaps', { body: { listLagMs: 3_000 } });
    const before = (await call(h, 'GET', '/clusters/hpc/nodes')).json as { nodes: unknown[] };
    await create({ requestId: 'gap-2', sets: [{ nodearray: 'ondemand', count: 1 }] });
    const young = await call(h, 'GET', '/clusters/hpc/nodes?request_id=gap-2');
    const list = (await call(h, 'GET', '/clusters/hpc/nodes')).json as { nodes: unknown[] };
    nowMs += 3_000;
    const later = (await call(h, 'GET', '/clusters/hpc/nodes?request_id=gap-2')).json as { nodes: unknown[] };
    await call(h, 'POST', '/__sim/documentation-gaps', { body: { listLagMs: 0 } });
    expect(gaps.status).toBe(204);
    expect(young.status).toBe(404);
    expect(list.nodes).toHaveLength(before.nodes.length);
    expect(later.nodes).toHaveLength(1);
  });

  it('a request id is remembered only as long as requestIdRetentionMs', async () => {
    const other = await startSimulator({ port: 0, stepMs: STEP_MS, now: () => nowMs, requestIdRetentionMs: 60_000 });
    try {
      await other.sim.createNodes('hpc', { requestId: 'ret-1', sets: [{ nodearray: 'ondemand', count: 1 }] });
      expect(other.sim.listNodes('hpc', { requestId: 'ret-1' }).nodes).toHaveLength(1);
      nowMs += 60_000;
      expect(() => other.sim.listNodes('hpc', { requestId: 'ret-1' })).toThrow('No operation found for request id ret-1');
    } finally {
      await other.close();
    }
  });

  it('lifecycle: Acquiring → Preparing (IP, hostname, instance) → Ready, one step each', async () => {
    await create({ sets: [{ nodearray: 'ondemand', count: 1 }] });
    const seen: Array<[unknown, boolean]> = [];
    for (let i = 0; i < 3; i++) {
      const [n] = NodeList.parse((await call(h, 'GET', '/clusters/hpc/nodes')).json).nodes;
      seen.push([n?.Status, n?.PrivateIp !== undefined && n.Hostname !== undefined && n.InstanceId !== undefined]);
      nowMs += STEP_MS;
    }
    expect(seen).toEqual([
      ['Acquiring', false],
      ['Preparing', true],
      ['Ready', true],
    ]);
  });

  it('failNextNodes, failNode and holdNode', async () => {
    h.failNextNodes('hpc', 1, 'Allocation failed: SkuNotAvailable');
    await create({ sets: [{ nodearray: 'ondemand', count: 3 }] });
    h.holdNode('hpc', 'ondemand-3');
    nowMs += 5 * STEP_MS;
    h.failNode('hpc', 'ondemand-2', 'boom');
    const byName = Object.fromEntries(h.nodes('hpc').map((n) => [n.Name, [n.Status, n.StatusMessage]]));
    expect(byName).toEqual({ 'ondemand-1': ['Failed', 'Allocation failed: SkuNotAvailable'], 'ondemand-2': ['Failed', 'boom'], 'ondemand-3': ['Acquiring', undefined] });
  });
});

describe('management', () => {
  it('terminate: Terminating, then removed after a step, freeing capacity', async () => {
    // Prepare
    await create({ sets: [{ nodearray: 'ondemand', count: 3, definition: { machineType: 'Standard_F32s_v2' } }] });
    const [first] = h.nodes('hpc');
    // Act
    const res = await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: { ids: [first!.NodeId], names: ['ondemand-2'] } });
    const during = bucket(await status(), 'ondemand', 'Standard_F32s_v2');
    const listed = h.nodes('hpc').map((n) => n.Status);
    nowMs += STEP_MS;
    const after = bucket(await status(), 'ondemand', 'Standard_F32s_v2');
    // Assess
    expect(res.status).toBe(202);
    const result = NodeManagementResult.parse(res.json);
    expect(result.nodes.map((n) => [n.name, n.status])).toEqual([
      ['ondemand-1', 'OK'],
      ['ondemand-2', 'OK'],
    ]);
    expect(listed).toEqual(['Terminating', 'Terminating', 'Acquiring']);
    expect(during).toMatchObject({ activeCount: 3, availableCount: 0 });
    expect(after).toMatchObject({ activeCount: 1, availableCount: 2 });
    expect(h.nodes('hpc').map((n) => n.Name)).toEqual(['ondemand-3']);
    // The operation lists its nodes while they exist.
    const byOp = NodeList.parse((await call(h, 'GET', `/clusters/hpc/nodes?operation=${result.operationId}`)).json);
    expect(byOp.operation?.action).toBe('terminate');
  });

  it('placement group disappears when empty', async () => {
    await create({ sets: [{ nodearray: 'mpi', count: 2, placementGroupId: 'pgx' }] });
    await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: { filter: 'PlacementGroupId == "pgx"' } });
    nowMs += STEP_MS;
    expect(bucket(await status(), 'mpi', 'Standard_HB120rs_v3').placementGroups).toEqual([]);
  });

  it('KeepAlive blocks terminate; remove needs a terminated node; hostnames and ip_addresses select', async () => {
    await create({ sets: [{ nodearray: 'ondemand', count: 1, nodeAttributes: { KeepAlive: true } }] });
    await create({ sets: [{ nodearray: 'ondemand', count: 1 }] });
    nowMs += STEP_MS;
    const [, second] = h.nodes('hpc');
    const term = NodeManagementResult.parse((await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: { names: ['ondemand-1'] } })).json);
    const remove = NodeManagementResult.parse((await call(h, 'POST', '/clusters/hpc/nodes/remove', { body: { hostnames: [second!.Hostname] } })).json);
    const dealloc = NodeManagementResult.parse((await call(h, 'POST', '/clusters/hpc/nodes/deallocate', { body: { ip_addresses: [second!.PrivateIp] } })).json);
    expect(term.nodes[0]).toMatchObject({ name: 'ondemand-1', status: 'Error', error: expect.stringContaining('KeepAlive') });
    expect(remove.nodes[0]).toMatchObject({ name: 'ondemand-2', status: 'Error', error: 'This node must be terminated before it can be removed' });
    expect(dealloc.nodes[0]).toMatchObject({ name: 'ondemand-2', status: 'OK' });
    nowMs += STEP_MS;
    expect(h.nodes('hpc').map((n) => [n.Name, n.Status])).toEqual([
      ['ondemand-1', 'Ready'],
      ['ondemand-2', 'Deallocated'],
    ]);
  });

  it('start boots a deallocated node; a Fixed node terminates to Off and can then be removed', async () => {
    await create({
      sets: [
        { nodearray: 'ondemand', count: 1 },
        { nodearray: 'ondemand', count: 1, nodeAttributes: { Fixed: true } },
      ],
    });
    await call(h, 'POST', '/clusters/hpc/nodes/deallocate', { body: { names: ['ondemand-1'] } });
    await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: { names: ['ondemand-2'] } });
    nowMs += STEP_MS;
    const start = NodeManagementResult.parse((await call(h, 'POST', '/clusters/hpc/nodes/start', { body: { filter: 'Status == "Deallocated"' } })).json);
    const states = h.nodes('hpc').map((n) => [n.Name, n.Status, n.TargetState]);
    const remove = NodeManagementResult.parse((await call(h, 'POST', '/clusters/hpc/nodes/remove', { body: { names: ['ondemand-2'] } })).json);
    expect(start.nodes.map((n) => n.name)).toEqual(['ondemand-1']);
    expect(states).toEqual([
      ['ondemand-1', 'Acquiring', 'Started'],
      ['ondemand-2', 'Off', 'Terminated'],
    ]);
    expect(remove.nodes[0]?.status).toBe('OK');
    expect(h.nodes('hpc').map((n) => n.Name)).toEqual(['ondemand-1']);
  });

  it('no selector is 400; a bad filter is 400 naming filter; no match is 202 with no nodes', async () => {
    const none = await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: {} });
    const bad = await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: { filter: 'Name == ' } });
    const empty = await call(h, 'POST', '/clusters/hpc/nodes/terminate', { body: { names: ['ghost'] } });
    expect(none.status).toBe(400);
    expect(bad.status).toBe(400);
    expect(CycleCloudErrorBody.parse(bad.json).Message).toMatch(/^filter:/);
    expect(empty.status).toBe(202);
    expect(NodeManagementResult.parse(empty.json).nodes).toEqual([]);
  });
});

describe('scale', () => {
  it('adds nodes up to a total node count and never removes', async () => {
    const first = NodeCreationResult.parse((await call(h, 'POST', '/clusters/hpc/scale/mpi?totalNodeCount=3')).json);
    const again = NodeCreationResult.parse((await call(h, 'POST', '/clusters/hpc/scale/mpi?totalNodeCount=2')).json);
    const cores = await call(h, 'POST', '/clusters/hpc/scale/mpi?totalCoreCount=500');
    expect(first.sets[0]?.added).toBe(3);
    expect(again.sets[0]?.added).toBe(0);
    expect(NodeCreationResult.parse(cores.json).sets[0]?.added).toBe(2); // ceil((500 - 360) / 120)
  });

  it('needs exactly one of totalNodeCount and totalCoreCount', async () => {
    const both = await call(h, 'POST', '/clusters/hpc/scale/mpi?totalNodeCount=1&totalCoreCount=120');
    const neither = await call(h, 'POST', '/clusters/hpc/scale/mpi');
    expect([both.status, neither.status]).toEqual([400, 400]);
  });
});

describe('auth', () => {
  it.each([
    ['missing', null],
    ['wrong password', basic('cycleadmin', 'wrong')],
    ['not basic', 'Bearer x'],
  ])('%s credentials → 401 with a JSON body that echoes nothing', async (_label, authorization) => {
    const res = await call(h, 'GET', '/clusters/hpc/status', { authorization });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect(CycleCloudErrorBody.parse(res.json).Exception).toContain('Authentication');
    expect(res.text).not.toContain('s3cret-pw');
    expect(h.calls.at(-1)?.status).toBe(401);
  });

  it('the __sim hooks need auth too', async () => {
    const res = await call(h, 'GET', '/__sim/state', { authorization: null });
    expect(res.status).toBe(401);
  });
});
