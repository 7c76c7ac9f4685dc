/**
 * Acceptance tests of docs/api.md (the external interface) through `npm start` and `npm run simulator`, as an
 * outside system sees the scaler: commands (§1), settings (§2), queue messages (§3), HTTP routes
 * (§4) and the request record and callback (§5). One `npm start` instance serves most tests; a
 * second one (a configured cluster CycleCloud does not have) covers health staleness and Ctrl-C.
 *
 * Capacity budget of the shared simulator (seed numbers): ondemand/Standard_F32s_v2 3 nodes (the
 * capacity tests use all of them), ondemand/Standard_HC44rs 11, mpi/Standard_HB120rs_v3 64.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { encodeQueueMessage } from '../../src/platform/storage.ts';
import type { RequestRecord } from '../../src/ledger/schemas.ts';
import { eventually, root, sleep, spawnScaler, startScaler, type RunningScaler } from './harness.ts';
import '../helpers/log-capture.ts';
import { createCallsOf, memberCreatesOf, setsOf } from '../helpers/creates.ts';

const SECRET = 'contract-signing-secret-0123456789';
const connection = () => inject('storageConnectionString');

let host: RunningScaler;
let ghost: RunningScaler;
/** A snapshot timer that does not run during the test (yearly): status and plan before its first run. */
let fresh: RunningScaler;
let queue: QueueClient;

/** A loopback receiver for callbacks: every POST with its raw body and headers. */
const received: Array<{ path: string; headers: IncomingHttpHeaders; raw: string }> = [];
let receiver: Server;
let receiverUrl: string;

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  host.api(path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers });
const getJson = async <T>(path: string): Promise<{ status: number; body: T; contentType: string | null }> => {
  const res = await host.api(path);
  return { status: res.status, body: (await res.json()) as T, contentType: res.headers.get('content-type') };
};
const hmac = (text: string) => `sha256=${createHmac('sha256', SECRET).update(text).digest('hex')}`;
/** The create calls carrying sets of `requestId` (creates may be batched: see test/helpers/creates.ts). */
const creates = async (requestId?: string) => createCallsOf(await host.simCalls(), requestId);
const simNodes = async () => ((await (await host.sim$('/__sim/state')).json()) as { clusters: Record<string, { nodes: Array<Record<string, unknown>> }> }).clusters.hpc!.nodes;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, raw });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  [host, ghost, fresh] = await Promise.all([
    startScaler({
      storageConnectionString: connection(),
      env: { SCALER_SIGNING_SECRET: SECRET, REQUEST_DEADLINE_MINUTES: '0.2', SNAPSHOT_SCHEDULE: '* * * * * *', SNAPSHOT_STALE_AFTER_FAILURES: '2' },
    }),
    startScaler({
      storageConnectionString: connection(),
      env: { CYCLECLOUD_CLUSTERS: 'hpc,ghost', SNAPSHOT_SCHEDULE: '* * * * * *', SNAPSHOT_STALE_AFTER_FAILURES: '2' },
    }),
    startScaler({ storageConnectionString: connection(), env: { SNAPSHOT_SCHEDULE: '0 0 0 1 1 *' } }),
  ]);
  queue = QueueServiceClient.fromConnectionString(connection()).getQueueClient(host.scaleQueue);
}, 60_000);

afterAll(async () => {
  await Promise.all([host?.stop(), ghost?.stop(), fresh?.stop()]);
  await new Promise((resolve) => receiver?.close(resolve));
}, 30_000);

