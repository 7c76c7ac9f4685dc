import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createCycleCloudClient, type CycleCloudClient } from '../../src/cyclecloud/client.ts';
import { isCycleCloudError, type CycleCloudError } from '../../src/cyclecloud/errors.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { captureLogs } from '../helpers/log-capture.ts';

// The client against the real simulator over HTTP: every endpoint, and the retry rules.
describe('CycleCloud client ↔ simulator', () => {
  let sim: SimulatorHandle;
  let cc: CycleCloudClient;
  const sleeps: number[] = [];
  const logs = captureLogs();

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, stepMs: 20 });
    cc = createCycleCloudClient({
      baseUrl: sim.url,
      credentials: staticCredentialProvider({ username: sim.username, password: sim.password }),
      logger: logs.logger,
      // Waits are recorded, not slept: the test checks what the client would wait.
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
  });
  afterAll(async () => {
    await cc?.close();
    await sim?.close();
  });
  beforeEach(() => {
    sim.faults.clear();
    sim.calls.length = 0;
    sleeps.length = 0;
  });

  async function failure(p: Promise<unknown>): Promise<CycleCloudError> {
    const error = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!isCycleCloudError(error)) throw new Error(`expected a CycleCloudError, got ${String(error)}`);
    return error;
  }

  const callsTo = (method: string, fragment: string) => sim.calls.filter((c) => c.method === method && c.path.includes(fragment));

  it('reads the cluster status with its nodearrays, buckets and limits', async () => {
    // Act
    const status = await cc.getClusterStatus('hpc', { nodes: true });
    // Assess
    expect(status.nodearrays.map((n) => n.name)).toEqual(['ondemand', 'mpi', 'spot', 'gpu']);
    const mpi = status.nodearrays.find((n) => n.name === 'mpi');
    expect(mpi?.buckets[0]?.maxPlacementGroupSize).toBe(4);
    expect(mpi?.nodearray.Interruptible).toBeUndefined();
    expect(status.nodearrays.find((n) => n.name === 'spot')?.nodearray.Interruptible).toBe(true);
    expect(Array.isArray(status.nodes)).toBe(true);
    expect(callsTo('GET', '/clusters/hpc/status')[0]?.query).toEqual({ nodes: 'true' });
  });

  it('creates nodes, then finds them by operation id and by request id, and the operation both ways', async () => {
    // Act
    const created = await cc.createNodes('hpc', { requestId: 'sim-create-1', sets: [{ nodearray: 'ondemand', count: 2, definition: { machineType: 'Standard_HC44rs' } }] });
    const byOperation = await cc.listNodes('hpc', { operationId: created.operationId });
    const byRequest = await cc.listNodes('hpc', { requestId: 'sim-create-1' });
    const operation = await cc.getOperation(created.operationId);
    const found = await cc.findOperationByRequestId('sim-create-1');
    // Assess
    expect(created.sets[0]?.added).toBe(2);
    expect(byOperation.nodes).toHaveLength(2);
    expect(byRequest.nodes.map((n) => n.Name).sort()).toEqual(byOperation.nodes.map((n) => n.Name).sort());
    expect(byRequest.operation?.action).toBe('create');
    expect(operation.action).toBe('create');
    // As documented (§3.10): {action, startTime}; the operation id is not said.
    expect(found).toEqual({ action: 'create', startTime: expect.any(String) });
  });

  it('nodes reach Ready through the lifecycle', async () => {
    // Prepare
    const created = await cc.createNodes('hpc', { requestId: 'sim-ready-1', sets: [{ nodearray: 'ondemand', count: 1 }] });
    // Act and Assess
    await vi.waitFor(
      async () => {
        const list = await cc.listNodes('hpc', { operationId: created.operationId });
        expect(list.nodes.map((n) => n.Status)).toEqual(['Ready']);
      },
      { timeout: 5000, interval: 25 },
    );
  });

  it('an unknown request id: listNodes is CC_NOT_FOUND, findOperationByRequestId is null', async () => {
    // Act
    const error = await failure(cc.listNodes('hpc', { requestId: 'never-sent' }));
    const found = await cc.findOperationByRequestId('never-sent');
    // Assess
    expect(error.code).toBe('CC_NOT_FOUND');
    expect(found).toBeNull();
  });

  it('a repeated create request id is CC_CONFLICT and not ambiguous', async () => {
    // Prepare
    const request = { requestId: 'sim-dup-1', sets: [{ nodearray: 'ondemand', count: 1 }] };
    await cc.createNodes('hpc', request);
    // Act
    const error = await failure(cc.createNodes('hpc', request));
    // Assess
    expect(error.code).toBe('CC_CONFLICT');
    expect(error.ambiguous).toBe(false);
  });

  it('an unknown machine type is CC_BAD_REQUEST with what CycleCloud said', async () => {
    // Act
    const error = await failure(cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1, definition: { machineType: 'Standard_Nope' } }] }));
    // Assess
    expect(error.code).toBe('CC_BAD_REQUEST');
    expect(error.status).toBe(400);
    expect(error.cycleCloud?.exception).toContain('InvalidAttributeException');
    expect(error.message).toContain('Standard_Nope');
  });

  it('every management endpoint reaches its route and parses the result', async () => {
    // Prepare
    const created = await cc.createNodes('hpc', { requestId: 'sim-manage-1', sets: [{ nodearray: 'ondemand', count: 3 }] });
    const names = (await cc.listNodes('hpc', { operationId: created.operationId })).nodes.map((n) => n.Name);
    const [a, b, c] = names as [string, string, string];
    // Act
    const deallocated = await cc.deallocateNodes('hpc', { names: [a] });
    const started = await cc.startNodes('hpc', { names: [a] });
    const shut = await cc.shutdownNodes('hpc', { names: [b] });
    const terminated = await cc.terminateNodes('hpc', { names: [c] });
    const removed = await cc.removeNodes('hpc', { names: [c] });
    // Assess
    for (const result of [deallocated, started, shut, terminated, removed]) expect(result.operationId).toEqual(expect.any(String));
    expect(deallocated.nodes.map((n) => n.name)).toEqual([a]);
    expect(terminated.nodes.map((n) => [n.name, n.status])).toEqual([[c, 'OK']]);
    for (const action of ['deallocate', 'start', 'shutdown', 'terminate', 'remove']) expect(callsTo('POST', `/nodes/${action}`)).toHaveLength(1);
  });

  it('scales a nodearray to a total node count', async () => {
    // Act
    const result = await cc.scaleNodearray('hpc', 'mpi', { totalNodeCount: 2 });
    // Assess
    expect(result.operationId).toEqual(expect.any(String));
    expect(callsTo('POST', '/clusters/hpc/scale/mpi')[0]?.query).toEqual({ totalNodeCount: '2' });
  });

  it('retries a GET after 429 with Retry-After, waiting what the server asked', async () => {
    // Prepare
    sim.faults.add({ method: 'GET', path: '/status', kind: 'throttle', retryAfterSec: 2 });
    // Act
    await cc.getClusterStatus('hpc');
    // Assess
    expect(callsTo('GET', '/status').map((c) => c.status)).toEqual([429, 200]);
    expect(sleeps).toEqual([2000]);
  });

  it('retries a GET after 503', async () => {
    // Prepare
    sim.faults.add({ method: 'GET', path: '/clusters/hpc/nodes', kind: 'status', status: 503, times: 2 });
    // Act
    const list = await cc.listNodes('hpc');
    // Assess
    expect(Array.isArray(list.nodes)).toBe(true);
    expect(callsTo('GET', '/clusters/hpc/nodes').map((c) => c.status)).toEqual([503, 503, 200]);
    expect(sleeps).toHaveLength(2);
  });

  it('does NOT retry a create hit by a 500: one create reaches the simulator, the error is ambiguous', async () => {
    // Prepare
    sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'status', status: 500 });
    // Act
    const error = await failure(cc.createNodes('hpc', { requestId: 'sim-500-1', sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(error.code).toBe('CC_UNAVAILABLE');
    expect(error.ambiguous).toBe(true);
    expect(callsTo('POST', 'nodes/create')).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('a create applied and then reset is ambiguous, and reconciles by request id', async () => {
    // Prepare
    sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'commit-then-fail' });
    // Act
    const error = await failure(cc.createNodes('hpc', { requestId: 'sim-commit-1', sets: [{ nodearray: 'ondemand', count: 1 }] }));
    const found = await cc.findOperationByRequestId('sim-commit-1');
    // Assess
    expect(error.ambiguous).toBe(true);
    expect(callsTo('POST', 'nodes/create')).toHaveLength(1);
    expect(found?.action).toBe('create');
  });

  it('wrong credentials are CC_AUTH and the password never reaches the logs', async () => {
    // Prepare
    const wrong = createCycleCloudClient({
      baseUrl: sim.url,
      credentials: staticCredentialProvider({ username: sim.username, password: 'not-the-password' }),
      logger: logs.logger,
    });
    // Act
    const error = await failure(wrong.getClusterStatus('hpc'));
    await wrong.close();
    // Assess
    expect(error.code).toBe('CC_AUTH');
    expect(logs.lines).toContainNoSecret([sim.password, 'not-the-password']);
    expect([error]).toContainNoSecret([sim.password, 'not-the-password']);
  });
});
