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
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServices, type Services } from '../../src/app/services.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';
import { runSnapshotJob } from '../../src/app/jobs.ts';
import { ROUTES } from '../../src/http/routes.ts';
import type { RequestRecord, ScaleRequest } from '../../src/ledger/schemas.ts';
import { silentLogger } from '../../src/platform/log.ts';
import type { PriceDocument } from '../../src/platform/prices.ts';
import { type VirtualScaler, virtualScaler } from '../helpers/virtual-scaler.ts';
import { httpRequest } from '../http/fakes.ts';

const START_MS = Date.parse('2026-12-08T00:10:00.000Z');
const TIMER_MS = 60_000;
const HC = 3.168;
const PRICES: PriceDocument = { currency: 'USD', prices: { westeurope: { Standard_HC44rs: { regular: HC, spot: 0.6336 } } } };
// cfd may spend 15 USD a month: two HC44rs for two hours (12.67) and one more hour of one (3.17) pass it.
const TENANTS = { tenants: { cfd: { budget: { monthly: 15 } }, ml: {}, default: {} } };

let v: VirtualScaler;
let sim: VirtualScaler['sim'];
let s: Services;
let nextTimerAt = START_MS + TIMER_MS;
const pricesFile = join(mkdtempSync(join(tmpdir(), 'ccscale-cost-')), 'prices.json');

const hc = (requestId: string, tenant: string, count: number): ScaleRequest => ({
  kind: 'scale',
  requestId,
  cluster: 'hpc',
  tenant,
  demands: [{ nodearray: 'ondemand', count, machineTypes: ['Standard_HC44rs'] }],
});

beforeAll(async () => {
  writeFileSync(pricesFile, JSON.stringify(PRICES));
  v = await virtualScaler('co', START_MS, { PRICES_FILE: pricesFile, TENANTS: JSON.stringify(TENANTS) });
  ({ sim, s } = v);
});
afterAll(async () => {
  await v?.close();
});

/** Every due message delivered, and the timer run each minute, until `untilMs` (virtual). */
async function runUntil(untilMs: number, done?: () => Promise<boolean>): Promise<void> {
  while (v.clock.nowMs < untilMs) {
    if (done && (await done())) return;
    if (v.queues.visible().length > 0) {
      await v.deliverVisible();
      continue;
    }
    v.clock.advanceTo(Math.min(v.queues.nextVisibleAtMs(), nextTimerAt, untilMs));
    if (v.clock.nowMs >= nextTimerAt) {
      nextTimerAt += TIMER_MS;
      await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    }
  }
}

