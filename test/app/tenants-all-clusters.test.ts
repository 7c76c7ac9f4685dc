/**
 * A tenant capped over every cluster (`maxCores: {"*": 88}`, issue 22 item 1), over azurite and a
 * simulator with two clusters, through group commit (its batches hold the fleet-wide slot): cfd's
 * node on hpc2 counts against its cap on hpc, so its next request on hpc waits with the reason while
 * ml's is created; once cfd's node on hpc2 is gone, it is created.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServices, type Services } from '../../src/app/services.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { NODE_LIST_LAG_MS } from '../../src/requests/tenant-share.ts';
import { defaultClusters, startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';

let sim: SimulatorHandle;
let s: Services;
const meta = (id: string, dequeueCount = 1) => ({ messageId: id, dequeueCount, maxDequeueCount: 5, poisonQueue: 'p' });
const hc = (requestId: string, cluster: string, tenant: string) => ({
  kind: 'scale' as const,
  requestId,
  cluster,
  tenant,
  demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }],
});
// HC44rs has 44 cores: cfd may hold two of them over both clusters together.
const TENANTS = { tenants: { cfd: { maxCores: { '*': 88 } }, ml: {}, default: {} } };

beforeAll(async () => {
  const [hpc] = defaultClusters();
  sim = await startSimulator({ port: 0, stepMs: 20, clusters: [hpc!, { ...structuredClone(hpc!), name: 'hpc2' }] });
  s = await createServices(
    scalerEnv(sim, freshPrefix('ta'), { CYCLECLOUD_CLUSTERS: 'hpc,hpc2', CREATE_WINDOW_MS: '20', TENANTS: JSON.stringify(TENANTS) }, inject('storageConnectionString')),
    { mode: 'local', logger: silentLogger, fastPathConcurrency: 0 },
  );
});
afterAll(async () => {
  await s?.close();
  await sim?.close();
});

async function deliver(m: ReturnType<typeof hc>, id: string, dequeueCount = 1) {
  if (dequeueCount === 1) await s.pipeline.submitRequest(m);
  return s.pipeline.handle(m, meta(id, dequeueCount), silentLogger);
}

describe('a cap over all clusters', () => {
  it("counts the tenant's nodes on every cluster, names the scope, and frees when one goes", async () => {
    await s.freshSnapshot('hpc', -1);
    await s.freshSnapshot('hpc2', -1);
    await deliver(hc('ta-cfd-1', 'hpc', 'cfd'), 'm1');
    await deliver(hc('ta-cfd-2', 'hpc2', 'cfd'), 'm2');
    for (const id of ['ta-cfd-1', 'ta-cfd-2']) expect((await s.pipeline.ledger.getRecord(id))?.operations, id).toHaveLength(1);

    // 88 of 88 cores over both: the next on hpc waits although hpc alone holds 44.
    await s.freshSnapshot('hpc', -1);
    await deliver(hc('ta-cfd-3', 'hpc', 'cfd'), 'm3');
    await deliver(hc('ta-ml-1', 'hpc', 'ml'), 'm4');
    const waiting = await s.pipeline.ledger.getRecord('ta-cfd-3');
    expect(waiting?.operations).toEqual([]);
    expect(waiting?.reason).toContain('tenant cfd at 88 of 88 cores in all clusters');
    expect((await s.pipeline.ledger.getRecord('ta-ml-1'))?.operations).toHaveLength(1);

    // cfd's node on hpc2 goes: the waiting request on hpc is created at its next delivery.
    const [node] = sim.sim.nodes('hpc2').map((n) => n.Name);
    sim.sim.manage('hpc2', 'terminate', { names: [node!] });
    await new Promise((r) => setTimeout(r, NODE_LIST_LAG_MS + 500));
    await s.freshSnapshot('hpc2', -1);
    await s.freshSnapshot('hpc', -1);
    await deliver(hc('ta-cfd-3', 'hpc', 'cfd'), 'm3', 2);
    const after = await s.pipeline.ledger.getRecord('ta-cfd-3');
    expect(after?.operations, after?.reason ?? '').toHaveLength(1);
  }, 60_000);
});