describe('§1 commands', () => {
  it('`npm run simulator -- --port 0 --step-ms N` prints one JSON line and serves the seed cluster with the mpi placement-group limit', async () => {
    // Prepare
    const child = spawn(process.execPath, ['src/simulator/main.ts', '--port', '0', '--step-ms', '50'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await eventually(async () => (out.includes('\n') ? true : undefined), 10_000, 'the simulator line');
      await sleep(200); // anything printed after the line would show up now

      // Act
      const lines = out.split('\n').filter((l) => l !== '');
      const info = JSON.parse(lines[0]!) as { url: string; username: string; password: string; clusters: string[] };
      const auth = { authorization: `Basic ${Buffer.from(`${info.username}:${info.password}`).toString('base64')}`, 'content-type': 'application/json' };
      const status = (await (await fetch(`${info.url}/clusters/hpc/status`, { headers: auth })).json()) as {
        nodearrays: Array<{
          name: string;
          buckets: Array<{
            definition: { machineType: string };
            maxCount: number;
            availableCount: number;
            maxPlacementGroupSize: number;
            virtualMachine: { vcpuCount: number; infiniband: boolean };
          }>;
        }>;
      };
      const created = await fetch(`${info.url}/clusters/hpc/nodes/create`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ requestId: 'sim-step', sets: [{ nodearray: 'mpi', count: 1 }] }),
      });
      const ready = await eventually(
        async () => {
          const nodes = (await (await fetch(`${info.url}/clusters/hpc/nodes`, { headers: auth })).json()) as { nodes: Array<{ Status: string }> };
          return nodes.nodes.some((n) => n.Status === 'Ready') ? true : undefined;
        },
        3_000, // with the default 1000 ms step this would take several seconds
        'a node Ready with --step-ms 50',
      );

      // Assess
      expect(lines).toHaveLength(1);
      expect(Object.keys(info)).toEqual(['url', 'username', 'password', 'clusters']);
      expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(info.clusters).toEqual(['hpc']);
      const ondemand = status.nodearrays.find((n) => n.name === 'ondemand')!;
      expect(ondemand.buckets.map((b) => [b.definition.machineType, b.maxCount, b.availableCount, b.virtualMachine.vcpuCount])).toEqual([
        ['Standard_F32s_v2', 3, 3, 32],
        ['Standard_HC44rs', 11, 11, 44],
      ]);
      const mpi = status.nodearrays.find((n) => n.name === 'mpi')!;
      expect(mpi.buckets[0]!.virtualMachine.infiniband).toBe(true);
      expect(mpi.buckets[0]!.maxPlacementGroupSize).toBe(4);
      expect(created.status).toBe(202);
      expect(ready).toBe(true);
    } finally {
      child.kill('SIGINT');
    }
  });

  it('`npm start` prints the HTTP base URL, the function key, the simulator URL and an example curl, and no secret', () => {
    // Act
    const out = host.output();

    // Assess
    expect(host.base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api$/);
    expect(out).toContain(host.key);
    expect(out).toContain(host.sim.url);
    expect(out).toMatch(new RegExp(`curl [^\\n]*${host.base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/scale-requests`));
    expect([out]).toContainNoSecret([SECRET, host.sim.password]);
  });

  it.each([
    ['SNAPSHOT_SCHEDULE', '* * *'],
    ['CYCLECLOUD_URL', 'notaurl'],
    ['REQUEST_DEADLINE_MINUTES', 'soon'],
  ])('`npm start` with a malformed %s stops non-zero with one message naming it', async (name, value) => {
    // Act
    const run = spawnScaler({ [name]: value, AzureWebJobsStorage: connection(), PORT: '0' });
    const code = await run.exited;

    // Assess
    expect(code).not.toBe(0);
    const lines = run.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(name);
  });
});

/**
 * The capacity scenario waits for the request deadline (REQUEST_DEADLINE_MINUTES=0.2, 12 s), so it
 * starts with the first HTTP test and is assessed in §3; nothing else uses Standard_F32s_v2 nodes.
 */
interface CapacityOutcome {
  waiting: RequestRecord;
  nothing: RequestRecord;
  partial: RequestRecord;
  failed: RequestRecord;
}
let capacity: Promise<{ ok: true; value: CapacityOutcome } | { ok: false; error: unknown }> | undefined;

