/**
 * The project's own CycleCloud client against the simulator: every method parses the simulator's
 * answers, and the error mapping (409, 404 "No operation found", 429, 401) comes out as the client
 * expects it from a real server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCycleCloudClient, type CycleCloudClient } from '../../src/cyclecloud/client.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';

let h: SimulatorHandle;
let client: CycleCloudClient;

beforeAll(async () => {
  h = await startSimulator({ port: 0, stepMs: 10 });
  client = createCycleCloudClient({
    baseUrl: h.url,
    credentials: staticCredentialProvider({ username: h.username, password: h.password }),
    retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 5 },
  });
});

afterAll(async () => {
  await client?.close();
  await h?.close();
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return error instanceof CycleCloudError ? error.code : String(error);
  }
}

describe('client × simulator', () => {
  it('create, reconcile by request id, manage, scale and operations', async () => {
    // Act
    const created = await client.createNodes('hpc', { requestId: 'cli-1', sets: [{ nodearray: 'mpi', count: 2, placementGroupId: 'g' }] });
    const duplicate = await codeOf(client.createNodes('hpc', { requestId: 'cli-1', sets: [{ nodearray: 'mpi', count: 2 }] }));
    const byRequest = await client.listNodes('hpc', { requestId: 'cli-1' });
    const byOperation = await client.listNodes('hpc', { operationId: created.operationId });
    const operation = await client.findOperationByRequestId('cli-1');
    const noOperation = await client.findOperationByRequestId('cli-none');
    const unknownRequest = await codeOf(client.listNodes('hpc', { requestId: 'cli-none' }));
    const status = await client.getClusterStatus('hpc', { nodes: true });
    const scaled = await client.scaleNodearray('hpc', 'ondemand', { totalNodeCount: 1 });
    const op = await client.getOperation(scaled.operationId);
    const terminated = await client.terminateNodes('hpc', { names: byRequest.nodes.map((n) => n.Name) });
    // Assess
    expect(created.sets).toEqual([{ added: 2 }]);
    expect(duplicate).toBe('CC_CONFLICT');
    expect(byRequest.nodes.map((n) => n.Name)).toEqual(['mpi-1', 'mpi-2']);
    expect(byOperation.operation?.action).toBe('create');
    // Documented OperationStatus: {action, startTime}; nothing names the operation id.
    expect(operation).toEqual({ action: 'create', startTime: expect.any(String) });
    expect(noOperation).toBeNull();
    expect(unknownRequest).toBe('CC_NOT_FOUND');
    expect(status.nodes).toHaveLength(2);
    expect(scaled.sets[0]?.added).toBe(1);
    expect(op.action).toBe('create');
    expect(terminated.nodes.map((n) => n.status)).toEqual(['OK', 'OK']);
  });

  it('with the real clock and a small stepMs, created nodes reach Ready with an IP', async () => {
    const created = await client.createNodes('hpc', { requestId: 'cli-ready', sets: [{ nodearray: 'ondemand', count: 2 }] });
    let nodes = (await client.listNodes('hpc', { operationId: created.operationId })).nodes;
    for (let i = 0; i < 200 && !nodes.every((n) => n.Status === 'Ready'); i++) {
      await new Promise((r) => setTimeout(r, 10));
      nodes = (await client.listNodes('hpc', { operationId: created.operationId })).nodes;
    }
    expect(nodes.map((n) => [n.Status, typeof n.PrivateIp])).toEqual([
      ['Ready', 'string'],
      ['Ready', 'string'],
    ]);
  });

  it('faults and auth map to the client error codes', async () => {
    h.faults.add({ method: 'POST', path: 'nodes/create', kind: 'throttle', retryAfterSec: 0 });
    const throttled = await codeOf(client.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1 }] }));
    h.faults.add({ path: '/status', kind: 'status', status: 503, times: 5 });
    const unavailable = await codeOf(client.getClusterStatus('hpc'));
    h.faults.clear();
    const badCredentials = createCycleCloudClient({ baseUrl: h.url, credentials: staticCredentialProvider({ username: h.username, password: 'nope' }) });
    const auth = await codeOf(badCredentials.getClusterStatus('hpc'));
    await badCredentials.close();
    const badType = await codeOf(client.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1, definition: { machineType: 'Standard_Nope' } }] }));
    expect([throttled, unavailable, auth, badType]).toEqual(['CC_THROTTLED', 'CC_UNAVAILABLE', 'CC_AUTH', 'CC_BAD_REQUEST']);
  });
});
