/**
 * The orphan reconciler on azurite with a fake CycleCloud: a live node carrying the scaler's tags
 * that no record accounts for is left alone for the grace period, then adopted into its open
 * record (when a demand still lacks it) or terminated; every event is counted.
 */
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import type { StorageNames } from '../../src/platform/names.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { applySubmission, settle, closeDemand } from '../../src/ledger/record.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import type { SnapshotNodeRef } from '../../src/snapshots/model.ts';
import { reconcileOrphans, orphanTerminateRequestId, FINAL_KEEP_MS } from '../../src/tracking/orphans.ts';
import { FakeCycleCloud, FakeState } from '../requests/fakes.ts';
import { uniqueNames } from '../helpers/names.ts';

const T0 = Date.parse('2026-11-30T10:00:00Z');
const GRACE = 10 * 60_000;
let names: StorageNames;
let storage: Storage;
let ledger: RequestLedger;
let cc: FakeCycleCloud;
let state: FakeState;
const woken: string[] = [];

beforeEach(async () => {
  names = uniqueNames();
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
  await storage.ensure({ tables: [names.requestsTable, names.stateTable] });
  ledger = new RequestLedger({ storage, names, now: () => T0 });
  cc = new FakeCycleCloud();
  state = new FakeState();
  woken.length = 0;
});

const deps = () => ({
  ledger,
  cyclecloud: cc,
  storage,
  names,
  state,
  graceMs: GRACE,
  tracker: {
    wake: async (_c: string, id: string) => {
      woken.push(id);
      return true;
    },
    sendContinue: async () => undefined,
  },
});

const node = (name: string, requestId: string, cycleCloudRequestId: string, status = 'Ready'): SnapshotNodeRef => ({
  name,
  id: `id-${name}`,
  status,
  nodearray: 'ondemand',
  machineType: 'Standard_F32s_v2',
  placementGroupId: null,
  mark: { requestId, cycleCloudRequestId },
});

async function accepted(requestId: string, count: number, added: number): Promise<void> {
  const request: ScaleRequest = { kind: 'scale', requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count }] };
  await ledger.admit(request, T0);
  await ledger.update(requestId, (e) =>
    applySubmission(
      e,
      {
        generation: 0,
        cycleCloudRequestId: `${requestId}-g0`,
        state: 'accepted',
        operationId: null,
        submittedAtMs: T0,
        sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count, added, message: null, demands: [{ index: 0, count }] }],
      },
      T0,
    ),
  );
}