async function capacityScenario(): Promise<CapacityOutcome> {
  // Standard_F32s_v2 has 3 nodes in all: 3 of 5 are created, 2 wait; a later request gets none.
  const accepted1 = await post('/scale-requests', { requestId: 'c-cap-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 5, machineTypes: ['Standard_F32s_v2'] }] });
  if (accepted1.status !== 202) throw new Error(`c-cap-1: HTTP ${accepted1.status}`);
  const waiting = await eventually(
    async () => {
      const r = (await (await host.api('/scale-requests/c-cap-1')).json()) as RequestRecord;
      return r.demands[0]!.created === 3 && r.demands[0]!.reason ? r : undefined;
    },
    10_000,
    'c-cap-1 to create 3 and wait for 2',
  );
  const accepted2 = await post('/scale-requests', { requestId: 'c-cap-2', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'] }] });
  if (accepted2.status !== 202) throw new Error(`c-cap-2: HTTP ${accepted2.status}`);
  const nothing = await eventually(
    async () => {
      const r = (await (await host.api('/scale-requests/c-cap-2')).json()) as RequestRecord;
      return r.demands[0]!.reason ? r : undefined;
    },
    10_000,
    'c-cap-2 to wait with a reason',
  );
  const [partial, failed] = await Promise.all([host.waitFinal('c-cap-1', 30_000), host.waitFinal('c-cap-2', 30_000)]);
  return { waiting, nothing, partial, failed };
}

describe('§4 HTTP API and §5 record', () => {
  beforeAll(async () => {
    // Nodes for the terminate test boot meanwhile.
    expect((await post('/scale-requests', { requestId: 'c-term-nodes', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 5 }] })).status).toBe(202);
    capacity = capacityScenario().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
  });

  it('accepts a scale request with 202, answers the same body again with the same statusUrl, and refuses another body with 409', async () => {
    // Prepare
    const body = { requestId: 'c-http-1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 2 }] };

    // Act
    const first = await post('/scale-requests', body);
    const again = await post('/scale-requests', { ...body, kind: 'scale' }); // the default spelled out: same request
    const other = await post('/scale-requests', { ...body, demands: [{ nodearray: 'mpi', count: 3 }] });
    const record = await host.waitFinal('c-http-1');
    const later = await post('/scale-requests', body);

    // Assess
    expect(first.status).toBe(202);
    const a = (await first.json()) as Record<string, unknown>;
    expect(Object.keys(a).sort()).toEqual(['requestId', 'state', 'statusUrl']);
    expect(a).toMatchObject({ requestId: 'c-http-1', state: 'queued', statusUrl: `${host.base}/scale-requests/c-http-1` });
    expect(again.status).toBe(202);
    expect(((await again.json()) as Record<string, unknown>).statusUrl).toBe(a.statusUrl);
    expect(other.status).toBe(409);
    expect(record.state).toBe('fulfilled');
    expect(record.kind).toBe('scale');
    expect(await later.json()).toEqual({ requestId: 'c-http-1', state: 'fulfilled', statusUrl: a.statusUrl });
    expect(await creates('c-http-1')).toHaveLength(1);
  });

  it('answers 400 problem+json naming each bad field by path', async () => {
    // Prepare
    const cases: Array<[unknown, string[]]> = [
      [
        {
          requestId: 'c-bad-1',
          cluster: 'hpc',
          demands: [
            { nodearray: 'mpi', count: 0 },
            { nodearray: 'mpi', count: 10_001 },
          ],
        },
        ['demands.0.count', 'demands.1.count'],
      ],
      [{ requestId: 'x'.repeat(129), cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] }, ['requestId']],
      [{ requestId: 'has space', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] }, ['requestId']],
      [{ requestId: 'c-bad-2', cluster: 'hpc', demands: [] }, ['demands']],
      [{ requestId: 'c-bad-3', cluster: 'hpc', demands: Array.from({ length: 1001 }, () => ({ nodearray: 'mpi', count: 1 })) }, ['demands']],
      [{ requestId: 'c-bad-4', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }], callbackUrl: 'http://scheduler.example.com/hook' }, ['callbackUrl']],
      [{ cluster: 'hpc', demands: [{ count: 1 }] }, ['requestId', 'demands.0']],
    ];

    for (const [body, paths] of cases) {
      // Act
      const res = await post('/scale-requests', body);
      const problem = (await res.json()) as { status: number; errors: Array<{ path: string; message: string }> };

      // Assess
      expect(res.status, JSON.stringify(paths)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(problem.status).toBe(400);
      expect(problem.errors.map((e) => e.path).sort()).toEqual([...paths].sort());
      expect(problem.errors.every((e) => typeof e.message === 'string' && e.message.length > 0)).toBe(true);
    }
    // The limits themselves are valid (checked through /api/plan, which creates nothing)
    const atLimits = await post('/plan', {
      requestId: 'c-limits',
      cluster: 'hpc',
      demands: [{ nodearray: 'mpi', count: 10_000 }, ...Array.from({ length: 999 }, () => ({ nodearray: 'mpi', count: 1 }))],
    });
    expect(atLimits.status).toBe(200);
    expect((await post('/plan', { requestId: 'r'.repeat(128), cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] })).status).toBe(200);
    const missing = (await (await post('/scale-requests', { cluster: 'hpc', demands: [{ count: 1 }] })).json()) as { errors: Array<{ path: string; message: string }> };
    expect(missing.errors).toEqual([
      { path: 'requestId', message: 'is required' },
      // docs/api.md §3: count plus at least one selector; a demand with none is named as a whole.
      { path: 'demands.0', message: 'needs at least one selector: nodearray, nodearrays, machineTypes, minVcpus, minMemoryGB, minGpus or infiniband: true' },
    ]);
    expect((await host.api('/scale-requests/c-bad-1')).status).toBe(404);
  });

  it('answers 404 for an unknown request and cluster, and 413 for a body over 256 KiB', async () => {
    // Prepare
    const big = JSON.stringify({ requestId: 'c-big', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1, nodeAttributes: { pad: 'x'.repeat(257 * 1024) } }] });

    // Act
    const unknownRequest = await host.api('/scale-requests/never-sent');
    const unknownCluster = await host.api('/clusters/no-such-cluster/status');
    const tooBig = await post('/scale-requests', big);

    // Assess
    expect(unknownRequest.status).toBe(404);
    expect(unknownCluster.status).toBe(404);
    expect(tooBig.status).toBe(413);
    expect((await host.api('/scale-requests/c-big')).status).toBe(404);
  });

  it('needs the function key on every route but /api/health: none, a wrong one, or ?code=', async () => {
    // Prepare
    const routes: Array<[string, string]> = [
      ['POST', '/scale-requests'],
      ['GET', '/scale-requests/c-http-1'],
      ['POST', '/terminate'],
      ['POST', '/plan'],
      ['GET', '/clusters/hpc/status'],
      ['GET', '/openapi.json'],
    ];
    const body = JSON.stringify({ requestId: 'c-key-1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] });

    for (const [method, path] of routes) {
      const init = method === 'POST' ? { method, body } : { method };
      // Act
      const none = await fetch(`${host.base}${path}`, init);
      const wrong = await fetch(`${host.base}${path}`, { ...init, headers: { 'x-functions-key': 'not-the-key' } });
      const wrongCode = await fetch(`${host.base}${path}?code=not-the-key`, init);

      // Assess
      expect([path, none.status, wrong.status, wrongCode.status]).toEqual([path, 401, 401, 401]);
      expect(await none.text()).not.toContain(host.key);
    }
    const viaCode = await fetch(`${host.base}/clusters/hpc/status?code=${encodeURIComponent(host.key)}`);
    const health = await fetch(`${host.base}/health`);
    expect(viaCode.status).toBe(200);
    expect(health.status).toBe(200);
    expect((await host.api('/scale-requests/c-key-1')).status).toBe(404); // nothing was accepted
  });

  it('answers status and plan right after start-up, before the snapshot timer has run (a live read)', async () => {
    // Prepare: the timer has not run (with the default schedule its first run may be a minute away)
    const before = (await (await fetch(`${fresh.base}/health`)).json()) as { clusters: Array<{ cluster: string; takenAt: string | null }> };

    // Act
    const status = await fresh.api('/clusters/hpc/status');
    const plan = await fresh.api('/plan', { method: 'POST', body: JSON.stringify({ requestId: 'c-fresh-1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 2 }] }) });
    const unknown = await fresh.api('/clusters/no-such-cluster/status');

    // Assess
    expect(status.status).toBe(200);
    expect((await status.json()) as { cluster: string; stale: boolean }).toMatchObject({ cluster: 'hpc', stale: false });
    expect(plan.status).toBe(200);
    expect(((await plan.json()) as { sets: unknown[] }).sets).toHaveLength(1);
    expect(unknown.status).toBe(404);
    // machineTypes absent: any valid bucket of the nodearray, in CycleCloud's order; a loose demand
    // goes whole into the first bucket that can take it (F32s_v2 has 3), spread only when none can.
    const anyBucket = await fresh.api('/plan', {
      method: 'POST',
      body: JSON.stringify({
        requestId: 'c-fresh-2',
        cluster: 'hpc',
        demands: [
          { nodearray: 'ondemand', count: 5 },
          { nodearray: 'ondemand', count: 2 },
        ],
      }),
    });
    const whole = ((await anyBucket.json()) as { sets: Array<{ machineType: string; count: number }> }).sets.map((x) => [x.machineType, x.count]);
    expect(whole).toEqual([
      ['Standard_HC44rs', 5],
      ['Standard_F32s_v2', 2],
    ]);
    const tooBig = await fresh.api('/plan', { method: 'POST', body: JSON.stringify({ requestId: 'c-fresh-3', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 12 }] }) });
    const spread = ((await tooBig.json()) as { sets: Array<{ machineType: string; count: number }> }).sets.map((x) => [x.machineType, x.count]);
    expect(spread).toEqual([
      ['Standard_F32s_v2', 3],
      ['Standard_HC44rs', 9],
    ]);
    expect(await fresh.simCalls().then((calls) => calls.filter((c) => c.path.endsWith('/nodes/create')))).toHaveLength(0);
    expect(before.clusters.find((c) => c.cluster === 'hpc')?.takenAt).toBeNull();
  });

  it('GET /api/clusters/{cluster}/status has exactly the contract fields', async () => {
    // Act
    const { status, body } = await getJson<
      {
        nodearrays: Array<{ name: string; buckets: Array<Record<string, unknown> & { placementGroups: Array<Record<string, unknown>> }> }>;
      } & Record<string, unknown>
    >('/clusters/hpc/status');

    // Assess
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['ageSeconds', 'cluster', 'nodearrays', 'stale', 'takenAt']);
    expect(body).toMatchObject({ cluster: 'hpc', stale: false });
    expect(typeof body.ageSeconds).toBe('number');
    expect(Number.isNaN(Date.parse(body.takenAt as string))).toBe(false);
    expect(body.nodearrays.map((n) => n.name).sort()).toEqual(['gpu', 'mpi', 'ondemand', 'spot']);
    const buckets = body.nodearrays.flatMap((n) => n.buckets);
    for (const b of buckets) {
      expect(Object.keys(b).sort()).toEqual(
        [
          'activeCount',
          'availableCount',
          'bucketId',
          'infiniband',
          'machineType',
          'maxCount',
          'maxPlacementGroupSize',
          'memoryGB',
          'placementGroups',
          'spot',
          'valid',
          'vcpuCount',
        ].sort(),
      );
      for (const g of b.placementGroups) expect(Object.keys(g).sort()).toEqual(['activeCount', 'name']);
    }
    const mpi = body.nodearrays.find((n) => n.name === 'mpi')!.buckets[0]!;
    expect(mpi).toMatchObject({ machineType: 'Standard_HB120rs_v3', infiniband: true, valid: true, maxPlacementGroupSize: 4, spot: false });
    expect(body.nodearrays.find((n) => n.name === 'spot')!.buckets[0]).toMatchObject({ machineType: 'Standard_F32s_v2', spot: true });
  });

  it('POST /api/plan explains chosen buckets, placement groups and limits, and creates nothing', async () => {
    // Prepare
    const before = (await creates()).length;
    const body = {
      requestId: 'c-plan-1',
      cluster: 'hpc',
      demands: [
        { nodearray: 'mpi', count: 4, colocated: true },
        { nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] },
        { nodearray: 'ondemand', count: 50, machineTypes: ['Standard_F32s_v2'] },
      ],
    };

    // Act
    const res = await post('/plan', body);
    const plan = (await res.json()) as {
      sets: Array<{ nodearray: string; machineType: string; placementGroupId: string | null; count: number }>;
      demands: Array<{ index: number; reason: string | null }>;
    };
    await sleep(300);

    // Assess
    expect(res.status).toBe(200);
    expect(plan.sets).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', count: 4, placementGroupId: expect.any(String) }),
        expect.objectContaining({ nodearray: 'ondemand', machineType: 'Standard_HC44rs', count: 2, placementGroupId: null }),
      ]),
    );
    expect(plan.demands[2]!.reason).toMatch(/Standard_F32s_v2/);
    expect(plan.demands[2]!.reason).toMatch(/availableCount/);
    expect((await creates()).length).toBe(before);
    expect((await host.api('/scale-requests/c-plan-1')).status).toBe(404);
  });

  it('GET /api/openapi.json is OpenAPI 3.1 with /api-prefixed paths for every route', async () => {
    // Act
    const { status, body } = await getJson<{ openapi: string; paths: Record<string, unknown> }>('/openapi.json');

    // Assess
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\.1(\.\d+)?$/);
    expect(Object.keys(body.paths)).toEqual(
      expect.arrayContaining([
        '/api/scale-requests',
        '/api/scale-requests/{requestId}',
        '/api/terminate',
        '/api/plan',
        '/api/clusters/{cluster}/status',
        '/api/health',
        '/api/openapi.json',
      ]),
    );
    expect(Object.keys(body.paths).every((p) => p.startsWith('/api/'))).toBe(true);
  });

  it('verifies X-Scaler-Signature (HMAC of "<timestamp>.<METHOD>.<path>.<raw body>"): valid → 202, tampered, 6 minutes old or replayed → 401', async () => {
    // Prepare
    const raw = JSON.stringify({ requestId: 'c-sig-1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] });
    const now = Math.floor(Date.now() / 1000);

    // Act
    const signed = (ts: number) => hmac(`${ts}.POST./api/scale-requests.${raw}`);
    const tampered = await post('/scale-requests', raw.replace('"count":1', '"count":2'), { 'x-scaler-signature': signed(now), 'x-scaler-timestamp': String(now) });
    const old = await post('/scale-requests', raw, { 'x-scaler-signature': signed(now - 360), 'x-scaler-timestamp': String(now - 360) });
    const valid = await post('/scale-requests', raw, { 'x-scaler-signature': signed(now), 'x-scaler-timestamp': String(now) });
    const replayed = await post('/scale-requests', raw, { 'x-scaler-signature': signed(now), 'x-scaler-timestamp': String(now) });

    // Assess
    expect(tampered.status).toBe(401);
    expect(old.status).toBe(401);
    expect(valid.status).toBe(202);
    expect(replayed.status).toBe(401);
    expect((await host.waitFinal('c-sig-1')).state).toBe('fulfilled');
  });

  it('records exactly the §5 fields, passes nodeAttributes to CycleCloud unchanged, carries jobId, and POSTs the signed final record to the callback', async () => {
    // Prepare
    const nodeAttributes = { Configuration: { slurm: { autoscale: true, partition: 'hpc' } }, Tags: { team: 'cfd' } };
    const body = {
      requestId: 'c-record-1',
      cluster: 'hpc',
      demands: [
        { nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'], nodeAttributes, jobId: 'J-77' },
        { nodearray: 'mpi', count: 2, placementGroupId: 'c-record-pg' },
      ],
      callbackUrl: `${receiverUrl}/hooks/scaler`,
    };

    // Act
    expect((await post('/scale-requests', body)).status).toBe(202);
    const record = await host.waitFinal('c-record-1');
    const callback = await eventually(async () => received.find((r) => r.path === '/hooks/scaler'), 15_000, 'the callback');
    const [create] = await creates('c-record-1');

    // Assess: the record
    expect(Object.keys(record).sort()).toEqual(['cluster', 'createdAt', 'demands', 'kind', 'nodes', 'operations', 'reason', 'requestId', 'state', 'updatedAt']);
    expect(record).toMatchObject({ requestId: 'c-record-1', cluster: 'hpc', kind: 'scale', state: 'fulfilled', reason: null });
    expect(new Date(record.createdAt).toISOString()).toBe(record.createdAt);
    expect(new Date(record.updatedAt).toISOString()).toBe(record.updatedAt);
    expect(record.demands).toEqual([
      { index: 0, requested: 1, created: 1, ready: 1, placementGroupId: null, machineType: 'Standard_HC44rs', reason: null, jobId: 'J-77' },
      { index: 1, requested: 2, created: 2, ready: 2, placementGroupId: 'c-record-pg', machineType: 'Standard_HB120rs_v3', reason: null },
    ]);
    expect(record.operations).toHaveLength(1);
    expect(Object.keys(record.operations[0]!).sort()).toEqual(['cycleCloudRequestId', 'operationId', 'state']);
    expect(record.operations[0]).toMatchObject({ state: 'done', cycleCloudRequestId: expect.stringMatching(/^c-record-1/) });
    expect(record.nodes).toHaveLength(3);
    for (const n of record.nodes) expect(Object.keys(n).sort()).toEqual(['demand', 'id', 'name', 'status']);
    expect(record.nodes.map((n) => [n.status, n.demand]).sort()).toEqual([
      ['Ready', 0],
      ['Ready', 1],
      ['Ready', 1],
    ]);
    expect(host.output()).toContain('J-77');
    // CycleCloud received the attributes unchanged, the explicit group made the demand colocated
    const sets = setsOf(create!, 'c-record-1') as unknown as Array<Record<string, unknown>>;
    expect((create!.body as { requestId: string }).requestId).toBe(record.operations[0]!.cycleCloudRequestId);
    // The caller's attributes go unchanged; the scaler adds only its own two tags (whose node it is).
    expect(sets.find((s) => s.nodearray === 'ondemand')!.nodeAttributes).toEqual({
      ...nodeAttributes,
      Tags: { ...nodeAttributes.Tags, 'ccscale-request': 'c-record-1', 'ccscale-create': 'c-record-1-g0' },
    });
    expect(sets.find((s) => s.nodearray === 'mpi')).toMatchObject({ count: 2, placementGroupId: 'c-record-pg' });
    // The callback: the final record, signed over its raw body
    expect(JSON.parse(callback.raw)).toEqual(record);
    expect(callback.headers['x-scaler-signature']).toBe(hmac(`${callback.headers['x-scaler-timestamp']}.${callback.raw}`));
    expect(Math.abs(Number(callback.headers['x-scaler-timestamp']) - Date.now() / 1000)).toBeLessThan(300);
  });

  it('terminates nodes by each selector: ids, names, hostnames, ipAddresses (HTTP) and filter (queue)', async () => {
    // Prepare: five nodes to terminate (requested in beforeAll)
    const made = await host.waitFinal('c-term-nodes');
    expect(made.state).toBe('fulfilled');
    const names = made.nodes.map((n) => n.name);
    const records = (await simNodes()).filter((n) => names.includes(n.Name as string));
    const byName = (name: string) => records.find((r) => r.Name === name)!;
    const [n0, n1, n2, n3, n4] = names as [string, string, string, string, string];
    const selectors: Array<[string, Record<string, unknown>]> = [
      [n0, { ids: [byName(n0).NodeId] }],
      [n1, { names: [n1] }],
      [n2, { hostnames: [byName(n2).Hostname] }],
      [n3, { ipAddresses: [byName(n3).PrivateIp] }],
    ];

    // Act
    for (const [i, [, selector]] of selectors.entries()) {
      const res = await post('/terminate', { requestId: `c-term-${i}`, cluster: 'hpc', ...selector });
      expect(res.status).toBe(202);
      expect(((await res.json()) as { statusUrl: string }).statusUrl).toBe(`${host.base}/scale-requests/c-term-${i}`);
    }
    await queue.sendMessage(encodeQueueMessage({ kind: 'terminate', requestId: 'c-term-4', cluster: 'hpc', filter: `Name == "${n4}"` }));
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => host.waitFinal(`c-term-${i}`)));

    // Assess
    for (const [i, r] of results.entries()) {
      // The whole record on failure: its reason says which step did not hold.
      expect({ i, kind: r.kind, state: r.state, reason: r.reason, nodes: r.nodes, operations: r.operations }).toMatchObject({ i, kind: 'terminate', state: 'fulfilled' });
      expect(r.nodes.map((n) => n.name)).toEqual([names[i]]);
    }
    // CycleCloud removes a terminated node of a nodearray, or shows it Terminated/Off until then.
    const left = await eventually(
      async () => {
        const nodes = (await simNodes()).filter((n) => names.includes(n.Name as string));
        return nodes.every((n) => n.Status === 'Terminated' || n.Status === 'Off') ? nodes : undefined;
      },
      10_000,
      'the five nodes terminated in CycleCloud',
    );
    expect(left.length).toBeLessThanOrEqual(5);
  });
});

