/**
 * The tracker against the CycleCloud simulator over real HTTP (the real client) and azurite, its
 * wake-ups pumped from the tracker queue. Poll delays are zero so queue visibility (whole seconds)
 * does not slow the test; the simulator's lifecycle step is 20 ms.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, inject } from 'vitest';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { markAttributes } from '../../src/cyclecloud/tags.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { Storage } from '../../src/platform/storage.ts';
import type { StorageNames } from '../../src/platform/names.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { applySubmission, createRequestId, outcomeOf } from '../../src/ledger/record.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { createTracker, type TrackerConfig } from '../../src/tracking/tracker.ts';
import { continuePort, storageQueueSender } from '../../src/requests/queue.ts';
import { TIMED_OUT_STATUS } from '../../src/tracking/machine.ts';
import type { TrackStart } from '../../src/tracking/types.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { uniqueNames } from '../helpers/names.ts';
import { peekAll, pumpUntil } from './pump.ts';

/** The outcome the ledger records for the latest node of that name. */
const outcomeByName = (e: LedgerEntry, name: string) => {
  const n = e.record.nodes.findLast((x) => x.name === name);
  return n ? outcomeOf(e, n) : undefined;
};

let handle: SimulatorHandle;
let client: ReturnType<typeof createCycleCloudClient>;
let names: StorageNames;
let storage: Storage;
let ledger: RequestLedger;
const logs = captureLogs();

beforeAll(async () => {
  handle = await startSimulator({ port: 0, stepMs: 20 });
  client = createCycleCloudClient({ baseUrl: handle.url, credentials: staticCredentialProvider({ username: handle.username, password: handle.password }) });
});
afterAll(async () => {
  await client.close();
  await handle.close();
});
beforeEach(async () => {
  names = uniqueNames();
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
  await storage.ensure({ tables: [names.requestsTable], queues: [names.scaleQueue] });
  ledger = new RequestLedger({ storage, names });
});

interface Demand {
  nodearray: string;
  machineType: string;
  count: number;
  placementGroupId?: string;
}

/** Admits a one-demand request, creates its nodes in the simulator and records the create as the pipeline would. */
async function create(requestId: string, d: Demand): Promise<TrackStart> {
  const colocated = d.placementGroupId !== undefined;
  const message: ScaleRequest = {
    kind: 'scale',
    requestId,
    cluster: 'hpc',
    demands: [{ nodearray: d.nodearray, count: d.count, machineTypes: [d.machineType], ...(colocated ? { colocated: true, placementGroupId: d.placementGroupId } : {}) }],
  };
  await ledger.admit(message, Date.now());
  const cycleCloudRequestId = createRequestId(requestId, 0);
  const res = await client.createNodes('hpc', {
    requestId: cycleCloudRequestId,
    // Tagged as the submission tags every create (src/cyclecloud/tags.ts): the tracker finds the nodes by it.
    sets: [
      {
        nodearray: d.nodearray,
        count: d.count,
        definition: { machineType: d.machineType },
        nodeAttributes: markAttributes(undefined, { requestId, cycleCloudRequestId }),
        ...(colocated ? { placementGroupId: d.placementGroupId } : {}),
      },
    ],
  });
  const sets = [
    {
      nodearray: d.nodearray,
      machineType: d.machineType,
      placementGroupId: d.placementGroupId ?? null,
      count: d.count,
      added: res.sets[0]!.added,
      colocated,
      demands: [{ index: 0, count: d.count }],
    },
  ];
  await ledger.update(requestId, (e) =>
    applySubmission(
      e,
      { generation: 0, cycleCloudRequestId, state: 'accepted', operationId: res.operationId, sets: sets.map((s) => ({ ...s, message: null })), submittedAtMs: Date.now() },
      Date.now(),
    ),
  );
  return { cluster: 'hpc', operationId: res.operationId, cycleCloudRequestId, requestId, action: 'create', generation: 0, sets };
}

function tracker(config: Partial<TrackerConfig> = {}) {
  return createTracker({
    cyclecloud: client,
    storage,
    names,
    ledger,
    pipeline: continuePort(storageQueueSender(storage, names.scaleQueue)),
    now: () => Date.now(),
    config: { pollMinMs: 0, pollMaxMs: 0, ...config },
    logger: logs.logger,
  });
}

