import { describe, expect, it } from 'vitest';
import {
  explainPlan,
  getClusterStatus,
  getScaleOut,
  getScaleRequest,
  pauseScaleOut,
  resumeScaleOut,
  statusUrlFor,
  submitScaleRequest,
  submitTerminate,
} from '../../src/http/routes.ts';
import { Accepted, ClusterStatus, PlanResponse, Problem } from '../../src/http/schemas.ts';
import { RequestRecord } from '../../src/ledger/schemas.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { BASE, bodyOf, fakeDeps, headerOf, httpRequest, scaleBody, T0 } from './fakes.ts';

const problemOf = (res: { jsonBody?: unknown }) => Problem.parse(res.jsonBody);

describe('POST /api/scale-requests', () => {
  it('records and queues a valid request and answers 202 with the absolute status URL', async () => {
    // Prepare
    const { deps, world } = fakeDeps();
    // Act
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody(), query: 'code=fn-key-123456' }));
    // Assess
    expect(res.status).toBe(202);
    const body = Accepted.parse(res.jsonBody);
    expect(body).toEqual({ requestId: 'job-4711', state: 'queued', statusUrl: `${BASE}/api/scale-requests/job-4711` });
    expect(headerOf(res, 'location')).toBe(body.statusUrl);
    expect(world.submitted).toHaveLength(1);
    expect(world.submitted[0]).toMatchObject({ kind: 'scale', requestId: 'job-4711', cluster: 'hpc' });
    // The function key in the query must never travel into the status URL.
    expect(JSON.stringify(res)).not.toContain('fn-key-123456');
  });

  it('answers the same 202 with the current state when the same body comes again', async () => {
    const { deps, world } = fakeDeps();
    const first = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    world.records.get('job-4711')!.record.state = 'submitted';
    const again = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    expect(again.status).toBe(202);
    expect(bodyOf(again)).toEqual({ ...bodyOf(first), state: 'submitted' });
    expect(world.submitted).toHaveLength(1);
  });

  it('answers 409 problem+json when the requestId exists with a different body', async () => {
    const { deps } = fakeDeps();
    await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody({ demands: [{ nodearray: 'ondemand', count: 9 }] }) }));
    expect(res.status).toBe(409);
    expect(headerOf(res, 'content-type')).toBe('application/problem+json');
    expect(problemOf(res)).toMatchObject({ status: 409, code: 'HTTP_CONFLICT' });
    expect(problemOf(res).detail).toContain('job-4711');
  });

  it('answers 400 naming every bad field with its path', async () => {
    const { deps, world } = fakeDeps();
    const res = await submitScaleRequest(
      deps,
      httpRequest('POST', '/api/scale-requests', { body: scaleBody({ requestId: 'bad id!', demands: [{ nodearray: 'ondemand', count: 0 }, { count: 2 }] }) }),
    );
    expect(res.status).toBe(400);
    expect(headerOf(res, 'content-type')).toBe('application/problem+json');
    const p = problemOf(res);
    expect(p).toMatchObject({ status: 400, code: 'HTTP_VALIDATION', type: 'urn:cyclecloud-scaler:problem:validation' });
    const paths = p.errors!.map((e) => e.path);
    // A demand with no selector at all is named as a whole (docs/api.md §3: at least one selector).
    expect(paths).toEqual(expect.arrayContaining(['requestId', 'demands.0.count', 'demands.1']));
    expect(p.errors!.find((e) => e.path === 'demands.1')?.message).toContain('needs at least one selector');
    expect(p.detail).toContain('demands.0.count');
    expect(world.submitted).toHaveLength(0);
  });

  it('answers 400 on callbackUrl when its host is an IP literal the send-time check would refuse, and admits nothing', async () => {
    const policy = { allowedHosts: [] as string[], localDevelopment: false };
    for (const url of ['https://169.254.169.254/latest/meta-data', 'https://10.0.0.7/hook', 'https://[::1]/hook', 'https://168.63.129.16/x']) {
      const { deps, world } = fakeDeps({ callbackTarget: policy });
      const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody({ callbackUrl: url }) }));
      expect(res.status, url).toBe(400);
      const p = problemOf(res);
      expect(p.errors?.map((e) => e.path)).toEqual(['callbackUrl']);
      expect(p.errors?.[0]?.message).toMatch(/CALLBACK_ALLOWED_HOSTS/);
      expect(world.submitted).toHaveLength(0);
    }
    // Listed by the operator: allowed, private or not. A public literal and a name pass (DNS is checked at send time).
    for (const [url, allowed] of [
      ['https://10.0.0.7/hook', ['10.0.0.7']],
      ['https://52.1.2.3/hook', []],
      ['https://hooks.example.com/x', []],
    ] as const) {
      const { deps, world } = fakeDeps({ callbackTarget: { allowedHosts: allowed, localDevelopment: false } });
      const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody({ callbackUrl: url }) }));
      expect(res.status, url).toBe(202);
      expect(world.submitted).toHaveLength(1);
    }
  });

  it('takes an integer priority from -1000 to 1000 and names any other by its path', async () => {
    const { deps } = fakeDeps();
    for (const priority of [1.5, 1001, -1001, 'high']) {
      const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody({ priority }) }));
      expect(res.status, String(priority)).toBe(400);
      expect((problemOf(res).errors ?? []).map((e) => e.path)).toEqual(['priority']);
    }
    const ok = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody({ priority: -7 }) }));
    expect(ok.status).toBe(202);
  });

  it('names unknown fields by their own path', async () => {
    const { deps } = fakeDeps();
    const body = scaleBody({ urgency: 1, demands: [{ nodearray: 'ondemand', count: 1, colour: 'red', size: 2 }] });
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body }));
    expect(res.status).toBe(400);
    expect(problemOf(res).errors).toEqual(
      expect.arrayContaining([
        { path: 'urgency', message: 'is not a known field' },
        { path: 'demands.0.colour', message: 'is not a known field' },
        { path: 'demands.0.size', message: 'is not a known field' },
      ]),
    );
  });

  it('answers 400 for a body that is not JSON without quoting it back', async () => {
    const { deps } = fakeDeps();
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw: '{"requestId": "secret-ish-text' }));
    expect(res.status).toBe(400);
    expect(problemOf(res).code).toBe('HTTP_NOT_JSON');
    expect(JSON.stringify(res.jsonBody)).not.toContain('secret-ish-text');
  });

  it('answers 400 for an empty body and for a JSON array', async () => {
    const { deps } = fakeDeps();
    const empty = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw: '' }));
    expect(empty.status).toBe(400);
    expect(problemOf(empty).detail).toContain('empty');
    const array = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: [1, 2] }));
    expect(array.status).toBe(400);
    expect(problemOf(array).code).toBe('HTTP_VALIDATION');
  });

  it('answers 500 problem+json without internals when the ledger fails', async () => {
    const logs = captureLogs();
    const { deps } = fakeDeps({
      logger: logs.logger,
      submitRequest: async () => {
        throw new Error('table storage said ECONNREFUSED at 10.0.0.4');
      },
    });
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    expect(res.status).toBe(500);
    expect(problemOf(res).code).toBe('HTTP_INTERNAL');
    expect(JSON.stringify(res.jsonBody)).not.toContain('ECONNREFUSED');
    expect(logs.entries().some((e) => e.level === 'error' && e.route === 'scale-requests')).toBe(true);
  });
});

