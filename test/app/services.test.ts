/**
 * The composition root over real azurite and the real simulator: what only shows once the parts are
 * wired — planning freezes on a stale cluster, an unknown cluster is refused, settings reach the parts.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServices, type Services } from '../../src/app/services.ts';
import { runSnapshotJob } from '../../src/app/jobs.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { startMetrics } from '../../src/platform/metrics-host.ts';
import { parsePrometheus, prometheusParserMissing, sampleSum } from '../helpers/prometheus.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';
import { createCycleCloudClient, type CycleCloudClient } from '../../src/cyclecloud/client.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';

let sim: SimulatorHandle;
let clock = Date.parse('2026-11-28T02:00:00.000Z');
const now = () => clock;

async function services(extra: Record<string, string> = {}): Promise<Services> {
  return createServices(
    scalerEnv(sim, freshPrefix('svc'), extra, inject('storageConnectionString')),
    // The test drives the queue handler itself: no work started behind its back.
    { mode: 'local', now, logger: silentLogger, fastPathConcurrency: 0 },
  );
}

const meta = (id: string) => ({ messageId: id, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' });

beforeAll(async () => {
  sim = await startSimulator({ port: 0, stepMs: 20, now });
});
afterAll(async () => {
  await sim?.close();
});

describe('services', () => {
  it('freezes planning on a stale cluster: the request waits, saying why, and nothing is created', async () => {
    // Prepare: one good snapshot, then CycleCloud's status fails three times in a row
    const s = await services({ SNAPSHOT_STALE_AFTER_FAILURES: '3' });
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    sim.sim.faults.add({ method: 'GET', path: '/status', kind: 'status', status: 500, times: 1000 });
    for (let i = 0; i < 3; i++) {
      clock += 60_000;
      await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    }
    const createsBefore = sim.sim.calls.filter((c) => c.path.endsWith('/nodes/create')).length;

    // Act
    const msg = { requestId: 'stale-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
    await s.pipeline.submitRequest({ kind: 'scale', ...msg });
    await s.pipeline.handle(msg, meta('m1'), silentLogger);
    const record = await s.pipeline.ledger.getRecord('stale-1');

    // Assess
    sim.sim.faults.clear();
    expect((await s.snapshots.health('hpc'))?.stale).toBe(true);
    expect(record?.state).toBe('queued');
    expect(record?.reason).toMatch(/cluster hpc is stale: its last snapshot is 180 s old and CycleCloud could not be read \(\d+ consecutive failures/);
    expect(sim.sim.calls.filter((c) => c.path.endsWith('/nodes/create')).length).toBe(createsBefore);
    await s.close();
  });

  it('plans again once CycleCloud answers: the stale flag forces a live read', async () => {
    // Prepare: stale as above
    const s = await services();
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    sim.sim.faults.add({ method: 'GET', path: '/status', kind: 'status', status: 500, times: 1000 });
    for (let i = 0; i < 3; i++) await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    sim.sim.faults.clear();

    // Act: the stored snapshot is young, but the cluster is flagged stale
    const msg = { requestId: 'recovered-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
    await s.pipeline.submitRequest({ kind: 'scale', ...msg });
    await s.pipeline.handle(msg, meta('m2'), silentLogger);

    // Assess
    expect((await s.pipeline.ledger.getRecord('recovered-1'))?.state).toBe('submitted');
    expect((await s.snapshots.health('hpc'))?.stale).toBe(false);
    await s.close();
  });

  it('rejects a request for a cluster CycleCloud does not have, naming it', async () => {
    const s = await services();
    const msg = { requestId: 'nocluster-1', cluster: 'nope', demands: [{ nodearray: 'ondemand', count: 1 }] };
    await s.pipeline.submitRequest({ kind: 'scale', ...msg });
    await s.pipeline.handle(msg, meta('m3'), silentLogger);
    const record = await s.pipeline.ledger.getRecord('nocluster-1');
    expect(record?.state).toBe('rejected');
    expect(record?.reason).toMatch(/cluster nope does not exist in CycleCloud/);
    await s.close();
  });

  it.skipIf(prometheusParserMissing() !== null)('counts each request once in scaler.requests, however it came: over HTTP, or by the queue alone, redelivered or not', async () => {
    const metrics = startMetrics();
    try {
      const s = await services();
      await s.freshSnapshot('hpc', -1);
      const http = { kind: 'scale' as const, requestId: 'count-http', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
      const queued = { requestId: 'count-queue', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };

      await s.pipeline.submitRequest(http);
      await s.pipeline.handle(http, meta('c1'), silentLogger);
      await s.pipeline.handle(queued, meta('c2'), silentLogger);
      await s.pipeline.handle(queued, { ...meta('c2'), dequeueCount: 2 }, silentLogger);
      await s.pipeline.handle({ ...queued, demands: [{ nodearray: 'ondemand', count: 3 }] }, meta('c3'), silentLogger);

      const families = parsePrometheus(await metrics.prometheusText());
      expect(sampleSum(families, 'scaler_requests_total', { cluster: 'hpc', outcome: 'created' })).toBe(2);
      expect(sampleSum(families, 'scaler_requests_total', { cluster: 'hpc', outcome: 'duplicate' })).toBe(0);
      expect(sampleSum(families, 'scaler_requests_total', { cluster: 'hpc', outcome: 'conflict' })).toBe(1);
      expect(sampleSum(families, 'scaler_messages_rejected_total')).toBe(1);
      // The conflicting message is recorded as a rejected entry of its own: final once, when written
      expect(sampleSum(families, 'scaler_requests_completed_total', { outcome: 'rejected' })).toBe(1);
      await s.close();
    } finally {
      await metrics.shutdown();
    }
  });

  it.skipIf(prometheusParserMissing() !== null)('counts the nodes of a create whose answer was lost once, when it is reconciled by request id', async () => {
    // Prepare: CycleCloud applies the create, then the answer is lost (a 502: ambiguous)
    const metrics = startMetrics();
    const own = await startSimulator({ port: 0, stepMs: 20 }); // the file's simulator is full by now
    const client = createCycleCloudClient({ baseUrl: own.url, credentials: staticCredentialProvider({ username: own.username, password: own.password }) });
    let lost = 0;
    const lossy: CycleCloudClient = {
      ...client,
      createNodes: async (...a) => {
        await client.createNodes(...a);
        lost++;
        throw new CycleCloudError('CC_UNAVAILABLE', 'HTTP 502', { status: 502, ambiguous: true });
      },
    };
    try {
      const s = await createServices(scalerEnv(own, freshPrefix('svcr'), { CREATE_WINDOW_MS: '0' }, inject('storageConnectionString')), {
        mode: 'local',
        logger: silentLogger,
        fastPathConcurrency: 0,
        cyclecloud: lossy,
      });
      const msg = { requestId: 'count-reconciled', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'] }] };
      // Act
      await s.pipeline.handle(msg, meta('r1'), silentLogger);
      // Assess: one call, its 2 nodes counted once, as requested and in the latency, by the reconcile
      const entry = await s.pipeline.ledger.get('count-reconciled');
      expect(lost, JSON.stringify(entry?.record)).toBe(1);
      expect(entry?.attempts.map((a) => [a.state, a.sets.map((x) => x.added)])).toEqual([['accepted', [2]]]);
      const families = parsePrometheus(await metrics.prometheusText());
      expect(sampleSum(families, 'scaler_nodes_requested_total', { cluster: 'hpc', nodearray: 'ondemand', machine_type: 'Standard_F32s_v2' })).toBe(2);
      expect(sampleSum(families, 'scaler_create_calls_total', { outcome: 'CC_UNAVAILABLE' })).toBe(1);
      expect(sampleSum(families, 'scaler_create_latency_count', { cluster: 'hpc' })).toBe(1);
      await s.close();
    } finally {
      await metrics.shutdown();
      await own.close();
    }
  });
});
