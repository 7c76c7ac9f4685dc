/**
 * The HTTP handlers over the real deps on azurite: ledger, intake, scaler state, snapshot store,
 * capacity memory, queue depth. Requests are real `HttpRequest` objects.
 */
import { CapacityReservations, inFlightOf } from '../../src/requests/reservations.ts';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { HttpDeps } from '../../src/http/deps.ts';
import { queueDepthFrom } from '../../src/http/deps.ts';
import { explainPlan, getClusterStatus, getHealth, getScaleRequest, pauseScaleOut, resumeScaleOut, submitScaleRequest, submitTerminate } from '../../src/http/routes.ts';
import { ClusterStatus, Health, PlanResponse } from '../../src/http/schemas.ts';
import { plan } from '../../src/planning/planner.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { decodeQueueMessage, Storage } from '../../src/platform/storage.ts';
import { submitRequest } from '../../src/requests/intake.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { storageQueueSender } from '../../src/requests/queue.ts';
import { RequestRecord } from '../../src/ledger/schemas.ts';
import { ScalerState } from '../../src/requests/state.ts';
import { CapacityMemory } from '../../src/snapshots/capacity-store.ts';
import { statusView } from '../../src/snapshots/snapshot.ts';
import { SnapshotStore } from '../../src/snapshots/store.ts';
import { uniqueNames } from '../helpers/names.ts';
import { freePort } from '../helpers/net.ts';
import { httpRequest, scaleBody, snapshotFixture } from './fakes.ts';

const now = Date.parse('2026-11-28T02:00:00.000Z');
const clock = () => now;

function realDeps(storage: Storage, names: ReturnType<typeof uniqueNames>, over: Partial<HttpDeps> = {}): { deps: HttpDeps; snapshots: SnapshotStore } {
  const ledger = new RequestLedger({ storage, names, now: clock });
  const state = new ScalerState({ storage, names, now: clock });
  const snapshots = new SnapshotStore(storage, names, { now: clock, failureThreshold: 3 });
  const capacity = new CapacityMemory(storage, names);
  const queue = storageQueueSender(storage, names.scaleQueue);
  const reservations = new CapacityReservations({ storage, names });
  const deps: HttpDeps = {
    now: clock,
    logger: silentLogger,
    submitRequest: (m) => submitRequest({ ledger, queue, now: clock }, m),
    // As composed in createServices: in flight is what the cluster's reservations hold.
    ledger: {
      getRecord: (id) => ledger.getRecord(id),
      tombstone: (id) => ledger.tombstone(id),
      inFlight: async (cluster, sinceMs) => inFlightOf((await reservations.read(cluster)).items, sinceMs),
    },
    state,
    snapshots,
    capacity,
    plan,
    statusView: (s, nowMs, o) => statusView(s, nowMs, o),
    configuredClusters: () => ['hpc'],
    queueDepth: queueDepthFrom(storage),
    queues: { scaleQueue: names.scaleQueue, scalePoisonQueue: names.scalePoisonQueue },
    signingSecret: async () => undefined,
    ...over,
  };
  return { deps, snapshots };
}