describe('orphan nodes', () => {
  it('a tagged node of no record is left for the grace period, then terminated once and counted', async () => {
    const orphan = node('ondemand-9', 'gone-request', 'gone-request-g0');
    const first = await reconcileOrphans(deps(), 'hpc', [orphan], T0);
    const within = await reconcileOrphans(deps(), 'hpc', [orphan], T0 + GRACE - 1);
    expect(first).toEqual({ unaccounted: 1, adopted: 0, terminated: 0 });
    expect(within).toEqual({ unaccounted: 1, adopted: 0, terminated: 0 });
    expect(cc.calls).toEqual([]);
    const after = await reconcileOrphans(deps(), 'hpc', [orphan], T0 + GRACE);
    expect(after.terminated).toBe(1);
    expect(cc.calls).toEqual([expect.objectContaining({ method: 'terminateNodes', requestId: orphanTerminateRequestId({ id: 'id-ondemand-9', name: 'ondemand-9' }) })]);
    expect((cc.calls[0]!.body as { ids: string[] }).ids).toEqual(['id-ondemand-9']);
    expect(state.counts.orphanNodesTerminated).toBe(1);
    // Terminating now: not live, nothing more to do.
    expect(await reconcileOrphans(deps(), 'hpc', [{ ...orphan, status: 'Terminating' }], T0 + GRACE + 60_000)).toEqual({ unaccounted: 0, adopted: 0, terminated: 0 });
  });

  it('nodes a record accounts for, untagged nodes and creates still being resolved are never touched', async () => {
    await accepted('mine', 2, 2);
    await ledger.update('mine', (e) => {
      e.record.nodes = [{ name: 'ondemand-1', id: 'id-ondemand-1', status: 'Ready', demand: 0 }];
      e.nodeOutcomes = { 'id:id-ondemand-1': 'ready' };
    });
    const request: ScaleRequest = { kind: 'scale', requestId: 'resolving', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
    await ledger.admit(request, T0);
    await ledger.update('resolving', (e) =>
      applySubmission(e, { generation: 0, cycleCloudRequestId: 'resolving-g0', state: 'unknown', operationId: null, submittedAtMs: T0, sets: [] }, T0),
    );
    const nodes = [
      node('ondemand-1', 'mine', 'mine-g0'),
      node('ondemand-2', 'mine', 'mine-g0'), // not yet seen by the tracker: its operation is pending
      node('ondemand-3', 'resolving', 'resolving-g0'),
      { name: 'manual-1', id: 'm1', status: 'Ready', nodearray: 'ondemand', placementGroupId: null },
    ];
    for (const at of [T0, T0 + GRACE, T0 + 3 * GRACE]) expect(await reconcileOrphans(deps(), 'hpc', nodes, at)).toEqual({ unaccounted: 0, adopted: 0, terminated: 0 });
    expect(cc.calls).toEqual([]);
  });

  it('a node of an accepted create that its open record missed is adopted into the demand that lacks it', async () => {
    await accepted('short', 2, 2);
    // The tracker finished having seen one node only (a lagging list), so the operation is done.
    await ledger.update('short', (e) => {
      e.record.nodes = [{ name: 'ondemand-1', id: 'id-ondemand-1', status: 'Ready', demand: 0 }];
      e.nodeOutcomes = { 'id:id-ondemand-1': 'ready' };
      e.record.demands[0]!.created = 1;
      e.record.operations[0]!.state = 'done';
    });
    const missed = node('ondemand-2', 'short', 'short-g0');
    await reconcileOrphans(deps(), 'hpc', [missed], T0);
    const result = await reconcileOrphans(deps(), 'hpc', [missed], T0 + GRACE);
    expect(result).toEqual({ unaccounted: 1, adopted: 1, terminated: 0 });
    const e = (await ledger.get('short'))!;
    expect(e.record.nodes.map((n) => [n.name, n.demand])).toEqual([
      ['ondemand-1', 0],
      ['ondemand-2', 0],
    ]);
    expect(e.record.demands[0]!.ready).toBe(2);
    expect(state.counts.orphanNodesAdopted).toBe(1);
    expect(woken).toEqual(['short-g0']);
    expect(cc.calls).toEqual([]);
  });

  it('a node of a final record that does not list it is terminated, not adopted', async () => {
    await accepted('ended', 1, 1);
    await ledger.update('ended', (e) => {
      e.record.operations[0]!.state = 'done';
      e.record.demands[0]!.created = 0;
      return settle(closeDemand(e, 0, 'gave up', T0), T0);
    });
    expect((await ledger.get('ended'))!.record.state).toBe('failed');
    const stray = node('ondemand-5', 'ended', 'ended-g0');
    await reconcileOrphans(deps(), 'hpc', [stray], T0);
    expect((await reconcileOrphans(deps(), 'hpc', [stray], T0 + GRACE)).terminated).toBe(1);
  });

  it("a final record's entry is read once per keep period, not once per snapshot, and again as soon as it stops accounting", async () => {
    await accepted('done-1', 1, 1);
    await ledger.update('done-1', (e) => {
      e.record.nodes = [{ name: 'ondemand-1', id: 'id-ondemand-1', status: 'Ready', demand: 0 }];
      e.nodeOutcomes = { 'id:id-ondemand-1': 'ready' };
      e.record.demands[0]!.created = 1;
      e.record.demands[0]!.ready = 1;
      e.record.operations[0]!.state = 'done';
      return settle(e, T0);
    });
    expect((await ledger.get('done-1'))!.record.state).toBe('fulfilled');
    const reads: string[] = [];
    const counting = {
      get: (id: string) => {
        reads.push(id);
        return ledger.get(id);
      },
      update: ledger.update.bind(ledger),
    };
    const mine = node('ondemand-1', 'done-1', 'done-1-g0');
    // What is kept is per ledger object: one wrapper across the passes.
    const d = { ...deps(), ledger: counting };
    for (let k = 0; k < 5; k++) expect((await reconcileOrphans(d, 'hpc', [mine], T0 + k * 2_000)).unaccounted).toBe(0);
    expect(reads).toEqual(['done-1']);
    expect((await reconcileOrphans(d, 'hpc', [mine], T0 + FINAL_KEEP_MS + 10_000)).unaccounted).toBe(0);
    expect(reads).toEqual(['done-1', 'done-1']);
    // A node the kept entry does not list is an orphan candidate, and the entry is read afresh next time.
    const stray = node('ondemand-9', 'done-1', 'done-1-g0');
    expect((await reconcileOrphans(d, 'hpc', [stray], T0 + FINAL_KEEP_MS + 12_000)).unaccounted).toBe(1);
    await reconcileOrphans(d, 'hpc', [mine], T0 + FINAL_KEEP_MS + 14_000);
    expect(reads).toEqual(['done-1', 'done-1', 'done-1']);
  });
});
