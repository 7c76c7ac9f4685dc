/**
 * Fair share across batches (issue 22 item 3), on one virtual clock over azurite and the simulator:
 * tenants A, B (weight 1) and C (weight 2) have 30, 5 and 10 one-node requests waiting for room (the
 * nodearray is full), each asleep on its own backoff. Room for 12 appears; the next snapshot tick
 * wakes exactly the requests that the room serves in fair order, and they are created at once: A 3,
 * B 3, C 6 — not whoever's backoff ends first. Without the tick's fair wake nothing would be created
 * before the first backoff ends (15 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../src/app/services.ts';
import { runSnapshotJob } from '../../src/app/jobs.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { type VirtualScaler, virtualScaler } from '../helpers/virtual-scaler.ts';

const START_MS = Date.parse('2026-12-08T06:00:00.000Z');
const TENANTS = { tenants: { a: { weight: 1 }, b: { weight: 1 }, c: { weight: 2 }, default: {} } };
let v: VirtualScaler;
let sim: VirtualScaler['sim'];
let s: Services;

beforeAll(async () => {
  v = await virtualScaler('fw', START_MS, { TENANTS: JSON.stringify(TENANTS) });
  ({ sim, s } = v);
});
afterAll(async () => {
  await v?.close();
});

const one = (requestId: string, tenant: string): ScaleRequest => ({
  kind: 'scale',
  requestId,
  cluster: 'hpc',
  tenant,
  demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }],
});

describe('fair share across batches', () => {
  it('wakes the waiting requests the new room serves, shared by weight, not by whose backoff ends first', async () => {
    sim.sim.setLimits('hpc', 'ondemand', { maxCount: 0 });
    await s.freshSnapshot('hpc', -1);
    const ids: Record<string, string[]> = { a: [], b: [], c: [] };
    for (const [tenant, n] of [
      ['a', 30],
      ['b', 5],
      ['c', 10],
    ] as const) {
      for (let i = 0; i < n; i++) {
        const id = `fw-${tenant}-${i}`;
        ids[tenant]!.push(id);
        await s.pipeline.submitRequest(one(id, tenant));
      }
    }
    await v.deliverVisible();
    const waiting = await s.pipeline.ledger.getRecord('fw-a-0');
    expect(waiting?.operations).toEqual([]);
    expect(waiting?.reason).toContain('has no room');

    // Room for 12; one snapshot tick later (well before any backoff ends).
    sim.sim.setLimits('hpc', 'ondemand', { maxCount: 12, maxCoreCount: 12 * 44 });
    v.clock.advanceTo(START_MS + 2_000);
    const tick = await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    expect(tick.fairWakeups).toBe(12);
    await v.deliverVisible();

    const created = async (tenant: string) => (await Promise.all(ids[tenant]!.map((id) => s.pipeline.ledger.getRecord(id)))).filter((r) => r!.operations.length > 0).length;
    expect([await created('a'), await created('b'), await created('c')]).toEqual([3, 3, 6]);
    expect(sim.sim.nodes('hpc').filter((n) => n.Template === 'ondemand')).toHaveLength(12);

    // Nothing left to serve: the next tick wakes nobody.
    v.clock.advanceTo(START_MS + 4_000);
    await s.freshSnapshot('hpc', -1);
    expect((await runSnapshotJob(s, { isPastDue: false }, silentLogger)).fairWakeups).toBe(0);
  }, 60_000);
});