describe('POST /api/terminate', () => {
  it('defaults kind to terminate and answers 202', async () => {
    const { deps, world } = fakeDeps();
    const res = await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body: { requestId: 'drain-17', cluster: 'hpc', names: ['ondemand-3'] } }));
    expect(res.status).toBe(202);
    expect(bodyOf(res)).toEqual({ requestId: 'drain-17', state: 'queued', statusUrl: `${BASE}/api/scale-requests/drain-17` });
    expect(world.submitted[0]).toMatchObject({ kind: 'terminate', names: ['ondemand-3'] });
  });

  it('refuses a scale body with 400 on kind', async () => {
    const { deps, world } = fakeDeps();
    const res = await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body: { ...scaleBody(), kind: 'scale' } }));
    expect(res.status).toBe(400);
    expect(problemOf(res).errors).toEqual([expect.objectContaining({ path: 'kind' })]);
    expect(world.submitted).toHaveLength(0);
  });

  it('answers 400 when no node selector is given', async () => {
    const { deps } = fakeDeps();
    const res = await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body: { requestId: 'drain-18', cluster: 'hpc' } }));
    expect(res.status).toBe(400);
    expect(problemOf(res).errors!.map((e) => e.path)).toContain('ids');
  });

  it('is idempotent on requestId like scale requests (409 on a different body)', async () => {
    const { deps } = fakeDeps();
    const body = { requestId: 'drain-19', cluster: 'hpc', ids: ['a'] };
    expect((await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body }))).status).toBe(202);
    expect((await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body }))).status).toBe(202);
    expect((await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body: { ...body, ids: ['b'] } }))).status).toBe(409);
  });
});

