import { beforeEach, describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { applyNodeStates, applySubmission, outcomeOf } from '../../src/ledger/record.ts';
import type { LedgerEntry, NodeOutcome } from '../../src/ledger/types.ts';
import { reconcileSnapshot, type ReconcileDeps, type SnapshotNode } from '../../src/tracking/reconcile.ts';
import { uniqueNames } from '../helpers/names.ts';

/** The outcome the ledger records for the latest node of that name. */
const outcomeByName = (e: LedgerEntry, name: string) => {
  const n = e.record.nodes.findLast((x) => x.name === name);
  return n ? outcomeOf(e, n) : undefined;
};

const T0 = 1_700_000_000_000;
let ledger: RequestLedger;

/** A scale request submitted at `submittedAtMs` whose nodes have the given outcomes. */
async function request(requestId: string, nodes: Record<string, NodeOutcome>, submittedAtMs = T0, opState: 'pending' | 'done' = 'pending'): Promise<void> {
  await ledger.admit({ kind: 'scale', requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: Object.keys(nodes).length }] }, submittedAtMs);
  const count = Object.keys(nodes).length;
  await ledger.update(requestId, (e) => {
    let x = applySubmission(
      e,
      {
        generation: 0,
        cycleCloudRequestId: `${requestId}-g0`,
        state: 'accepted',
        operationId: `op-${requestId}`,
        sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count, added: count, message: null, demands: [{ index: 0, count }] }],
        submittedAtMs,
      },
      submittedAtMs,
    );
    x = applyNodeStates(
      x,
      `op-${requestId}`,
      Object.entries(nodes).map(([name, outcome]) => ({ name, id: `id-${name}`, status: outcome === 'ready' ? 'Ready' : 'Acquiring', demand: 0, outcome })),
      submittedAtMs,
    );
    const op = x.record.operations[0]!;
    op.state = opState;
    return x;
  });
}

function fakes() {
  const woken: string[] = [];
  const continued: string[] = [];
  const capacity: { nodearray: string; machineType: string; reason: string }[] = [];
  const deps: ReconcileDeps = {
    ledger,
    tracker: {
      wake: async (_c, op) => {
        woken.push(op);
        return true;
      },
      sendContinue: async (id) => void continued.push(id),
    },
    capacity: { recordFailure: async (f) => void capacity.push(f) },
  };
  return { deps, woken, continued, capacity };
}

const snap = (name: string, status = 'Ready', over: Partial<SnapshotNode> = {}): SnapshotNode => ({
  name,
  id: `id-${name}`,
  status,
  nodearray: 'ondemand',
  machineType: 'Standard_F32s_v2',
  ...over,
});

beforeEach(async () => {
  const names = uniqueNames();
  const storage = Storage.fromConnectionString(inject('storageConnectionString'));
  await storage.ensure({ tables: [names.requestsTable] });
  ledger = new RequestLedger({ storage, names, now: () => T0 });
});

describe('reconcileSnapshot', () => {
  it('marks nodes CycleCloud no longer has as gone and wakes the tracker', async () => {
    // Prepare: ondemand-2 vanished; ondemand-3's name now belongs to another node.
    await request('r1', { 'ondemand-1': 'ready', 'ondemand-2': 'pending', 'ondemand-3': 'pending' });
    const { deps, woken } = fakes();
    // Act
    const result = await reconcileSnapshot(deps, 'hpc', [snap('ondemand-1'), snap('ondemand-3', 'Acquiring', { id: 'someone-else' })], T0 + 600_000);
    // Assess
    const e = (await ledger.get('r1'))!;
    expect(Object.fromEntries(e.record.nodes.map((n) => [n.name, outcomeOf(e, n)]))).toEqual({ 'ondemand-1': 'ready', 'ondemand-2': 'gone', 'ondemand-3': 'gone' });
    expect(e.record.demands[0]).toMatchObject({ created: 1, ready: 1 });
    expect(result).toMatchObject({ requests: 1, updated: 1, gone: 2, failed: 0, woken: 1 });
    expect(woken).toEqual(['r1-g0']); // trackers are keyed by the CycleCloud request id
  });

  it('turns a capacity failure into a failed node and one capacity record per bucket', async () => {
    await request('r2', { 'ondemand-1': 'pending', 'ondemand-2': 'pending' });
    const { deps, capacity } = fakes();
    const msg = 'Allocation failed. We do not have sufficient capacity for the requested VM size in this region.';
    const result = await reconcileSnapshot(deps, 'hpc', [snap('ondemand-1', 'Failed', { statusMessage: msg }), snap('ondemand-2', 'Failed', { statusMessage: msg })], T0 + 600_000);
    expect(result).toMatchObject({ failed: 2, capacityFailures: 1 });
    expect(capacity).toEqual([{ cluster: 'hpc', nodearray: 'ondemand', machineType: 'Standard_F32s_v2', reason: expect.stringContaining('sufficient capacity') }]);
    expect(outcomeByName((await ledger.get('r2'))!, 'ondemand-1')).toBe('failed');
  });

  it('does not re-record a failure the ledger already knows', async () => {
    await request('r3', { 'ondemand-1': 'failed', 'ondemand-2': 'ready' });
    const { deps, capacity } = fakes();
    const result = await reconcileSnapshot(deps, 'hpc', [snap('ondemand-1', 'Failed', { statusMessage: 'capacity' }), snap('ondemand-2')], T0 + 600_000);
    expect(result).toMatchObject({ updated: 0, capacityFailures: 0 });
    expect(capacity).toEqual([]);
  });

  it('leaves requests submitted after the snapshot alone', async () => {
    await request('r4', { 'ondemand-1': 'pending' }, T0 + 590_000);
    const { deps } = fakes();
    const result = await reconcileSnapshot(deps, 'hpc', [], T0 + 600_000);
    expect(result).toMatchObject({ requests: 1, updated: 0 });
    expect(outcomeByName((await ledger.get('r4'))!, 'ondemand-1')).toBe('pending');
  });

  it('asks the pipeline to look again when no operation is pending', async () => {
    await request('r5', { 'ondemand-1': 'ready' }, T0, 'done');
    const { deps, continued, woken } = fakes();
    await reconcileSnapshot(deps, 'hpc', [], T0 + 600_000);
    expect(continued).toEqual(['r5']);
    expect(woken).toEqual([]);
  });
});
