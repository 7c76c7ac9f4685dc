/**
 * Tenants as a platform team meets them (issue 22): two `npm start` hosts on one storage account
 * and one CycleCloud (the simulator), a tenants document capping cfd at 88 cores on hpc (two
 * HC44rs), a price table. Six cfd requests posted to the two hosts at once and one of ml's: cfd
 * never holds more than 88 cores in CycleCloud (sampled throughout), its extra requests wait saying
 * why, ml's is created; once one of cfd's nodes is terminated over HTTP, one waiting request is
 * created; the records carry their cost and `GET /api/tenants` the tenants' usage and spend.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RequestRecord } from '../../src/ledger/schemas.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';
import { type RunningScaler, eventually, sleep, startScaler } from './harness.ts';

let sim: SimulatorHandle;
const hosts: RunningScaler[] = [];
beforeAll(async () => {
  sim = await startSimulator({ port: 0, stepMs: 100 });
}, 30_000);
afterAll(async () => {
  for (const h of hosts) await h.stop().catch(() => undefined);
  await sim?.close();
}, 30_000);

const hc = (requestId: string, tenant: string) => ({ requestId, cluster: 'hpc', tenant, demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }] });

describe('tenants through two npm start hosts', () => {
  it('keeps a tenant at its core cap across both hosts, says why, serves another, and frees when its node goes', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'ccscale-e2e-tenants-'));
    writeFileSync(join(folder, 'prices.json'), JSON.stringify({ currency: 'USD', prices: { '*': { Standard_HC44rs: { regular: 3.168 } } } }));
    const env = scalerEnv(sim, freshPrefix('e2et'), {
      SNAPSHOT_SCHEDULE: '*/2 * * * * *',
      PRICES_FILE: join(folder, 'prices.json'),
      TENANTS: JSON.stringify({ tenants: { cfd: { maxCores: { hpc: 88 } }, ml: {}, default: {} } }),
    });
    const storageConnectionString = inject('storageConnectionString');
    const [a, b] = await Promise.all([startScaler({ storageConnectionString, env }), startScaler({ storageConnectionString, env })]);
    hosts.push(a, b);
    await eventually(async () => ((await a.api('/clusters/hpc/status')).status === 200 ? true : undefined), 30_000, 'a snapshot');

    // cfd's cores in CycleCloud, sampled until the end.
    let peak = 0;
    let sampling = true;
    const cfdCores = () =>
      sim.sim
        .nodes('hpc')
        .filter((n) => (n.Tags as Record<string, string> | undefined)?.['ccscale-tenant'] === 'cfd' && !['Terminated', 'Off', 'Deallocated'].includes(String(n.Status)))
        .reduce((s, n) => s + Number(n.CoreCount ?? 0), 0);
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, cfdCores());
        await sleep(50);
      }
    })();

    const cfd = Array.from({ length: 6 }, (_, i) => `e2et-cfd-${i}`);
    const posted = await Promise.all([
      ...cfd.map((id, i) => (i % 2 ? b : a).api('/scale-requests', { method: 'POST', body: JSON.stringify(hc(id, 'cfd')) })),
      a.api('/scale-requests', { method: 'POST', body: JSON.stringify(hc('e2et-ml-0', 'ml')) }),
    ]);
    expect(posted.map((r) => r.status)).toEqual(Array(7).fill(202));
    expect((await a.waitFinal('e2et-ml-0', 60_000)).state).toBe('fulfilled');

    const records = async () => Promise.all(cfd.map(async (id) => (await (await a.api(`/scale-requests/${id}`)).json()) as RequestRecord));
    const created = (rs: RequestRecord[]) => rs.filter((r) => r.operations.length > 0);
    const first = await eventually(
      async () => {
        const rs = await records();
        return created(rs).length === 2 && rs.every((r) => r.state === 'fulfilled' || r.reason?.includes('tenant cfd at 88 of 88 cores on hpc')) ? rs : undefined;
      },
      60_000,
      'two cfd requests created and four waiting with the reason',
    );
    expect(created(first)).toHaveLength(2);

    // One of cfd's nodes is terminated over HTTP: exactly one more cfd request is created.
    const node = created(first)[0]!.nodes[0]!.name;
    expect((await b.api('/terminate', { method: 'POST', body: JSON.stringify({ kind: 'terminate', requestId: 'e2et-free', cluster: 'hpc', names: [node] }) })).status).toBe(202);
    expect((await b.waitFinal('e2et-free', 60_000)).state).toBe('fulfilled');
    const second = await eventually(
      async () => {
        const rs = await records();
        return created(rs).length === 3 ? rs : undefined;
      },
      90_000,
      'a third cfd request created after the terminate',
    );
    await sleep(3_000);
    sampling = false;
    await sampler;
    expect(created(await records())).toHaveLength(3);
    expect(peak, 'cfd cores in CycleCloud at any sample').toBeLessThanOrEqual(88);
    expect(peak).toBe(88);

    // Cost in the records; usage and spend per tenant.
    const id = second.find((r) => r.state === 'fulfilled')!.requestId;
    const fulfilled = (await (await a.api(`/scale-requests/${id}?cost=true`)).json()) as RequestRecord;
    expect(fulfilled.cost?.currency, JSON.stringify(fulfilled)).toBe('USD');
    expect(fulfilled.cost!.amount).toBeGreaterThan(0);
    // Usage is the newest snapshot plus reservations since: the terminated node leaves it once a snapshot no longer shows it.
    type View = { currency: string; tenants: { name: string; usage: Record<string, { cores: number }>; costToday: number }[] };
    const byName = await eventually(
      async () => {
        const tenants = (await (await b.api('/tenants')).json()) as View;
        expect(tenants.currency).toBe('USD');
        const named = Object.fromEntries(tenants.tenants.map((t) => [t.name, t]));
        return named.cfd!.usage.hpc!.cores === 88 ? named : undefined;
      },
      20_000,
      "cfd's usage back at 88 cores",
    );
    expect(byName.ml!.usage.hpc!.cores).toBe(44);
  }, 240_000);
});