const record = async (id: string): Promise<RequestRecord> => (await s.pipeline.ledger.getRecord(id))!;
const publicView = async (id: string) => {
  const route = ROUTES.find((r) => r.name === 'scaleRequestsGet')!.handler;
  return (await route(s.http, httpRequest('GET', `/api/scale-requests/${id}`, { params: { requestId: id }, query: 'cost=true' }))).jsonBody as RequestRecord;
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
    const upAt = v.clock.nowMs;
    await runUntil(upAt + 2 * 3_600_000);
    const [first, second] = cfd.nodes;
    await s.pipeline.submitRequest({ kind: 'terminate', requestId: 'cost-stop-1', cluster: 'hpc', names: [first!.name] });
    await runUntil(v.clock.nowMs + 10 * 60_000, async () => (await record('cost-stop-1')).state === 'fulfilled');
    expect((await record('cost-stop-1')).state).toBe('fulfilled');

    // One more hour: the second goes by a shutdown outside the scaler (CycleCloud's UI); the meter sees it go.
    await runUntil(upAt + 3 * 3_600_000);
    sim.sim.manage('hpc', 'terminate', { names: [second!.name] });
    await runUntil(v.clock.nowMs + 5 * 60_000);
    const ended = await record('cost-cfd');
    expect(
      ended.nodes.every((n) => n.endedAt),
      JSON.stringify(ended.nodes),
    ).toBe(true);

    // The record's cost against the simulator's own lives of those VMs.
    const priced = await publicView('cost-cfd');
    const truth = simCost(ended, v.clock.nowMs);
    expect(priced.cost!.currency).toBe('USD');
    expect(priced.cost!.unpriced).toEqual([]);
    expect(Math.abs(priced.cost!.amount - truth) / truth, `record ${priced.cost!.amount} vs simulator ${truth}`).toBeLessThan(0.01);
    expect(truth).toBeGreaterThan(5 * HC * 0.99); // ~2 h + ~3 h of HC44rs
    // Still running: ml's node costs until now, and grows.
    const ml = await publicView('cost-ml');
    expect(Math.abs(ml.cost!.amount - simCost(ml, v.clock.nowMs)) / simCost(ml, v.clock.nowMs)).toBeLessThan(0.01);

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
    await runUntil(v.clock.nowMs + 5 * 60_000, async () => (await record('cost-ml-2')).state === 'fulfilled');
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

describe('prices from the Azure Retail Prices API', () => {
  it('are fetched for the regions of the clusters at the first tick, cached, and price the records', async () => {
    const asked: string[] = [];
    const server = createServer((req, res) => {
      asked.push(req.url ?? '');
      const items = [
        {
          currencyCode: 'USD',
          retailPrice: 3.5,
          unitPrice: 3.5,
          armRegionName: 'westeurope',
          armSkuName: 'Standard_HC44rs',
          skuName: 'HC44rs',
          productName: 'Virtual Machines HC Series',
          serviceName: 'Virtual Machines',
          type: 'Consumption',
          unitOfMeasure: '1 Hour',
        },
        {
          currencyCode: 'USD',
          retailPrice: 7,
          unitPrice: 7,
          armRegionName: 'westeurope',
          armSkuName: 'Standard_HC44rs',
          skuName: 'HC44rs',
          productName: 'Virtual Machines HC Series Windows',
          serviceName: 'Virtual Machines',
          type: 'Consumption',
          unitOfMeasure: '1 Hour',
        },
      ];
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ BillingCurrency: 'USD', Items: items, NextPageLink: null, Count: items.length }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/retail/prices`;
    const w = await virtualScaler('rp', START_MS, { PRICES_FROM_AZURE: 'true', PRICES_API_URL: url });
    try {
      expect(w.s.prices()).toBeUndefined();
      await runSnapshotJob(w.s, { isPastDue: false }, silentLogger);
      expect(asked).toHaveLength(1);
      expect(new URL(asked[0]!, 'http://x').searchParams.get('$filter')).toContain("armRegionName eq 'westeurope'");
      expect(w.s.prices()?.hourly({ machineType: 'Standard_HC44rs', region: 'westeurope' })).toBe(3.5);
      // The next tick reads the cache: no second call within the day.
      w.clock.advanceTo(START_MS + 60_000);
      await runSnapshotJob(w.s, { isPastDue: false }, silentLogger);
      expect(asked).toHaveLength(1);

      await w.s.pipeline.submitRequest(hc('rp-1', 'default', 1));
      for (let i = 0; i < 60 && (await w.s.pipeline.ledger.getRecord('rp-1'))?.state !== 'fulfilled'; i++) {
        await w.deliverVisible();
        w.clock.advanceTo(Math.min(w.queues.nextVisibleAtMs(), w.clock.nowMs + 5_000));
      }
      w.clock.advanceTo(w.clock.nowMs + 3_600_000);
      const route = ROUTES.find((r) => r.name === 'scaleRequestsGet')!.handler;
      const view = (await route(w.s.http, httpRequest('GET', '/api/scale-requests/rp-1', { params: { requestId: 'rp-1' }, query: 'cost=true' }))).jsonBody as RequestRecord;
      expect(view.state).toBe('fulfilled');
      expect(view.cost!.amount).toBeGreaterThan(3.5);
      expect(view.cost!.amount).toBeLessThan(3.5 * 1.01);
    } finally {
      await w.close();
      server.close();
    }
  }, 60_000);
});

describe('budgets and the price table', () => {
  it("refuse a budget in another currency than the price table's at start-up, naming the field", async () => {
    const env = scalerEnv(
      { url: 'http://127.0.0.1:9', username: 'u', password: 'p' },
      freshPrefix('cb'),
      {
        PRICES_FILE: pricesFile,
        TENANTS: JSON.stringify({ tenants: { cfd: { budget: { monthly: 10, currency: 'EUR' } }, default: {} } }),
      },
      inject('storageConnectionString'),
    );
    await expect(createServices(env, { mode: 'local', logger: silentLogger })).rejects.toThrow("Setting TENANTS tenants.cfd.budget.currency: is EUR but the price table's is USD");
  });
});
