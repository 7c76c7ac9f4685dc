/**
 * Demands by resources, end to end through `npm start` (issue 11): a request that names no nodearray,
 * only `minVcpus` and `colocated`, lands in ONE placement group of a bucket that meets it, as
 * CycleCloud itself (the simulator's documented status) reports; `/api/plan` and the record say why.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RequestRecord } from '../../src/requests/schemas.ts';
import { startScaler, type RunningScaler } from './harness.ts';

let host: RunningScaler;

beforeAll(async () => {
  host = await startScaler({ storageConnectionString: inject('storageConnectionString'), env: { SIMULATOR_STEP_MS: '150' } });
}, 60_000);

afterAll(async () => {
  await host?.stop();
}, 30_000);

interface CcBucket { definition?: { machineType: string }; virtualMachine: { vcpuCount: number }; placementGroups: { name: string; activeCount: number }[] }
interface CcStatus { nodearrays: { name: string; buckets: CcBucket[] }[] }
interface CcNode { Name: string; Template: string; MachineType: string; PlacementGroupId?: string; Status: string }

describe('npm start: demands by resources', () => {
  it('lands minVcpus + colocated demands in one placement group of a bucket that meets them, shared by both', async () => {
    // Prepare: no nodearray, no machine type; the seed's first buckets have 32 vCPUs.
    const body = {
      requestId: 'e2e-minvcpus-1',
      cluster: 'hpc',
      demands: [
        { count: 4, minVcpus: 44, colocated: true, jobId: 'a' },
        { count: 2, minVcpus: 44, colocated: true, jobId: 'b' },
      ],
    };
    const plan = await host.api('/plan', { method: 'POST', body: JSON.stringify(body) });
    expect(plan.status).toBe(200);
    const explained = (await plan.json()) as { demands: { nodearray: string; bucketId: string; explanation: string; placements: { placementGroupId: string }[] }[] };
    expect(explained.demands[1]!.explanation).toContain('shared with an earlier demand of this request');

    // Act
    const accepted = await host.api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    expect(accepted.status).toBe(202);
    const record: RequestRecord = await host.waitFinal('e2e-minvcpus-1');

    // Assess: fulfilled, both demands in one group, and CycleCloud agrees where that group lives.
    expect(record.state).toBe('fulfilled');
    expect(record.demands.map((d) => [d.requested, d.created, d.ready])).toEqual([[4, 4, 4], [2, 2, 2]]);
    const group = record.demands[0]!.placementGroupId;
    expect(group).toBeTruthy();
    expect(record.demands[1]!.placementGroupId).toBe(group);
    expect(record.demands[0]).toMatchObject({ nodearray: explained.demands[0]!.nodearray, bucketId: explained.demands[0]!.bucketId });
    expect(record.demands[0]!.explanation).toContain(`placement group ${group}`);

    const nodes = (await (await host.sim$('/clusters/hpc/nodes')).json()) as { nodes: CcNode[] };
    const ours = nodes.nodes.filter((n) => record.nodes.some((r) => r.name === n.Name));
    expect(ours).toHaveLength(6);
    expect(new Set(ours.map((n) => n.PlacementGroupId))).toEqual(new Set([group]));
    const status = (await (await host.sim$('/clusters/hpc/status')).json()) as CcStatus;
    const homes = status.nodearrays.flatMap((na) => na.buckets.filter((b) => b.placementGroups.some((g) => g.name === group)).map((b) => ({ na: na.name, b })));
    expect(homes).toHaveLength(1);
    expect(homes[0]!.b.virtualMachine.vcpuCount).toBeGreaterThanOrEqual(44);
    expect(homes[0]!.b.placementGroups.find((g) => g.name === group)!.activeCount).toBe(6);
    expect(ours.every((n) => n.Template === homes[0]!.na && n.MachineType === homes[0]!.b.definition?.machineType)).toBe(true);
  }, 60_000);

  it('rejects a demand no bucket can meet, naming the demand and the selectors', async () => {
    const body = { requestId: 'e2e-minvcpus-2', cluster: 'hpc', demands: [{ count: 1, minVcpus: 500 }] };
    const accepted = await host.api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    expect(accepted.status).toBe(202);
    const record = await host.waitFinal('e2e-minvcpus-2');
    expect(record.state).toBe('rejected');
    expect(record.reason).toContain('demand 0 asks for minVcpus ≥ 500, which no bucket of cluster hpc meets');
    const noSelector = await host.api('/scale-requests', { method: 'POST', body: JSON.stringify({ requestId: 'e2e-minvcpus-3', cluster: 'hpc', demands: [{ count: 1, colocated: true }] }) });
    expect(noSelector.status).toBe(400);
    expect(JSON.stringify(await noSelector.json())).toContain('needs at least one selector');
  }, 60_000);
});
