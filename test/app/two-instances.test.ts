/**
 * Two instances of the scaler on one storage account and one CycleCloud (the simulator, each create
 * taking 100 ms): requests pour into both at once. The fleet-wide governor keeps at most one create
 * (and one batch) per cluster in flight across both, batches still form, and every request gets its
 * one node exactly once, with no over-ask.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServices, type Services } from '../../src/app/services.ts';
import { createCycleCloudClient, type CycleCloudClient } from '../../src/cyclecloud/client.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { REQUEST_TAG } from '../../src/cyclecloud/tags.ts';
import { createCallsOf, memberCreatesOf } from '../helpers/creates.ts';
import { scalerEnv } from '../helpers/scaler-env.ts';

let sim: SimulatorHandle;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, stepMs: 20 });
});
afterAll(async () => {
  await sim?.close();
});

/** Creates in flight at CycleCloud right now, across both instances, and the most ever seen. */
const inFlight = { now: 0, most: 0 };

function countingClient(): CycleCloudClient {
  const client = createCycleCloudClient({ baseUrl: sim.url, credentials: staticCredentialProvider({ username: sim.username, password: sim.password }) });
  return {
    ...client,
    createNodes: async (...a) => {
      inFlight.now++;
      inFlight.most = Math.max(inFlight.most, inFlight.now);
      try {
        return await client.createNodes(...a);
      } finally {
        inFlight.now--;
      }
    },
  };
}

async function instance(prefix: string): Promise<Services> {
  return createServices(
    scalerEnv(sim, prefix, { CREATE_WINDOW_MS: '50', CREATE_WINDOW_MAX_MS: '500' }, inject('storageConnectionString')),
    // The test delivers the queue's messages itself.
    { mode: 'local', logger: silentLogger, fastPathConcurrency: 0, cyclecloud: countingClient() },
  );
}

describe('two instances on one storage', () => {
  it('keep one create per cluster in flight across both, batch, and create every request once', async () => {
    // Prepare: two instances sharing tables and queues; each CycleCloud create takes 100 ms
    const prefix = `two${randomBytes(4).toString('hex')}`;
    const [a, b] = [await instance(prefix), await instance(prefix)];
    sim.sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'latency', latencyMs: 100, times: 10_000 });
    await a.freshSnapshot('hpc', -1);
    const ids = Array.from({ length: 60 }, (_, i) => `two-${prefix}-${i}`);
    const message = (id: string) => ({ kind: 'scale', requestId: id, cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] });
    let seq = 0;
    const deliver = (s: Services, id: string) => s.pipeline.handle(message(id), { messageId: `m${++seq}`, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);

    // Act: 30 requests into each instance at once; a request told to wait is delivered again, as the queue would
    let open = ids;
    for (let round = 0; round < 10 && open.length > 0; round++) {
      await Promise.all(open.map((id, i) => deliver(i % 2 === 0 ? a : b, id)));
      const records = await Promise.all(open.map((id) => a.pipeline.ledger.getRecord(id)));
      open = open.filter((_, i) => records[i]?.state !== 'submitted');
    }

    // Assess
    expect(open).toEqual([]);
    expect(inFlight.most).toBe(1);
    const mine = sim.sim.nodes('hpc').filter((n) => ids.includes(String((n.Tags as Record<string, string> | undefined)?.[REQUEST_TAG])));
    expect(mine).toHaveLength(60);
    expect(new Set(mine.map((n) => (n.Tags as Record<string, string>)[REQUEST_TAG])).size).toBe(60);
    const calls = createCallsOf(sim.sim.calls, 'two-').filter((c) => c.status === 202);
    expect(calls.flatMap(memberCreatesOf)).toHaveLength(60);
    // Batched: fewer calls than requests
    expect(calls.length).toBeLessThan(60);
    expect((await a.pipeline.state.counters()).overAsk ?? 0).toBe(0);
    // Both instances see the same fleet figures
    const [va, vb] = await Promise.all([a.http.governor!.view(['hpc']), b.http.governor!.view(['hpc'])]);
    expect(va.clusters).toEqual(vb.clusters);
    expect(va.clusters[0]).toMatchObject({ createsInFlight: 0, batchesInFlight: 0 });
    expect(va.clusters[0]!.createsPerMinute).toBeGreaterThanOrEqual(calls.length);
    await Promise.all([a.close(), b.close()]);
  }, 120_000);
});