describe('HTTP API on azurite', () => {
  let storage: Storage;
  let names: ReturnType<typeof uniqueNames>;
  let deps: HttpDeps;
  let snapshots: SnapshotStore;

  beforeAll(async () => {
    storage = Storage.fromConnectionString(inject('storageConnectionString'));
    names = uniqueNames();
    await storage.ensure({ tables: [names.requestsTable, names.stateTable, names.snapshotsTable, names.capacityTable], queues: [names.scaleQueue] });
    ({ deps, snapshots } = realDeps(storage, names));
  });

  it('records and enqueues a scale request once, answers duplicates and conflicts, and shows the record', async () => {
    // Act
    const first = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    const again = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    const conflict = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody({ cluster: 'other' }) }));
    const got = await getScaleRequest(deps, httpRequest('GET', '/api/scale-requests/job-4711', { params: { requestId: 'job-4711' } }));
    // Assess
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.jsonBody).toEqual(first.jsonBody);
    expect(conflict.status).toBe(409);
    expect(got.status).toBe(200);
    expect(RequestRecord.parse(got.jsonBody)).toMatchObject({ requestId: 'job-4711', state: 'queued', demands: [{ requested: 4 }, { requested: 2 }] });
    // The queue path does the work: the message is on the scale queue as the Functions host expects it.
    const peeked = await storage.queue(names.scaleQueue).peekMessages({ numberOfMessages: 32 });
    const bodies = peeked.peekedMessageItems.map((m) => JSON.parse(decodeQueueMessage(m.messageText)) as { requestId: string });
    expect(bodies.length).toBeGreaterThanOrEqual(1);
    expect(bodies.every((b) => b.requestId === 'job-4711')).toBe(true);
  });

  it('accepts a terminate request on the same ledger', async () => {
    const res = await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body: { requestId: 'drain-1', cluster: 'hpc', names: ['ondemand-1'] } }));
    expect(res.status).toBe(202);
    const got = await getScaleRequest(deps, httpRequest('GET', '/', { params: { requestId: 'drain-1' } }));
    expect(RequestRecord.parse(got.jsonBody)).toMatchObject({ kind: 'terminate', state: 'queued' });
  });

  it('serves the stored snapshot, plans against it, and reports health until it goes stale', async () => {
    // Prepare
    expect((await getClusterStatus(deps, httpRequest('GET', '/', { params: { cluster: 'hpc' } }))).status).toBe(404);
    const before = Health.parse((await getHealth(deps, httpRequest('GET', '/api/health'))).jsonBody);
    expect(before.clusters).toEqual([{ cluster: 'hpc', takenAt: null, ageSeconds: null, stale: false, consecutiveFailures: 0 }]);
    await snapshots.saveSnapshot(snapshotFixture({ takenAt: new Date(now - 20_000).toISOString() }));
    await snapshots.recordSuccess('hpc', now);

    // Act + Assess: status
    const status = await getClusterStatus(deps, httpRequest('GET', '/', { params: { cluster: 'hpc' } }));
    expect(status.status).toBe(200);
    expect(ClusterStatus.strict().parse(status.jsonBody)).toMatchObject({ cluster: 'hpc', ageSeconds: 20, stale: false });

    // plan, with the request admitted above counted as nothing in flight yet (not submitted)
    const planned = await explainPlan(deps, httpRequest('POST', '/api/plan', { body: scaleBody({ requestId: 'plan-1' }) }));
    expect(planned.status).toBe(200);
    const answer = PlanResponse.parse(planned.jsonBody);
    expect(answer.demands.map((d) => d.status)).toEqual(['placed', 'placed']);
    expect(answer.createRequest.sets.reduce((n, s) => n + s.count, 0)).toBe(6);
    expect((await getScaleRequest(deps, httpRequest('GET', '/', { params: { requestId: 'plan-1' } }))).status).toBe(404);

    // health: ok, then stale after three failed captures
    const ok = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(ok.status).toBe(200);
    const okBody = Health.parse(ok.jsonBody);
    expect(okBody).toMatchObject({ status: 'ok', storage: { reachable: true }, poison: { name: names.scalePoisonQueue, count: 0 }, paused: false });
    expect(okBody.queue.depth).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 3; i++) await snapshots.recordFailure('hpc', new Error('CycleCloud unreachable'), now);
    const stale = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(stale.status).toBe(503);
    expect(Health.parse(stale.jsonBody).clusters[0]).toMatchObject({ cluster: 'hpc', stale: true, consecutiveFailures: 3 });
  });

  it('pauses and resumes scale-out in the state table', async () => {
    expect((await pauseScaleOut(deps, httpRequest('POST', '/api/scale-out/pause'))).jsonBody).toEqual({ paused: true });
    expect(await new ScalerState({ storage, names }).isPaused()).toBe(true);
    expect((await resumeScaleOut(deps, httpRequest('POST', '/api/scale-out/resume'))).jsonBody).toEqual({ paused: false });
    expect(await new ScalerState({ storage, names }).isPaused()).toBe(false);
  });

  it('answers 503 storage unreachable within its timeout when storage is down', async () => {
    const port = await freePort();
    const dead = Storage.fromConnectionString(
      `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${Buffer.from('k').toString('base64')};QueueEndpoint=http://127.0.0.1:${port}/devstoreaccount1;TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1`,
    );
    const { deps: down } = realDeps(dead, names, { healthTimeoutMs: 500 });
    const res = await getHealth(down, httpRequest('GET', '/api/health'));
    expect(res.status).toBe(503);
    expect(Health.parse(res.jsonBody)).toMatchObject({ status: 'degraded', storage: { reachable: false } });
  });
});
