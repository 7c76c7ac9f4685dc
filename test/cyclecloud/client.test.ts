import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCycleCloudClient, backoffDelayMs, parseRetryAfterMs, type CycleCloudClientOptions } from '../../src/cyclecloud/client.ts';
import { CycleCloudError, isCycleCloudError } from '../../src/cyclecloud/errors.ts';
import { staticCredentialProvider, type CredentialProvider, type CycleCloudCredentials } from '../../src/platform/credentials.ts';
import { freePort } from '../helpers/net.ts';
import { startFakeServer, type FakeServer, type Reply } from './fake-server.ts';

const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));
const STATUS = fixture('seed-status.json');
const CREATE_RESULT = fixture('seed-create-result.json');
const TERMINATE_RESULT = fixture('seed-terminate-result.json');
const CREDS = { username: 'scaler', password: 'pa55-word-for-tests' };
const basic = (c: CycleCloudCredentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

let servers: FakeServer[] = [];
let clients: Array<{ close(): Promise<void> }> = [];

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  clients = [];
});

async function server(respond: FakeServer['respond']): Promise<FakeServer> {
  const s = await startFakeServer(respond);
  servers.push(s);
  return s;
}

function sequence(...replies: Reply[]): FakeServer['respond'] {
  return (_call, i) => replies[Math.min(i, replies.length - 1)]!;
}

function client(url: string, extra: Partial<CycleCloudClientOptions> = {}) {
  const sleeps: number[] = [];
  const c = createCycleCloudClient({
    baseUrl: url,
    credentials: staticCredentialProvider(CREDS),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...extra,
  });
  clients.push(c);
  return { cc: c, sleeps };
}

async function failure(p: Promise<unknown>): Promise<CycleCloudError> {
  try {
    await p;
  } catch (error) {
    if (isCycleCloudError(error)) return error;
    throw error;
  }
  throw new Error('expected a CycleCloudError');
}