describe('§3 queue messages', () => {
  it('takes a base64 message with kind defaulted, rejects an invalid one once with reason and errors, and removes and counts a non-JSON one', async () => {
    // Prepare
    const healthBefore = (await (await host.api('/health')).json()) as { rejectedMessages: number };

    // Act
    await queue.sendMessage(encodeQueueMessage({ requestId: 'c-q-ok', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1, jobId: 'Q-1' }] }));
    await queue.sendMessage(encodeQueueMessage({ requestId: 'c-q-bad', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 0 }] }));
    await queue.sendMessage(encodeQueueMessage('{ this is not json'));
    const ok = await host.waitFinal('c-q-ok');
    const bad = await host.waitFinal('c-q-bad');
    const health = await eventually(
      async () => {
        const h = (await (await host.api('/health')).json()) as { rejectedMessages: number; queue: { depth: number }; poison: { count: number } };
        return h.rejectedMessages >= healthBefore.rejectedMessages + 1 && h.queue.depth === 0 ? h : undefined;
      },
      10_000,
      'the non-JSON message counted',
    );
    await sleep(1_500); // a retried message would change the record or land in the poison queue by now

    // Assess
    expect(ok).toMatchObject({ kind: 'scale', state: 'fulfilled' });
    expect(ok.demands[0]!.jobId).toBe('Q-1');
    expect(bad.state).toBe('rejected');
    expect(bad.reason).toContain('demands.0.count');
    expect((bad as RequestRecord & { errors?: Array<{ path: string }> }).errors?.map((e) => e.path)).toEqual(['demands.0.count']);
    expect(await (await host.api('/scale-requests/c-q-bad')).json()).toEqual(bad);
    expect(health.poison.count).toBe(0);
    expect(host.output()).toMatch(/"queueMessageId":"[^"]+"[^\n]*not JSON|not JSON[^\n]*"queueMessageId":"[^"]+"/);
  });

  it('creates once for a message delivered twice, rejects an unknown cluster, and records an invalid terminate as a terminate', async () => {
    // Prepare
    const twice = { requestId: 'c-q-twice', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] };

    // Act
    await queue.sendMessage(encodeQueueMessage(twice));
    await queue.sendMessage(encodeQueueMessage(twice));
    await queue.sendMessage(encodeQueueMessage({ requestId: 'c-q-nocluster', cluster: 'no-such-cluster', demands: [{ nodearray: 'mpi', count: 1 }] }));
    await queue.sendMessage(encodeQueueMessage({ kind: 'terminate', requestId: 'c-q-term-bad', cluster: 'hpc' }));
    const [once, unknownCluster, badTerminate] = (await Promise.all(['c-q-twice', 'c-q-nocluster', 'c-q-term-bad'].map((id) => host.waitFinal(id)))) as [
      RequestRecord,
      RequestRecord,
      RequestRecord,
    ];
    await eventually(async () => ((await (await host.api('/health')).json()) as { queue: { depth: number } }).queue.depth === 0 || undefined, 10_000, 'the queue drained');

    // Assess
    expect(once.state).toBe('fulfilled');
    expect(once.nodes).toHaveLength(1);
    expect(await creates('c-q-twice')).toHaveLength(1);
    expect(unknownCluster.state).toBe('rejected');
    expect(unknownCluster.reason).toContain('no-such-cluster');
    expect(badTerminate).toMatchObject({ kind: 'terminate', state: 'rejected' });
    expect(badTerminate.reason).toMatch(/ids, names, hostnames, ipAddresses, filter/);
  });

  it('rejects a demand that can never be placed, naming the limit (placement group: its bucket and size)', async () => {
    // Act
    await queue.sendMessage(encodeQueueMessage({ requestId: 'c-never-1', cluster: 'hpc', demands: [{ nodearray: 'nosuch', count: 1 }] }));
    await queue.sendMessage(encodeQueueMessage({ requestId: 'c-never-2', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_ND96'] }] }));
    expect(
      (
        await post('/scale-requests', {
          requestId: 'c-never-3',
          cluster: 'hpc',
          demands: [{ nodearray: 'mpi', count: 5, colocated: true }],
          callbackUrl: `${receiverUrl}/hooks/never`,
        })
      ).status,
    ).toBe(202);
    expect((await post('/scale-requests', { requestId: 'c-never-4', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 6, placementGroupId: 'big' }] })).status).toBe(202);
    const [unknownArray, unknownType, gang, explicitGroup] = (await Promise.all(['c-never-1', 'c-never-2', 'c-never-3', 'c-never-4'].map((id) => host.waitFinal(id)))) as [
      RequestRecord,
      RequestRecord,
      RequestRecord,
      RequestRecord,
    ];

    // Assess
    expect([unknownArray.state, unknownType.state, gang.state, explicitGroup.state]).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    expect(unknownArray.reason).toContain('nosuch');
    expect(unknownType.reason).toContain('Standard_ND96');
    for (const r of [gang, explicitGroup]) {
      expect(r.reason).toContain('Standard_HB120rs_v3');
      expect(r.reason).toMatch(/\b4\b/);
      expect(r.reason).toMatch(/placement group/);
    }
    expect(await creates('c-never')).toHaveLength(0);
    // A rejected request is final too: its callback comes, signed
    const callback = await eventually(async () => received.find((r) => r.path === '/hooks/never'), 15_000, 'the rejected request callback');
    expect(JSON.parse(callback.raw)).toMatchObject({ requestId: 'c-never-3', state: 'rejected' });
    expect(callback.headers['x-scaler-signature']).toBe(hmac(`${callback.headers['x-scaler-timestamp']}.${callback.raw}`));
  });

  it('uses the same CycleCloud requestId when a create is retried after a lost answer', async () => {
    // Prepare: the next create is reset before CycleCloud applies it
    const armed = await host.sim$('/__sim/faults', { method: 'POST', body: JSON.stringify({ method: 'POST', path: 'nodes/create', kind: 'reset', times: 1 }) });
    expect(armed.status).toBeLessThan(300);

    // Act
    expect(
      (await post('/scale-requests', { requestId: 'c-retry-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }] })).status,
    ).toBe(202);
    const record = await host.waitFinal('c-retry-1');

    // Assess
    const sent = (await creates('c-retry-1')).map((c) => (c.body as { requestId: string }).requestId);
    expect(record.state).toBe('fulfilled');
    expect(record.nodes).toHaveLength(1);
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(new Set(sent)).toEqual(new Set([record.operations[0]!.cycleCloudRequestId]));
  });

  it('re-plans a partial gang under a new derived CycleCloud requestId, into another placement group', async () => {
    // Prepare: CycleCloud adds only 2 of the next 4 mpi nodes
    const limited = await host.sim$('/__sim/limit-next-create', {
      method: 'POST',
      body: JSON.stringify({ cluster: 'hpc', nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', added: 2 }),
    });
    expect(limited.status).toBeLessThan(300);

    // Act
    expect((await post('/scale-requests', { requestId: 'c-gang-1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 4, colocated: true }] })).status).toBe(202);
    const record = await host.waitFinal('c-gang-1');
    const group = record.demands[0]!.placementGroupId!;
    type Status = { nodearrays: Array<{ name: string; buckets: Array<{ placementGroups: Array<{ name: string; activeCount: number }> }> }> };
    const groupOf = (s: Status) => s.nodearrays.find((n) => n.name === 'mpi')!.buckets[0]!.placementGroups.find((g) => g.name === group);
    // The status is the latest snapshot (taken every second here, later on a loaded machine): it
    // shows the group once one is taken after the create. A failure says what it showed instead.
    let seen: unknown;
    const shown = await eventually(
      async () => {
        const s = (await (await host.api('/clusters/hpc/status')).json()) as Status & { takenAt?: string };
        seen = { takenAt: s.takenAt, groups: s.nodearrays.find((n) => n.name === 'mpi')?.buckets[0]?.placementGroups };
        const g = groupOf(s);
        return g?.activeCount === 4 ? g : undefined;
      },
      30_000,
      `placement group ${group} in the cluster status`,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; the status showed ${JSON.stringify(seen)}; the record ${JSON.stringify({ demands: record.demands, operations: record.operations })}`);
    });

    // Assess
    const calls = await creates('c-gang-1');
    const ids = calls.map((c) => (c.body as { requestId: string }).requestId);
    // The request's own create ids (a batch's call carries them in its sets' ccscale-create tags)
    const own = calls.flatMap(memberCreatesOf).filter((id) => id.startsWith('c-gang-1'));
    expect(record.state).toBe('fulfilled');
    expect(record.demands[0]).toMatchObject({ requested: 4, ready: 4 });
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(2);
    expect(own).toEqual(['c-gang-1-g0', 'c-gang-1-g1']);
    expect(record.operations.map((o) => o.cycleCloudRequestId)).toEqual(expect.arrayContaining(ids));
    expect(record.nodes.filter((n) => n.status === 'Ready' && n.demand === 0)).toHaveLength(4);
    expect(shown).toEqual({ name: group, activeCount: 4 });
  }, 90_000);

  it('waits with a reason while there is no capacity, then ends partially_fulfilled or failed at the deadline', async () => {
    // Act (started before the HTTP tests)
    const outcome = await capacity!;
    if (!outcome.ok) throw outcome.error;
    const { waiting, nothing, partial, failed } = outcome.value;

    // Assess
    expect(['queued', 'planning', 'submitted']).toContain(waiting.state);
    expect(waiting.demands[0]!.reason).toMatch(/Standard_F32s_v2/);
    expect(['queued', 'planning', 'submitted']).toContain(nothing.state);
    expect(nothing.demands[0]!.reason).toMatch(/availableCount 0|no room|capacity/);
    expect(partial.state).toBe('partially_fulfilled');
    expect(partial.demands[0]).toMatchObject({ requested: 5, created: 3, ready: 3 });
    expect(partial.reason).toMatch(/deadline/);
    expect(failed.state).toBe('failed');
    expect(failed.demands[0]).toMatchObject({ requested: 2, created: 0 });
    expect(failed.reason).toMatch(/deadline/);
  }, 45_000);
});

describe('§4 health', () => {
  it('answers 200 with storage, per-cluster snapshot age, queue depth, poison and rejected counts', async () => {
    // Act
    const res = await fetch(`${host.base}/health`);
    const body = (await res.json()) as Record<string, unknown> & { clusters: Array<Record<string, unknown>> };

    // Assess
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ storage: { reachable: true }, queue: { depth: expect.any(Number) }, poison: { count: expect.any(Number) }, rejectedMessages: expect.any(Number) });
    expect(body.clusters).toEqual([expect.objectContaining({ cluster: 'hpc', stale: false, ageSeconds: expect.any(Number) })]);
  });

  it('turns 503 when a cluster’s snapshots keep failing, and 200 again when they succeed', async () => {
    // Prepare: CycleCloud answers 500 to the status read
    await host.sim$('/__sim/faults', { method: 'POST', body: JSON.stringify({ method: 'GET', path: '/clusters/hpc/status', kind: 'status', status: 500, times: 1000 }) });
    try {
      // Act
      const degraded = await eventually(
        async () => {
          const res = await fetch(`${host.base}/health`);
          return res.status === 503 ? ((await res.json()) as { clusters: Array<{ cluster: string; stale: boolean }> }) : undefined;
        },
        15_000,
        'health 503',
      );

      // Assess
      expect(degraded.clusters.find((c) => c.cluster === 'hpc')!.stale).toBe(true);
      expect(((await (await host.api('/clusters/hpc/status')).json()) as { stale: boolean }).stale).toBe(true);
    } finally {
      await host.sim$('/__sim/faults', { method: 'DELETE' });
    }
    await eventually(async () => ((await fetch(`${host.base}/health`)).status === 200 ? true : undefined), 15_000, 'health 200 again');
  }, 40_000);

  it('counts a configured cluster CycleCloud does not have as stale once its snapshots keep failing (never snapshotted ≠ never stale)', async () => {
    // Act
    const body = await eventually(
      async () => {
        const res = await fetch(`${ghost.base}/health`);
        return res.status === 503 ? ((await res.json()) as { clusters: Array<{ cluster: string; stale: boolean; takenAt: string | null }> }) : undefined;
      },
      15_000,
      'ghost health 503',
    );

    // Assess
    expect(body.clusters.find((c) => c.cluster === 'ghost')).toMatchObject({ stale: true, takenAt: null });
    expect(body.clusters.find((c) => c.cluster === 'hpc')).toMatchObject({ stale: false });
  }, 20_000);

  it('Ctrl-C stops npm start and everything it started within 20 s', async () => {
    // Prepare
    const simUrl = ghost.sim.url;
    const startedAt = Date.now();

    // Act
    const code = await ghost.stop();

    // Assess
    expect(code).toBe(0);
    expect(Date.now() - startedAt).toBeLessThan(20_000);
    await expect(fetch(simUrl)).rejects.toThrow();
    await expect(fetch(`${ghost.base}/health`)).rejects.toThrow();
  }, 25_000);
});
