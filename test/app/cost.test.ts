/**
 * Cost through the composition root (issue 22 item 4), on one virtual clock shared by the scaler and
 * the simulator, over azurite: the price table from PRICES_FILE; a request's cost against what the
 * simulator itself says its VMs lived (created until terminated) × price, within 1 %; nodes that go
 * by a terminate request, and by a shutdown outside the scaler (the meter sees them go); per tenant
 * the meter's cost today and this month in `GET /api/tenants`; a tenant past its monthly budget gets
 * its next demand waiting with the reason while another tenant's is created, and `/api/health`
 * names it; a record read without a price table carries no cost.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServices, type Services } from '../../src/app/services.ts';
import { runSnapshotJob } from '../../src/app/jobs.ts';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { ROUTES } from '../../src/http/routes.ts';
import type { RequestRecord, ScaleRequest } from '../../src/ledger/schemas.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { silentLogger } from '../../src/platform/log.ts';
import type { PriceDocument } from '../../src/platform/prices.ts';
import { Storage } from '../../src/platform/storage.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { CrashSwitch, VirtualClock, VirtualQueues, chaosCycleCloud, chaosStorage, decodeBody } from '../chaos/harness.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';
import { httpRequest } from '../http/fakes.ts';

const START_MS = Date.parse('2026-12-08T00:10:00.000Z');
const TIMER_MS = 60_000;
const HC = 3.168;
const PRICES: PriceDocument = { currency: 'USD', prices: { westeurope: { Standard_HC44rs: { regular: HC, spot: 0.6336 } } } };
// cfd may spend 15 USD a month: two HC44rs for two hours (12.67) and one more hour of one (3.17) pass it.
const TENANTS = { tenants: { cfd: { budget: { monthly: 15 } }, ml: {}, default: {} } };

let sim: SimulatorHandle;
let s: Services;
const clock = new VirtualClock(START_MS);
const queues = new VirtualQueues(clock);
const crash = new CrashSwitch();
let nextTimerAt = START_MS + TIMER_MS;

const hc = (requestId: string, tenant: string, count: number): ScaleRequest => ({
  kind: 'scale',
  requestId,
  cluster: 'hpc',
  tenant,
  demands: [{ nodearray: 'ondemand', count, machineTypes: ['Standard_HC44rs'] }],
});

beforeAll(async () => {
  const folder = mkdtempSync(join(tmpdir(), 'ccscale-cost-'));
  writeFileSync(join(folder, 'prices.json'), JSON.stringify(PRICES));
  sim = await startSimulator({ port: 0, stepMs: 2_000, now: clock.now });
  const client = createCycleCloudClient({
    baseUrl: sim.url,
    credentials: staticCredentialProvider({ username: sim.username, password: sim.password }),
    now: clock.now,
    sleep: async () => {},
  });
  const connection = inject('storageConnectionString');
  s = await createServices(
    scalerEnv(sim, freshPrefix('co'), { CREATE_WINDOW_MS: '0', LOG_LEVEL: 'error', PRICES_FILE: join(folder, 'prices.json'), TENANTS: JSON.stringify(TENANTS) }, connection),
    {
      mode: 'local',
      now: clock.now,
      logger: silentLogger,
      storage: chaosStorage(Storage.fromConnectionString(connection), queues, crash),
      cyclecloud: chaosCycleCloud(client, crash),
      fastPathConcurrency: 0,
      governorWaitMs: 0,
    },
  );
});
afterAll(async () => {
  await s?.close();
  await sim?.close();
});

/** Every due message delivered, and the timer run each minute, until `untilMs` (virtual). */
async function runUntil(untilMs: number, done?: () => Promise<boolean>): Promise<void> {
  const names = s.names;
  const handlers: Record<string, (body: unknown, n: number) => Promise<unknown>> = {
    [names.scaleQueue]: (body, n) => s.pipeline.handle(body, { messageId: `m${n}`, dequeueCount: n, maxDequeueCount: 50, poisonQueue: names.scalePoisonQueue }, silentLogger),
    [names.trackerQueue]: (body, n) => s.tracker.handleTrackerMessage(body, { dequeueCount: n }, silentLogger),
    [names.callbackQueue]: async () => undefined,
  };
  while (clock.nowMs < untilMs) {
    if (done && (await done())) return;
    const visible = queues.visible();
    if (visible.length > 0) {
      const m = visible[0]!;
      m.dequeueCount += 1;
      try {
        await handlers[m.queue]!(decodeBody(m), m.dequeueCount);
        queues.remove(m);
      } catch {
        m.visibleAtMs = clock.nowMs + 2_000;
      }
      continue;
    }
    const next = Math.min(queues.nextVisibleAtMs(), nextTimerAt, untilMs);
    clock.advanceTo(next);
    if (clock.nowMs >= nextTimerAt) {
      nextTimerAt += TIMER_MS;
      await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    }
  }
}

const record = async (id: string): Promise<RequestRecord> => (await s.pipeline.ledger.getRecord(id))!;
const publicView = async (id: string) => {
  const route = ROUTES.find((r) => r.name === 'scaleRequestsGet')!.handler;
  return (await route(s.http, httpRequest('GET', `/api/scale-requests/${id}`, { params: { requestId: id } }))).jsonBody as RequestRecord;
};
/** What the simulator says the request's VMs cost: Σ (terminated − created) × price. */
const simCost = (r: RequestRecord, untilMs: number) =>
  r.nodes.reduce((sum, n) => {
    const life = sim.sim.lifetimes.get(n.id!)!;
    return sum + (((life.endedAtMs ?? untilMs) - life.createdAtMs) / 3_600_000) * HC;
  }, 0);