describe('CycleCloud client: requests', () => {
  it('gets the cluster status with Basic auth, the client version header and a lowercase boolean query', async () => {
    // Prepare
    const s = await server(() => ({ status: 200, json: STATUS }));
    const { cc } = client(s.url);
    // Act
    const status = await cc.getClusterStatus('hpc', { nodes: true });
    // Assess
    expect(status.nodearrays[0]?.buckets[1]?.virtualMachine.infiniband).toBe(true);
    const [call] = s.calls;
    expect(call?.method).toBe('GET');
    expect(call?.path).toBe('/clusters/hpc/status');
    expect(call?.query.get('nodes')).toBe('true');
    expect(call?.headers.authorization).toBe(basic(CREDS));
    expect(call?.headers['x-cycle-client-version']).toMatch(/^cyclecloud-scaler:\d+\.\d+\.\d+/);
  });

  it('keeps a path prefix of the base URL and URL-encodes path segments', async () => {
    // Prepare
    const s = await server(() => ({ status: 200, json: { nodes: [] } }));
    const { cc } = client(`${s.url}/cyclecloud/`);
    // Act
    await cc.listNodes('my cluster/1', { operationId: 'op 1&x' });
    // Assess
    expect(s.calls[0]?.url).toBe('/cyclecloud/clusters/my%20cluster%2F1/nodes?operation=op+1%26x');
    expect(s.calls[0]?.query.get('operation')).toBe('op 1&x');
  });

  it('lists nodes by request id and returns the operation', async () => {
    // Prepare
    const s = await server(() => ({
      status: 200,
      json: { nodes: [{ Name: 'ondemand-1', Status: 'Ready', Extra: 1 }], operation: { action: 'create', startTime: '2026-01-01T00:00:00Z' } },
    }));
    const { cc } = client(s.url);
    // Act
    const list = await cc.listNodes('hpc', { requestId: 'job-1-create' });
    // Assess
    expect(s.calls[0]?.query.get('request_id')).toBe('job-1-create');
    expect(list.nodes[0]).toMatchObject({ Name: 'ondemand-1', Status: 'Ready', Extra: 1 });
    expect(list.operation?.action).toBe('create');
  });

  it.each([404, 400, 500])('maps "No operation found for request id" (HTTP %i) to CC_NOT_FOUND', async (status) => {
    // Prepare
    const s = await server(() => ({ status, text: 'No operation found for request id job-9' }));
    const { cc } = client(s.url, { retry: { maxRetries: 0 } });
    // Act
    const error = await failure(cc.listNodes('hpc', { requestId: 'job-9' }));
    // Assess
    expect(error.code).toBe('CC_NOT_FOUND');
    expect(error.status).toBe(status);
    expect(error.message).toContain('No operation found for request id job-9');
  });

  it('creates nodes with a JSON POST and parses the 202 result', async () => {
    // Prepare
    const s = await server(() => ({ status: 202, json: CREATE_RESULT, headers: { location: '/operations/3b53d621' } }));
    const { cc } = client(s.url);
    const request = fixture('seed-create-colocated-request.json') as Parameters<typeof cc.createNodes>[1];
    // Act
    const result = await cc.createNodes('hpc', request);
    // Assess
    expect(result.sets[0]?.added).toBe(1);
    expect(s.calls[0]?.method).toBe('POST');
    expect(s.calls[0]?.path).toBe('/clusters/hpc/nodes/create');
    expect(s.calls[0]?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(s.calls[0]?.body ?? '')).toEqual(request);
  });

  it.each([
    ['terminateNodes', 'terminate'],
    ['deallocateNodes', 'deallocate'],
    ['shutdownNodes', 'shutdown'],
    ['startNodes', 'start'],
    ['removeNodes', 'remove'],
  ] as const)('%s posts to /nodes/%s', async (method, action) => {
    // Prepare
    const s = await server(() => ({ status: 202, json: TERMINATE_RESULT }));
    const { cc } = client(s.url);
    // Act
    const result = await cc[method]('hpc', { names: ['ondemand-3'], requestId: 'r1' });
    // Assess
    expect(result.nodes[0]?.status).toBe('OK');
    expect(s.calls[0]?.path).toBe(`/clusters/hpc/nodes/${action}`);
    expect(JSON.parse(s.calls[0]?.body ?? '')).toEqual({ names: ['ondemand-3'], requestId: 'r1' });
  });

  it('scales a nodearray by total node count and refuses both or neither target', async () => {
    // Prepare
    const s = await server(() => ({ status: 202, json: CREATE_RESULT }));
    const { cc } = client(s.url);
    // Act
    await cc.scaleNodearray('hpc', 'ondemand', { totalNodeCount: 4 });
    const neither = cc.scaleNodearray('hpc', 'ondemand', {});
    const both = cc.scaleNodearray('hpc', 'ondemand', { totalNodeCount: 1, totalCoreCount: 2 });
    // Assess
    expect(s.calls[0]?.url).toBe('/clusters/hpc/scale/ondemand?totalNodeCount=4');
    await expect(neither).rejects.toThrow(TypeError);
    await expect(both).rejects.toThrow(TypeError);
    expect(s.calls).toHaveLength(1);
  });

  it('gets an operation by id', async () => {
    // Prepare
    const s = await server(() => ({ status: 200, json: { action: 'create', startTime: '2026-01-01T00:00:00Z' } }));
    const { cc } = client(s.url);
    // Act
    const op = await cc.getOperation('3b53d621');
    // Assess
    expect(op.action).toBe('create');
    expect(s.calls[0]?.path).toBe('/operations/3b53d621');
  });

  it('finds an operation by request id: the first element, or null for an empty list or a 404', async () => {
    // Prepare
    const op = { action: 'create', startTime: '2026-01-01T00:00:00Z', operationId: 'op-1' };
    const s = await server(sequence({ status: 200, json: [op] }, { status: 200, json: [] }, { status: 404, text: 'Not found' }));
    const { cc } = client(s.url);
    // Act
    const found = await cc.findOperationByRequestId('job-1');
    const empty = await cc.findOperationByRequestId('job-2');
    const missing = await cc.findOperationByRequestId('job-3');
    // Assess
    expect(found).toMatchObject(op);
    expect(empty).toBeNull();
    expect(missing).toBeNull();
    expect(s.calls[0]?.url).toBe('/operations/?request_id=job-1');
  });
});

