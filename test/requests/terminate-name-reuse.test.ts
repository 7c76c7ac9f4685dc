/**
 * A terminate by name must follow the node it terminated, not the next node CycleCloud gives the
 * freed name to (it reuses the lowest free name). Found by the two-host tenants e2e test: a waiting
 * request was created under the terminated node's name before the terminate's first poll, and the
 * terminate then waited for that new, Ready node to go. On a virtual clock over azurite and the
 * simulator, so the interleaving is forced: the new node exists before the tracker's first poll.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestRecord, ScaleRequest } from '../../src/ledger/schemas.ts';
import { type VirtualScaler, virtualScaler } from '../helpers/virtual-scaler.ts';

const START_MS = Date.parse('2026-12-08T08:00:00.000Z');
let v: VirtualScaler;
beforeAll(async () => {
  v = await virtualScaler('tn', START_MS, {});
});
afterAll(async () => {
  await v?.close();
});

const one = (requestId: string): ScaleRequest => ({ kind: 'scale', requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_F32s_v2'] }] });
const record = async (id: string): Promise<RequestRecord> => (await v.s.pipeline.ledger.getRecord(id))!;
async function until(done: () => Promise<boolean>, maxMs: number): Promise<void> {
  const end = v.clock.nowMs + maxMs;
  while (!(await done()) && v.clock.nowMs < end) {
    await v.deliverVisible();
    v.clock.advanceTo(Math.min(v.queues.nextVisibleAtMs(), v.clock.nowMs + 1_000));
  }
}

describe('terminate by name', () => {
  it('follows the terminated node by its id while a new node takes its name', async () => {
    await v.s.freshSnapshot('hpc', -1);
    await v.s.pipeline.submitRequest(one('tn-1'));
    await until(async () => (await record('tn-1')).state === 'fulfilled', 120_000);
    const [victim] = (await record('tn-1')).nodes;
    expect(victim?.status).toBe('Ready');

    // The terminate is sent; before its tracker first polls, the node is gone and a new one has its name.
    await v.s.pipeline.submitRequest({ kind: 'terminate', requestId: 'tn-stop', cluster: 'hpc', names: [victim!.name] });
    await v.deliverVisible();
    v.clock.advanceTo(v.clock.nowMs + 2_500);
    expect(v.sim.sim.nodes('hpc').some((n) => n.NodeId === victim!.id)).toBe(false);
    await v.s.freshSnapshot('hpc', -1);
    await v.s.pipeline.submitRequest(one('tn-2'));
    await v.deliverVisible();
    const newcomer = v.sim.sim.nodes('hpc').find((n) => n.Name === victim!.name);
    expect(newcomer?.NodeId, 'CycleCloud gave the freed name to the new node').not.toBe(victim!.id);

    await until(async () => ['fulfilled', 'failed', 'partially_fulfilled'].includes((await record('tn-stop')).state), 300_000);
    const stop = await record('tn-stop');
    expect(stop.state, JSON.stringify(stop)).toBe('fulfilled');
    expect(stop.nodes.map((n) => n.id)).toEqual([victim!.id]);
    expect(v.sim.sim.nodes('hpc').find((n) => n.NodeId === newcomer!.NodeId)?.Status).not.toBe('Terminating');
  }, 60_000);
});