// 45 s: one host-like retry (a handler that threw is retried after the 30 s visibility timeout)
// still fits on a loaded machine (CI once timed out at 20 s); the pump names what threw.
const pump = (t: ReturnType<typeof tracker>, done: () => Promise<boolean>) =>
  pumpUntil(storage, { [names.trackerQueue]: (m, meta) => t.handleTrackerMessage(m, meta, logs.logger) }, done, 45_000, 20);

describe('tracker with the simulator', { timeout: 60_000 }, () => {
  it('follows a create to Ready: the request is fulfilled', async () => {
    // Prepare
    const t = tracker();
    const start = await create('sim-1', { nodearray: 'ondemand', machineType: 'Standard_F32s_v2', count: 2 });
    // Act
    await t.start(start);
    await pump(t, async () => (await ledger.get('sim-1'))!.record.state === 'fulfilled');
    // Assess
    const e = (await ledger.get('sim-1'))!;
    expect(e.record.demands[0]).toMatchObject({ requested: 2, created: 2, ready: 2 });
    expect(e.record.nodes.map((n) => n.status)).toEqual(['Ready', 'Ready']);
    // Polled through the cluster's node list (one call per round for every operation), never per operation.
    const polls = handle.sim.calls.filter((c) => c.method === 'GET' && c.path === '/clusters/hpc/nodes');
    expect(polls.length).toBeGreaterThan(0);
    expect(polls.filter((c) => c.query?.operation !== undefined || c.query?.request_id !== undefined)).toEqual([]);
  });

  it('terminates a colocated set with a failed node and sends a continue for the re-plan', async () => {
    // Prepare
    const t = tracker();
    const start = await create('sim-2', { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', count: 3, placementGroupId: 'sim2-pg' });
    const gangNodes = handle.sim.nodes('hpc').filter((n) => n.PlacementGroupId === 'sim2-pg');
    const gang = gangNodes.map((n) => n.Name).sort();
    handle.sim.failNode('hpc', gang[1]!, 'OSProvisioningClientError');
    // Act
    await t.start(start);
    await pump(t, async () => {
      const e = await ledger.get('sim-2');
      return (e?.compensations?.length ?? 0) > 0 && e!.record.operations.every((o) => o.state !== 'pending');
    });
    // Assess
    const terminates = handle.sim.calls.filter((c) => c.method === 'POST' && c.path.endsWith('/nodes/terminate'));
    expect(terminates).toHaveLength(1);
    // By NodeId: CycleCloud reuses names.
    expect(((terminates[0]!.body as { ids: string[] }).ids ?? []).slice().sort()).toEqual(gangNodes.map((n) => n.NodeId).sort());
    expect(handle.sim.nodes('hpc').filter((n) => n.PlacementGroupId === 'sim2-pg')).toEqual([]);
    expect(await peekAll(storage, names.scaleQueue)).toEqual([expect.objectContaining({ $scaler: 'continue', requestId: 'sim-2' })]);
    const e = (await ledger.get('sim-2'))!;
    expect(e.compensations?.[0]).toMatchObject({ demandIndex: 0, placementGroupId: 'sim2-pg' });
    expect(e.record.demands[0]!.created).toBe(0);
  });

  it('terminates a node held past the boot deadline and reports it timed out', async () => {
    // Prepare
    const t = tracker({ bootTimeoutMs: 1_500 });
    const start = await create('sim-3', { nodearray: 'ondemand', machineType: 'Standard_HC44rs', count: 2 });
    const [, held] = (await client.listNodes('hpc', { operationId: start.operationId! })).nodes.map((n) => n.Name).sort();
    handle.sim.holdNode('hpc', held!);
    // Act
    await t.start(start);
    await pump(t, async () => {
      const e = await ledger.get('sim-3');
      return !!e && outcomeByName(e, held!) === 'timed_out' && e.record.operations.every((o) => o.state !== 'pending');
    });
    // Assess
    const e = (await ledger.get('sim-3'))!;
    expect(e.record.nodes.find((n) => n.name === held)?.status).toBe(TIMED_OUT_STATUS);
    expect(e.record.demands[0]).toMatchObject({ created: 1, ready: 1 });
    expect(handle.sim.nodes('hpc').some((n) => n.Name === held)).toBe(false);
  });
});