describe('GET /api/scale-requests/{requestId}', () => {
  it('answers the public record', async () => {
    const { deps } = fakeDeps();
    await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    const res = await getScaleRequest(deps, httpRequest('GET', '/api/scale-requests/job-4711', { params: { requestId: 'job-4711' } }));
    expect(res.status).toBe(200);
    const record = RequestRecord.parse(res.jsonBody);
    expect(record).toMatchObject({ requestId: 'job-4711', state: 'queued', kind: 'scale' });
    expect(record.demands.map((d) => d.requested)).toEqual([4, 2]);
  });

  it('keeps the record exactly docs/api.md §5 unless ?explain=true adds where each demand went and why', async () => {
    const { deps, world } = fakeDeps();
    await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    const stored = world.records.get('job-4711')!.record;
    Object.assign(stored.demands[0]!, { nodearray: 'ondemand', bucketId: 'd81e001a', explanation: 'ondemand/Standard_HC44rs (bucket d81e001a): …' });
    const plain = await getScaleRequest(deps, httpRequest('GET', '/api/scale-requests/job-4711', { params: { requestId: 'job-4711' } }));
    expect(Object.keys((plain.jsonBody as RequestRecord).demands[0]!).sort()).toEqual(['created', 'index', 'machineType', 'placementGroupId', 'ready', 'reason', 'requested']);
    const explained = await getScaleRequest(deps, httpRequest('GET', '/api/scale-requests/job-4711', { params: { requestId: 'job-4711' }, query: 'explain=true' }));
    expect((explained.jsonBody as RequestRecord).demands[0]).toMatchObject({ nodearray: 'ondemand', bucketId: 'd81e001a', explanation: expect.stringContaining('d81e001a') });
  });

  it('answers 404 problem+json for an unknown request', async () => {
    const { deps } = fakeDeps();
    const res = await getScaleRequest(deps, httpRequest('GET', '/api/scale-requests/nope', { params: { requestId: 'nope' } }));
    expect(res.status).toBe(404);
    expect(problemOf(res)).toMatchObject({ code: 'HTTP_NOT_FOUND' });
    expect(problemOf(res).detail).toContain('nope');
  });

  it('answers 404 problem+json saying so for a request deleted by retention', async () => {
    const { deps } = fakeDeps();
    const ledger = {
      ...deps.ledger,
      tombstone: async (id: string) => (id === 'old' ? { state: 'fulfilled', finalAt: '2026-01-01T00:00:00.000Z', expiredAt: '2026-02-01T00:00:00.000Z' } : null),
    };
    const res = await getScaleRequest({ ...deps, ledger }, httpRequest('GET', '/api/scale-requests/old', { params: { requestId: 'old' } }));
    expect(res.status).toBe(404);
    expect(res.headers).toMatchObject({ 'content-type': 'application/problem+json' });
    expect(problemOf(res)).toMatchObject({ code: 'HTTP_NOT_FOUND' });
    expect(problemOf(res).detail).toBe(
      'request "old" expired: it ended fulfilled at 2026-01-01T00:00:00.000Z and was deleted at 2026-02-01T00:00:00.000Z (records are kept RETENTION_DAYS days)',
    );
    const unknown = await getScaleRequest({ ...deps, ledger }, httpRequest('GET', '/api/scale-requests/nope', { params: { requestId: 'nope' } }));
    expect(problemOf(unknown).detail).not.toContain('expired');
  });

  it('answers 400 naming requestId when it is not a valid id', async () => {
    const { deps } = fakeDeps();
    const res = await getScaleRequest(deps, httpRequest('GET', '/api/scale-requests/x', { params: { requestId: 'a b' } }));
    expect(res.status).toBe(400);
    expect(problemOf(res).errors).toEqual([expect.objectContaining({ path: 'requestId' })]);
  });
});