describe('cost', () => {
  it("prices a request's node-seconds within 1 % of the simulator's, meters each tenant, and holds a tenant past its budget", async () => {
    await s.pipeline.submitRequest(hc('cost-cfd', 'cfd', 2));
    await s.pipeline.submitRequest(hc('cost-ml', 'ml', 1));
    await runUntil(START_MS + 10 * 60_000, async () => (await record('cost-cfd')).state === 'fulfilled' && (await record('cost-ml')).state === 'fulfilled');
    const cfd = await record('cost-cfd');
    expect(cfd.state).toBe('fulfilled');
    expect(cfd.nodes.map((n) => [n.machineType, n.region, Boolean(n.startedAt), n.endedAt])).toEqual([
      ['Standard_HC44rs', 'westeurope', true, undefined],
      ['Standard_HC44rs', 'westeurope', true, undefined],
    ]);

    // Two hours on: the first node goes by a terminate request.
    const upAt = clock.nowMs;
    await runUntil(upAt + 2 * 3_600_000);
    const [first, second] = cfd.nodes;
    await s.pipeline.submitRequest({ kind: 'terminate', requestId: 'cost-stop-1', cluster: 'hpc', names: [first!.name] });
    await runUntil(clock.nowMs + 10 * 60_000, async () => (await record('cost-stop-1')).state === 'fulfilled');
    expect((await record('cost-stop-1')).state).toBe('fulfilled');

    // One more hour: the second goes by a shutdown outside the scaler (CycleCloud's UI); the meter sees it go.
    await runUntil(upAt + 3 * 3_600_000);
    sim.sim.manage('hpc', 'terminate', { names: [second!.name] });
    await runUntil(clock.nowMs + 5 * 60_000);
    const ended = await record('cost-cfd');
    expect(
      ended.nodes.every((n) => n.endedAt),
      JSON.stringify(ended.nodes),
    ).toBe(true);

    // The record's cost against the simulator's own lives of those VMs.
    const priced = await publicView('cost-cfd');
    const truth = simCost(ended, clock.nowMs);
    expect(priced.cost!.currency).toBe('USD');
    expect(priced.cost!.unpriced).toEqual([]);
    expect(Math.abs(priced.cost!.amount - truth) / truth, `record ${priced.cost!.amount} vs simulator ${truth}`).toBeLessThan(0.01);
    expect(truth).toBeGreaterThan(5 * HC * 0.99); // ~2 h + ~3 h of HC44rs
    // Still running: ml's node costs until now, and grows.
    const ml = await publicView('cost-ml');
    expect(Math.abs(ml.cost!.amount - simCost(ml, clock.nowMs)) / simCost(ml, clock.nowMs)).toBeLessThan(0.01);

    // Per tenant: the meter samples each minute; its sum is within 2 % of the records'.
    const tenants = ROUTES.find((r) => r.name === 'tenants')!.handler;
    const view = (await tenants(s.http, httpRequest('GET', '/api/tenants'))).jsonBody as {
      currency: string;
      tenants: { name: string; costToday: number; costMonth: number; budget: { monthly: number; spent: number; past: boolean } | null }[];
    };
    const byName = Object.fromEntries(view.tenants.map((t) => [t.name, t]));
    expect(view.currency).toBe('USD');
    expect(Math.abs(byName.cfd!.costMonth - priced.cost!.amount) / priced.cost!.amount, JSON.stringify(byName.cfd)).toBeLessThan(0.02);
    expect(byName.cfd!.costToday).toBe(byName.cfd!.costMonth);
    expect(byName.cfd!.budget).toMatchObject({ monthly: 15, past: true });
    expect(byName.ml!.budget).toBeNull();
    expect(byName.ml!.costToday).toBeGreaterThan(0);

    // Past its budget: cfd's next demand waits, saying why; ml's is created.
    await s.pipeline.submitRequest(hc('cost-cfd-2', 'cfd', 1));
    await s.pipeline.submitRequest(hc('cost-ml-2', 'ml', 1));
    await runUntil(clock.nowMs + 5 * 60_000, async () => (await record('cost-ml-2')).state === 'fulfilled');
    const waiting = await record('cost-cfd-2');
    expect(waiting.operations).toEqual([]);
    expect(waiting.reason).toMatch(/tenant cfd past its monthly budget: 1\d\.\d\d of 15 USD spent this month/);
    expect((await record('cost-ml-2')).state).toBe('fulfilled');

    const health = ROUTES.find((r) => r.name === 'health')!.handler;
    const body = (await health(s.http, httpRequest('GET', '/api/health'))).jsonBody as {
      budgets: { currency: string; past: { tenant: string; monthly: number; spent: number }[] };
    };
    expect(body.budgets.currency).toBe('USD');
    expect(body.budgets.past.map((p) => [p.tenant, p.monthly])).toEqual([['cfd', 15]]);
    expect(body.budgets.past[0]!.spent).toBeGreaterThanOrEqual(15);
  });
});