describe('CycleCloud client: errors', () => {
  it.each([
    [400, 'CC_BAD_REQUEST'],
    [401, 'CC_AUTH'],
    [403, 'CC_AUTH'],
    [404, 'CC_NOT_FOUND'],
    [409, 'CC_CONFLICT'],
    [422, 'CC_BAD_REQUEST'],
    [429, 'CC_THROTTLED'],
    [500, 'CC_UNAVAILABLE'],
    [503, 'CC_UNAVAILABLE'],
  ] as const)('maps HTTP %i to %s', async (status, code) => {
    // Prepare
    const s = await server(() => ({ status, text: '' }));
    const { cc } = client(s.url, { retry: { maxRetries: 0 } });
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error).toBeInstanceOf(CycleCloudError);
    expect(error.name).toBe('CycleCloudError');
    expect(error.code).toBe(code);
    expect(error.status).toBe(status);
  });

  it("puts CycleCloud's Message: Detail into the message and keeps the exception", async () => {
    // Prepare
    const body = {
      Exception: 'com.cyclecomputing.cloud.exceptions.InvalidAttributeException',
      Message: 'MachineType Standard_HC44rs is not recognized',
      Detail: 'Please see /opt/cycle_server/logs/cycle_server.log for lines tagged with request-1274 for details.',
    };
    const s = await server(() => ({ status: 400, json: body }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(error.code).toBe('CC_BAD_REQUEST');
    expect(error.message).toContain(`${body.Message}: ${body.Detail}`);
    expect(error.cycleCloud).toEqual({ exception: body.Exception, message: body.Message, detail: body.Detail });
    expect(error.ambiguous).toBe(false);
  });

  it('truncates a text error body to 500 characters', async () => {
    // Prepare
    const s = await server(() => ({ status: 500, text: `${'x'.repeat(600)}TAIL` }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error.message).toContain('x'.repeat(500));
    expect(error.message).not.toContain('x'.repeat(501));
    expect(error.message).not.toContain('TAIL');
  });

  it('reports a body that does not match the schema as CC_BAD_RESPONSE naming the first bad path, not the body', async () => {
    // Prepare
    const bad = structuredClone(STATUS) as { nodearrays: Array<{ buckets: Array<Record<string, unknown>> }> };
    bad.nodearrays[0]!.buckets[1]!.maxCount = 'eleven';
    bad.nodearrays[0]!.buckets[1]!.bucketId = 'MARKER-IN-BODY';
    const s = await server(() => ({ status: 200, json: bad }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error.code).toBe('CC_BAD_RESPONSE');
    expect(error.message).toContain('nodearrays.0.buckets.1.maxCount');
    expect(error.message).not.toContain('MARKER-IN-BODY');
    expect(error.message).not.toContain('eleven');
    expect(s.calls).toHaveLength(1);
  });

  it('reports a 2xx body that is not JSON as CC_BAD_RESPONSE', async () => {
    // Prepare
    const s = await server(() => ({ status: 200, text: '<html>login</html>' }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.getOperation('x'));
    // Assess
    expect(error.code).toBe('CC_BAD_RESPONSE');
    expect(error.message).not.toContain('login');
  });

  it('keeps request and response details non-enumerable and without the Authorization header', async () => {
    // Prepare
    const s = await server(() => ({ status: 409, text: '' }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.createNodes('hpc', { requestId: 'r', sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(error.request?.method).toBe('POST');
    expect(error.request?.url).toBe(`${s.url}/clusters/hpc/nodes/create`);
    expect(error.response?.status).toBe(409);
    expect(Object.keys(error)).not.toContain('request');
    expect(Object.keys(error)).not.toContain('response');
    expect(Object.keys(error.request?.headers ?? {}).map((h) => h.toLowerCase())).not.toContain('authorization');
    expect(JSON.parse(JSON.stringify(error))).toEqual({ name: 'CycleCloudError', code: 'CC_CONFLICT', status: 409, ambiguous: false });
  });
});

describe('CycleCloud client: retries', () => {
  it('retries a GET on 503 with full-jitter exponential backoff', async () => {
    // Prepare
    const s = await server(sequence({ status: 503, text: '' }, { status: 502, text: '' }, { status: 200, json: STATUS }));
    const { cc, sleeps } = client(s.url, { retry: { baseDelayMs: 100, maxDelayMs: 10_000 } });
    // Act
    await cc.getClusterStatus('hpc');
    // Assess: random() = 0.5 of ceilings 100 and 200
    expect(s.calls).toHaveLength(3);
    expect(sleeps).toEqual([50, 100]);
  });

  it('honours Retry-After in seconds and as an HTTP date', async () => {
    // Prepare
    const nowMs = Date.parse('2026-01-01T00:00:00Z');
    const s = await server(
      sequence(
        { status: 429, text: 'slow down', headers: { 'retry-after': '3' } },
        { status: 503, text: '', headers: { 'retry-after': new Date(nowMs + 7000).toUTCString() } },
        { status: 200, json: { nodes: [] } },
      ),
    );
    const { cc, sleeps } = client(s.url, { now: () => nowMs });
    // Act
    await cc.listNodes('hpc');
    // Assess
    expect(sleeps).toEqual([3000, 7000]);
  });

  it('gives up with the last code after maxRetries', async () => {
    // Prepare
    const s = await server(() => ({ status: 504, text: 'gateway timeout' }));
    const { cc, sleeps } = client(s.url, { retry: { maxRetries: 2 } });
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error.code).toBe('CC_UNAVAILABLE');
    expect(error.status).toBe(504);
    expect(s.calls).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  it('stops retrying when Retry-After exceeds maxDelayMs and reports it', async () => {
    // Prepare
    const s = await server(() => ({ status: 429, text: '', headers: { 'retry-after': '120' } }));
    const { cc, sleeps } = client(s.url, { retry: { maxDelayMs: 20_000 } });
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error.code).toBe('CC_THROTTLED');
    expect(error.retryAfterMs).toBe(120_000);
    expect(s.calls).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('does not retry a GET on 500 (only 429/502/503/504)', async () => {
    // Prepare
    const s = await server(() => ({ status: 500, text: 'boom' }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error.code).toBe('CC_UNAVAILABLE');
    expect(s.calls).toHaveLength(1);
  });

  it.each([500, 503])('never retries a POST (HTTP %i) and marks it ambiguous', async (status) => {
    // Prepare
    const s = await server(() => ({ status, text: '' }));
    const { cc, sleeps } = client(s.url);
    // Act
    const error = await failure(cc.createNodes('hpc', { requestId: 'r', sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(error.code).toBe('CC_UNAVAILABLE');
    expect(error.ambiguous).toBe(true);
    expect(s.calls).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('does not mark a POST ambiguous on 409 (CycleCloud ignored a repeated request id)', async () => {
    // Prepare
    const s = await server(() => ({ status: 409, text: '' }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.createNodes('hpc', { requestId: 'r', sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(error.code).toBe('CC_CONFLICT');
    expect(error.ambiguous).toBe(false);
  });

  it('retries a GET after a connection reset, then succeeds', async () => {
    // Prepare
    const s = await server(sequence({ drop: true }, { status: 200, json: { nodes: [] } }));
    const { cc, sleeps } = client(s.url);
    // Act
    const list = await cc.listNodes('hpc');
    // Assess
    expect(list.nodes).toEqual([]);
    expect(s.calls).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
  });

  it('reports a POST reset after sending as CC_NETWORK, ambiguous, not retried', async () => {
    // Prepare
    const s = await server(() => ({ drop: true }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.createNodes('hpc', { requestId: 'r', sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(error.code).toBe('CC_NETWORK');
    expect(error.ambiguous).toBe(true);
    expect(s.calls).toHaveLength(1);
  });

  it('reports connection refused as CC_NETWORK, not ambiguous, after retrying a GET', async () => {
    // Prepare
    const port = await freePort();
    const { cc, sleeps } = client(`http://127.0.0.1:${port}`, { retry: { maxRetries: 2 } });
    // Act
    const get = await failure(cc.getClusterStatus('hpc'));
    const post = await failure(cc.createNodes('hpc', { sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(get.code).toBe('CC_NETWORK');
    expect(get.message).toContain('ECONNREFUSED');
    expect(sleeps).toHaveLength(2);
    expect(post.code).toBe('CC_NETWORK');
    expect(post.ambiguous).toBe(false);
  });

  it('reports a response that never comes as CC_TIMEOUT; ambiguous for a POST', async () => {
    // Prepare
    const s = await server(() => ({ hang: true }));
    const { cc } = client(s.url, { headersTimeoutMs: 200, retry: { maxRetries: 0 } });
    // Act
    const error = await failure(cc.createNodes('hpc', { requestId: 'r', sets: [{ nodearray: 'ondemand', count: 1 }] }));
    // Assess
    expect(error.code).toBe('CC_TIMEOUT');
    expect(error.ambiguous).toBe(true);
  });

  it('stops waiting between retries when aborted (default sleep)', async () => {
    // Prepare
    const s = await server(() => ({ status: 503, text: '', headers: { 'retry-after': '10' } }));
    const cc = createCycleCloudClient({ baseUrl: s.url, credentials: staticCredentialProvider(CREDS) });
    clients.push(cc);
    const controller = new AbortController();
    // Act
    const pending = cc.getClusterStatus('hpc', { abortSignal: controller.signal });
    await vi.waitFor(() => expect(s.calls).toHaveLength(1));
    controller.abort(new Error('shutting down'));
    // Assess
    await expect(pending).rejects.toThrow('shutting down');
    expect(s.calls).toHaveLength(1);
  });

  it('computes Retry-After and backoff as documented', () => {
    // Prepare
    const nowMs = Date.parse('2026-01-01T00:00:00Z');
    // Act and Assess
    expect(parseRetryAfterMs('2', nowMs)).toBe(2000);
    expect(parseRetryAfterMs(new Date(nowMs - 5000).toUTCString(), nowMs)).toBe(0);
    expect(parseRetryAfterMs('soon', nowMs)).toBeUndefined();
    expect(parseRetryAfterMs(undefined, nowMs)).toBeUndefined();
    expect(backoffDelayMs(0, 250, 20_000, () => 0.999)).toBe(249);
    expect(backoffDelayMs(10, 250, 20_000, () => 0.5)).toBe(10_000);
    expect(backoffDelayMs(3, 250, 20_000, () => 0)).toBe(0);
  });
});

describe('CycleCloud client: authentication', () => {
  function rotating(values: CycleCloudCredentials[]): CredentialProvider & { invalidations: number } {
    let index = 0;
    const p = {
      invalidations: 0,
      get: async () => values[Math.min(index, values.length - 1)]!,
      invalidate: () => {
        p.invalidations++;
        index++;
      },
    };
    return p;
  }

  it.each(['GET', 'POST'] as const)('on 401 invalidates the credentials and retries a %s once with fresh ones', async (method) => {
    // Prepare
    const fresh = { username: 'scaler', password: 'rotated-password' };
    const s = await server((call) =>
      call.headers.authorization === basic(fresh)
        ? { status: method === 'GET' ? 200 : 202, json: method === 'GET' ? STATUS : CREATE_RESULT }
        : { status: 401, text: 'Unauthorized' },
    );
    const credentials = rotating([CREDS, fresh]);
    const { cc } = client(s.url, { credentials });
    // Act
    if (method === 'GET') await cc.getClusterStatus('hpc');
    else await cc.createNodes('hpc', { requestId: 'r', sets: [{ nodearray: 'ondemand', count: 1 }] });
    // Assess
    expect(credentials.invalidations).toBe(1);
    expect(s.calls.map((c) => c.headers.authorization)).toEqual([basic(CREDS), basic(fresh)]);
  });

  it('fails with CC_AUTH after the one retry is refused too', async () => {
    // Prepare
    const s = await server(() => ({ status: 401, text: '' }));
    const credentials = rotating([CREDS, { username: 'scaler', password: 'also-wrong' }, { username: 'x', password: 'never-used' }]);
    const { cc } = client(s.url, { credentials });
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error.code).toBe('CC_AUTH');
    expect(error.status).toBe(401);
    expect(s.calls).toHaveLength(2);
  });

  it('does not send the same refused credentials twice', async () => {
    // Prepare
    const s = await server(() => ({ status: 401, text: '' }));
    const { cc } = client(s.url);
    // Act
    const error = await failure(cc.getClusterStatus('hpc'));
    // Assess
    expect(error.code).toBe('CC_AUTH');
    expect(s.calls).toHaveLength(1);
  });

  it('close() is idempotent and later calls fail without retrying', async () => {
    // Prepare
    const s = await server(() => ({ status: 200, json: { nodes: [] } }));
    const { cc, sleeps } = client(s.url);
    await cc.listNodes('hpc');
    // Act
    await Promise.all([cc.close(), cc.close()]);
    const error = await failure(cc.listNodes('hpc'));
    // Assess
    expect(error.code).toBe('CC_NETWORK');
    expect(sleeps).toEqual([]);
    expect(s.calls).toHaveLength(1);
  });

  it('refuses a base URL that carries credentials or is not http(s)', () => {
    expect(() => createCycleCloudClient({ baseUrl: 'https://u:p@cc.example.com', credentials: staticCredentialProvider(CREDS) })).toThrow(TypeError);
    expect(() => createCycleCloudClient({ baseUrl: 'ftp://cc.example.com', credentials: staticCredentialProvider(CREDS) })).toThrow(TypeError);
  });
});

describe('operationLabel', () => {
  it('labels calls by operation, never by cluster, id or nodearray', async () => {
    const { operationLabel } = await import('../../src/cyclecloud/client.ts');
    expect(operationLabel('/clusters/hpc/nodes/create')).toBe('/clusters/{cluster}/nodes/create');
    expect(operationLabel('/clusters/hpc/status')).toBe('/clusters/{cluster}/status');
    expect(operationLabel('/operations/3b53d621')).toBe('/operations/{id}');
    expect(operationLabel('/clusters/hpc/scale/mpi')).toBe('/clusters/{cluster}/scale/{nodearray}');
    expect(operationLabel('/operations/')).toBe('/operations/');
  });
});