describe('GET /api/clusters/{cluster}/status', () => {
  it('answers exactly the fields of docs/api.md §4', async () => {
    const { deps } = fakeDeps();
    const res = await getClusterStatus(deps, httpRequest('GET', '/api/clusters/hpc/status', { params: { cluster: 'hpc' } }));
    expect(res.status).toBe(200);
    const body = bodyOf<Record<string, unknown>>(res);
    expect(ClusterStatus.strict().safeParse(body).success).toBe(true);
    expect(Object.keys(body).sort()).toEqual(['ageSeconds', 'cluster', 'nodearrays', 'stale', 'takenAt']);
    const status = ClusterStatus.parse(body);
    expect(status).toMatchObject({ cluster: 'hpc', takenAt: new Date(T0).toISOString(), ageSeconds: 30, stale: false });
    const mpi = status.nodearrays.find((n) => n.name === 'mpi')!.buckets[0]!;
    expect(Object.keys(mpi).sort()).toEqual(
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
    expect(mpi.placementGroups).toEqual([{ name: 'pg-a', activeCount: 4 }]);
    expect(mpi.spot).toBe(false);
  });

  it('says stale when the store says so, or when older than staleAfterMs', async () => {
    const { deps, world } = fakeDeps();
    world.healths.set('hpc', { takenAt: new Date(T0).toISOString(), ageSeconds: 30, consecutiveFailures: 3, stale: true });
    const byStore = await getClusterStatus(deps, httpRequest('GET', '/api/clusters/hpc/status', { params: { cluster: 'hpc' } }));
    expect(bodyOf(byStore).stale).toBe(true);

    const aged = fakeDeps({ staleAfterMs: 10_000 });
    const byAge = await getClusterStatus(aged.deps, httpRequest('GET', '/api/clusters/hpc/status', { params: { cluster: 'hpc' } }));
    expect(bodyOf(byAge).stale).toBe(true);
  });

  it('answers 404 for an unknown cluster', async () => {
    const { deps } = fakeDeps();
    const res = await getClusterStatus(deps, httpRequest('GET', '/api/clusters/nope/status', { params: { cluster: 'nope' } }));
    expect(res.status).toBe(404);
    expect(problemOf(res).detail).toContain('nope');
  });
});

describe('POST /api/plan', () => {
  it('explains demands by resources: nodearray, bucket, shared group and why not the others', async () => {
    const { deps } = fakeDeps();
    const body = scaleBody({
      demands: [
        { count: 2, minVcpus: 100, colocated: true },
        { count: 2, minVcpus: 100, colocated: true },
        { count: 1, minGpus: 1 },
      ],
    });
    const res = await explainPlan(deps, httpRequest('POST', '/api/plan', { body }));
    expect(res.status).toBe(200);
    const answer = PlanResponse.strict().parse(res.jsonBody);
    const [a, b, c] = answer.demands;
    expect(a).toMatchObject({ status: 'placed', nodearray: 'mpi', bucketId: 'e0a1' });
    expect(b!.placements[0]!.placementGroupId).toBe(a!.placements[0]!.placementGroupId);
    expect(b!.explanation).toContain('shared with an earlier demand of this request');
    expect(a!.considered.map((v) => [v.nodearray, v.verdict])).toEqual([
      ['mpi', 'chosen'],
      ['ondemand', 'unsuitable'],
      ['ondemand', 'unsuitable'],
    ]);
    expect(c).toMatchObject({ status: 'rejected', code: 'PLAN_NO_MATCHING_BUCKET', nodearray: null });
    expect(c!.explanation).toContain('minGpus ≥ 1');
  });

  it('answers the sets CycleCloud would receive and why, creating nothing', async () => {
    // Prepare
    const { deps, world } = fakeDeps();
    const body = scaleBody({
      demands: [
        { nodearray: 'ondemand', count: 4, machineTypes: ['Standard_HC44rs'], placementGroupId: 'pg0' },
        { nodearray: 'mpi', count: 6, colocated: true },
      ],
    });
    // Act
    const res = await explainPlan(deps, httpRequest('POST', '/api/plan', { body }));
    // Assess
    expect(res.status).toBe(200);
    const answer = PlanResponse.strict().parse(res.jsonBody);
    expect(answer).toMatchObject({ cluster: 'hpc', snapshotTakenAt: new Date(T0).toISOString(), paused: false });
    expect(answer.createRequest.sets).toEqual([
      expect.objectContaining({ nodearray: 'ondemand', count: 4, placementGroupId: 'pg0', definition: { machineType: 'Standard_HC44rs' } }),
    ]);
    expect(answer.sets).toEqual([expect.objectContaining({ nodearray: 'ondemand', bucketId: 'd81e001a', count: 4, placementGroupId: 'pg0' })]);
    expect(answer.sets[0]).not.toHaveProperty('set');
    const [first, second] = answer.demands;
    expect(first).toMatchObject({ index: 0, requested: 4, planned: 4, status: 'placed' });
    expect(second).toMatchObject({ index: 1, requested: 6, planned: 0, status: 'rejected', code: 'PLAN_EXCEEDS_PLACEMENT_GROUP' });
    expect(second!.reason).toMatch(/4/);
    // Nothing was admitted or queued; in-flight capacity was read since the snapshot.
    expect(world.submitted).toHaveLength(0);
    expect(world.records.size).toBe(0);
    expect(world.inFlightCalls).toEqual([{ cluster: 'hpc', sinceMs: T0 }]);
  });

  it('reports paused scale-out', async () => {
    const { deps, world } = fakeDeps();
    world.paused = true;
    const res = await explainPlan(deps, httpRequest('POST', '/api/plan', { body: scaleBody() }));
    expect(bodyOf(res).paused).toBe(true);
  });

  it('answers 404 saying the cluster has no snapshot', async () => {
    const { deps } = fakeDeps();
    const res = await explainPlan(deps, httpRequest('POST', '/api/plan', { body: scaleBody({ cluster: 'other' }) }));
    expect(res.status).toBe(404);
    expect(problemOf(res).detail).toMatch(/"other" has no snapshot/);
  });

  it('answers 400 on an invalid body and on a terminate body', async () => {
    const { deps } = fakeDeps();
    const bad = await explainPlan(deps, httpRequest('POST', '/api/plan', { body: scaleBody({ demands: [] }) }));
    expect(bad.status).toBe(400);
    expect(problemOf(bad).errors!.map((e) => e.path)).toContain('demands');
    const terminate = await explainPlan(deps, httpRequest('POST', '/api/plan', { body: { kind: 'terminate', requestId: 'x', cluster: 'hpc', ids: ['a'] } }));
    expect(terminate.status).toBe(400);
    expect(problemOf(terminate).errors![0]!.path).toBe('kind');
  });
});

describe('scale-out switch', () => {
  it('pauses, reports and resumes', async () => {
    const { deps, world } = fakeDeps();
    expect(bodyOf(await getScaleOut(deps, httpRequest('GET', '/api/scale-out')))).toEqual({ paused: false });
    const paused = await pauseScaleOut(deps, httpRequest('POST', '/api/scale-out/pause'));
    expect(paused.status).toBe(200);
    expect(bodyOf(paused)).toEqual({ paused: true });
    expect(bodyOf(await getScaleOut(deps, httpRequest('GET', '/api/scale-out')))).toEqual({ paused: true });
    expect(bodyOf(await resumeScaleOut(deps, httpRequest('POST', '/api/scale-out/resume')))).toEqual({ paused: false });
    expect(world.pausedBy).toEqual(['http', 'http']);
  });

  it('answers what the state says when a setting still holds scale-out after resume', async () => {
    const { deps } = fakeDeps({ state: { isPaused: async () => true, setPaused: async () => {}, counters: async () => ({}) } });
    expect(bodyOf(await resumeScaleOut(deps, httpRequest('POST', '/api/scale-out/resume')))).toEqual({ paused: true });
  });
});

describe('statusUrlFor', () => {
  it('keeps the caller-facing origin, drops the query and encodes the id', () => {
    expect(statusUrlFor('https://fn.azurewebsites.net/api/scale-requests?code=k', 'a:b')).toBe('https://fn.azurewebsites.net/api/scale-requests/a%3Ab');
  });
});
