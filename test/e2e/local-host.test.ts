/**
 * End to end through `npm start` (src/local/main.ts) as a user runs it: the real local host, the
 * real function registrations, azurite and the embedded simulator over HTTP. Requests go in over
 * HTTP and straight onto the queue, and come out `fulfilled` with every node Ready.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { QueueServiceClient } from '@azure/storage-queue';
import { encodeQueueMessage } from '../../src/platform/storage.ts';
import { root, startScaler, type RunningScaler } from './harness.ts';
import type { RequestRecord } from '../../src/ledger/schemas.ts';

let host: RunningScaler;
const api = (path: string, init?: RequestInit) => host.api(path, init);
const simCalls = () => host.simCalls();
const waitFinal = (requestId: string) => host.waitFinal(requestId);

beforeAll(async () => {
  host = await startScaler({ storageConnectionString: inject('storageConnectionString'), env: { SIMULATOR_STEP_MS: '150' } });
}, 60_000);

afterAll(async () => {
  await host?.stop();
}, 30_000);

describe('npm start, end to end', () => {
  it('turns an HTTP scale request into ONE create, grouped by placement group, followed to fulfilled', async () => {
    // Prepare: a gang of 4 InfiniBand nodes and 2 loose nodes, in one request
    const body = {
      requestId: 'e2e-http-1',
      cluster: 'hpc',
      demands: [
        { nodearray: 'mpi', count: 4, colocated: true, jobId: '4711' },
        { nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] },
      ],
    };
    const createsBefore = (await simCalls()).filter((c) => c.path.endsWith('/nodes/create')).length;

    // Act
    const accepted = await api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    const again = await api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    const record = await waitFinal('e2e-http-1');

    // Assess
    expect(accepted.status).toBe(202);
    const a = (await accepted.json()) as { requestId: string; statusUrl: string };
    expect(a.statusUrl).toBe(`${host.base}/scale-requests/e2e-http-1`);
    expect(again.status).toBe(202);
    expect(record.state).toBe('fulfilled');
    expect(record.demands.map((d) => [d.requested, d.created, d.ready])).toEqual([
      [4, 4, 4],
      [2, 2, 2],
    ]);
    expect(record.nodes).toHaveLength(6);
    expect(record.nodes.every((n) => n.status === 'Ready')).toBe(true);
    expect(record.demands[0]!.placementGroupId).toBeTruthy();
    expect(record.demands[1]!.machineType).toBe('Standard_HC44rs');
    const creates = (await simCalls()).filter((c) => c.path.endsWith('/nodes/create')).length - createsBefore;
    expect(creates).toBe(1);
  }, 60_000);

  it('creates nodes from a base64 message put straight on the queue, and counts a broken one', async () => {
    // Prepare
    const viaConnection = QueueServiceClient.fromConnectionString(inject('storageConnectionString')).getQueueClient(host.scaleQueue);
    const message = { requestId: 'e2e-queue-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_F32s_v2'] }] };

    // Act
    await viaConnection.sendMessage(encodeQueueMessage(message));
    await viaConnection.sendMessage(encodeQueueMessage('this is not json'));
    const record = await waitFinal('e2e-queue-1');
    const healthDeadline = Date.now() + 15_000;
    let health: { rejectedMessages?: number } = {};
    while (Date.now() < healthDeadline) {
      health = (await (await api('/health')).json()) as typeof health;
      if ((health.rejectedMessages ?? 0) >= 1) break;
      await new Promise((r) => setTimeout(r, 250));
    }

    // Assess
    expect(record.state).toBe('fulfilled');
    expect(record.nodes.map((n) => n.status)).toEqual(['Ready']);
    expect(health.rejectedMessages).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('lets `ccscale watch` follow a request to fulfilled and exit 0', async () => {
    // Prepare
    const submitted = await api('/scale-requests', {
      method: 'POST',
      body: JSON.stringify({ requestId: 'e2e-watch-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }] }),
    });
    expect(submitted.status).toBe(202);

    // Act: the CLI as a user runs it, against the running host
    const cli = spawn(process.execPath, ['bin/ccscale.mjs', 'watch', 'e2e-watch-1', '--url', host.base, '--interval', '300'], {
      cwd: root,
      env: { ...process.env, SCALER_KEY: host.key, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    cli.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    cli.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((r) => cli.once('exit', r));

    // Assess
    expect(code, out).toBe(0);
    expect(out).toMatch(/fulfilled/);
  }, 60_000);

  it('refuses a caller without the function key and keeps secrets out of its output', async () => {
    const res = await fetch(`${host.base}/scale-requests/e2e-http-1`);
    expect(res.status).toBe(401);
    const text = await res.text();
    expect(text).not.toContain(host.key);
    expect(host.output()).not.toContain(host.sim.password);
  });
});

// Demands by resources (issue 11): a request that names no nodearray, only `minVcpus` and
// `colocated`, lands in ONE placement group of a bucket that meets it, as CycleCloud itself (the
// simulator's documented status) reports; `/api/plan` and the record say why.
interface CcBucket {
  definition?: { machineType: string };
  virtualMachine: { vcpuCount: number };
  placementGroups: { name: string; activeCount: number }[];
}
interface CcStatus {
  nodearrays: { name: string; buckets: CcBucket[] }[];
}
interface CcNode {
  Name: string;
  Template: string;
  MachineType: string;
  PlacementGroupId?: string;
  Status: string;
}

describe('npm start: demands by resources', () => {
  it('lands minVcpus + colocated demands in one placement group of a bucket that meets them, shared by both', async () => {
    // Prepare: no nodearray, no machine type; the seed's ondemand buckets have 32 and 44 vCPUs, so
    // only mpi's 120-vCPU bucket meets 100 (its placement groups hold 4: room for both gangs). The
    // ondemand nodearray's 500-core limit is shared with this file's other tests, mpi's is not.
    const body = {
      requestId: 'e2e-minvcpus-1',
      cluster: 'hpc',
      demands: [
        { count: 2, minVcpus: 100, colocated: true, jobId: 'a' },
        { count: 2, minVcpus: 100, colocated: true, jobId: 'b' },
      ],
    };
    const plan = await host.api('/plan', { method: 'POST', body: JSON.stringify(body) });
    expect(plan.status).toBe(200);
    const explained = (await plan.json()) as { demands: { nodearray: string; bucketId: string; explanation: string; placements: { placementGroupId: string }[] }[] };
    expect(explained.demands[1]!.explanation).toContain('shared with an earlier demand of this request');

    // Act
    const accepted = await host.api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    expect(accepted.status).toBe(202);
    const record = await waitFinal('e2e-minvcpus-1');

    // Assess: fulfilled, both demands in one group, and CycleCloud agrees where that group lives.
    expect(record.state).toBe('fulfilled');
    expect(record.demands.map((d) => [d.requested, d.created, d.ready])).toEqual([
      [2, 2, 2],
      [2, 2, 2],
    ]);
    const group = record.demands[0]!.placementGroupId;
    expect(group).toBeTruthy();
    expect(record.demands[1]!.placementGroupId).toBe(group);
    // The record is exactly docs/api.md §5; ?explain=true adds where each demand went and why.
    expect(record.demands[0]).not.toHaveProperty('explanation');
    const withWhy = (await (await host.api('/scale-requests/e2e-minvcpus-1?explain=true')).json()) as RequestRecord;
    expect(withWhy.demands[0]).toMatchObject({ nodearray: explained.demands[0]!.nodearray, bucketId: explained.demands[0]!.bucketId });
    expect(withWhy.demands[0]!.explanation).toContain(`placement group ${group}`);
    expect(withWhy.demands[1]!.explanation).toContain('shared with an earlier demand of this request');

    const nodes = (await (await host.sim$('/clusters/hpc/nodes')).json()) as { nodes: CcNode[] };
    const ours = nodes.nodes.filter((n) => record.nodes.some((r) => r.name === n.Name));
    expect(ours).toHaveLength(4);
    expect(new Set(ours.map((n) => n.PlacementGroupId))).toEqual(new Set([group]));
    const status = (await (await host.sim$('/clusters/hpc/status')).json()) as CcStatus;
    const homes = status.nodearrays.flatMap((na) => na.buckets.filter((b) => b.placementGroups.some((g) => g.name === group)).map((b) => ({ na: na.name, b })));
    expect(homes).toHaveLength(1);
    expect(homes[0]!.b.virtualMachine.vcpuCount).toBeGreaterThanOrEqual(100);
    expect(homes[0]!.b.placementGroups.find((g) => g.name === group)!.activeCount).toBe(4);
    expect(ours.every((n) => n.Template === homes[0]!.na && n.MachineType === homes[0]!.b.definition?.machineType)).toBe(true);
  }, 60_000);

  it('rejects a demand no bucket can meet, naming the demand and the selectors', async () => {
    const body = { requestId: 'e2e-minvcpus-2', cluster: 'hpc', demands: [{ count: 1, minVcpus: 500 }] };
    const accepted = await host.api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    expect(accepted.status).toBe(202);
    const record = await waitFinal('e2e-minvcpus-2');
    expect(record.state).toBe('rejected');
    expect(record.reason).toContain('demand 0 asks for minVcpus ≥ 500, which no bucket of cluster hpc meets');
    const noSelector = await host.api('/scale-requests', {
      method: 'POST',
      body: JSON.stringify({ requestId: 'e2e-minvcpus-3', cluster: 'hpc', demands: [{ count: 1, colocated: true }] }),
    });
    expect(noSelector.status).toBe(400);
    expect(JSON.stringify(await noSelector.json())).toContain('needs at least one selector');
  }, 60_000);
});
