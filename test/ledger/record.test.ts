import { describe, expect, it } from 'vitest';
import {
  applyNodeStates,
  applySubmission,
  bodyHash,
  canonicalJson,
  closeDemand,
  createRequestId,
  excludedPlacementGroups,
  markCompensated,
  newEntry,
  nodeKey,
  openRemaining,
  remainingByDemand,
  settle,
  terminateRequestId,
  type NodeStateUpdate,
} from '../../src/ledger/record.ts';
import type { ScaleRequest, TerminateRequest } from '../../src/ledger/schemas.ts';
import type { SubmissionAttempt } from '../../src/ledger/types.ts';

const T0 = Date.UTC(2026, 0, 1);
const DEADLINE = 30 * 60_000;

function scale(): ScaleRequest {
  return {
    kind: 'scale',
    requestId: 'job-1',
    cluster: 'hpc',
    demands: [
      { nodearray: 'mpi', count: 4, colocated: true },
      { nodearray: 'ondemand', count: 3 },
    ],
  };
}

function attempt(over: Partial<SubmissionAttempt> = {}): SubmissionAttempt {
  return {
    generation: 0,
    cycleCloudRequestId: 'job-1-g0',
    state: 'accepted',
    operationId: 'op-1',
    sets: [
      { nodearray: 'mpi', machineType: 'HB', placementGroupId: 'pg-a', count: 4, added: 4, message: null, demands: [{ index: 0, count: 4 }] },
      { nodearray: 'ondemand', machineType: 'F32', placementGroupId: null, count: 3, added: 3, message: null, demands: [{ index: 1, count: 3 }] },
    ],
    submittedAtMs: T0,
    ...over,
  };
}

const node = (name: string, demand: number, outcome: NodeStateUpdate['outcome'], status = 'Ready'): NodeStateUpdate => ({ name, id: `id-${name}`, status, demand, outcome });

describe('record: new entries and ids', () => {
  it('starts queued with one demand status per demand and an absolute deadline', () => {
    const e = newEntry(scale(), T0, DEADLINE);
    expect(e.record.state).toBe('queued');
    expect(e.record.demands.map((d) => [d.index, d.requested, d.created, d.ready])).toEqual([
      [0, 4, 0, 0],
      [1, 3, 0, 0],
    ]);
    expect(e.deadlineAtMs).toBe(T0 + DEADLINE);
    expect(e.record.createdAt).toBe(new Date(T0).toISOString());
  });

  it('hashes content, not key order', () => {
    const a = scale();
    const b = JSON.parse(canonicalJson(a)) as ScaleRequest;
    const reordered = { cluster: b.cluster, demands: b.demands, requestId: b.requestId, kind: b.kind } as ScaleRequest;
    expect(bodyHash(reordered)).toBe(bodyHash(a));
    expect(bodyHash({ ...a, cluster: 'other' })).not.toBe(bodyHash(a));
  });

  it('derives readable CycleCloud ids and shortens long ones deterministically', () => {
    expect(createRequestId('job-1', 2)).toBe('job-1-g2');
    expect(terminateRequestId('drain-1')).toBe('drain-1-t');
    const long = 'x'.repeat(128);
    const id = createRequestId(long, 1);
    expect(id.length).toBeLessThanOrEqual(128);
    expect(id).toBe(createRequestId(long, 1));
    expect(id).not.toBe(createRequestId(long, 2));
    expect(createRequestId(`${'x'.repeat(127)}y`, 1)).not.toBe(id);
  });
});

describe('record: submissions and node states', () => {
  it('an intent attempt keeps the state; an accepted one sets submitted, created and machine types', () => {
    const e0 = newEntry(scale(), T0, DEADLINE);
    const intent = applySubmission(e0, attempt({ state: 'intent', operationId: null, sets: attempt().sets.map((s) => ({ ...s, added: null })) }), T0);
    expect(intent.record.state).toBe('queued');
    expect(intent.record.operations).toEqual([]);
    expect(intent.attempts).toHaveLength(1);

    const e1 = applySubmission(intent, attempt(), T0 + 1);
    expect(e1.attempts).toHaveLength(1);
    expect(e1.record.state).toBe('submitted');
    expect(e1.record.operations).toEqual([{ operationId: 'op-1', cycleCloudRequestId: 'job-1-g0', state: 'pending', action: 'create' }]);
    expect(e1.record.demands.map((d) => [d.created, d.machineType, d.placementGroupId])).toEqual([
      [4, 'HB', 'pg-a'],
      [3, 'F32', null],
    ]);
    expect(remainingByDemand(e1)).toEqual({ 0: 0, 1: 0 });
    // the input is not mutated
    expect(e0.record.state).toBe('queued');
  });

  it('attributes a short add to demands in node order', () => {
    const e = applySubmission(
      newEntry(scale(), T0, DEADLINE),
      attempt({
        sets: [
          {
            nodearray: 'ondemand',
            machineType: 'F32',
            placementGroupId: null,
            count: 7,
            added: 5,
            message: 'quota',
            demands: [
              { index: 0, count: 4 },
              { index: 1, count: 3 },
            ],
          },
        ],
      }),
      T0,
    );
    expect(e.record.demands.map((d) => d.created)).toEqual([4, 1]);
    expect(remainingByDemand(e)).toEqual({ 0: 0, 1: 2 });
  });

  it('counts ready nodes and marks the operation done when none is pending', () => {
    let e = applySubmission(newEntry(scale(), T0, DEADLINE), attempt(), T0);
    e = applyNodeStates(e, 'job-1-g0', [node('mpi-1', 0, 'ready'), node('mpi-2', 0, 'pending', 'Acquiring')], T0 + 5);
    expect(e.record.demands[0]!.ready).toBe(1);
    expect(e.record.operations[0]!.state).toBe('pending');
    expect(e.record.nodes.map((n) => n.name)).toEqual(['mpi-1', 'mpi-2']);

    const all = ['mpi-1', 'mpi-2', 'mpi-3', 'mpi-4'].map((n) => node(n, 0, 'ready')).concat(['od-1', 'od-2', 'od-3'].map((n) => node(n, 1, 'ready')));
    e = applyNodeStates(e, 'job-1-g0', all, T0 + 6);
    expect(e.record.nodes).toHaveLength(7);
    expect(e.record.demands.map((d) => d.ready)).toEqual([4, 3]);
    expect(e.record.operations[0]!.state).toBe('done');
  });

  it('failed nodes stop counting as created, so they are remaining again', () => {
    let e = applySubmission(newEntry(scale(), T0, DEADLINE), attempt(), T0);
    e = applyNodeStates(e, 'job-1-g0', [node('od-1', 1, 'ready'), node('od-2', 1, 'failed', 'Failed'), node('od-3', 1, 'timed_out', 'Acquiring')], T0);
    expect(e.record.demands[1]).toMatchObject({ created: 1, ready: 1 });
    expect(remainingByDemand(e)[1]).toBe(2);
  });

  it('keeps a known demand when the tracker reports null', () => {
    let e = applySubmission(newEntry(scale(), T0, DEADLINE), attempt(), T0);
    e = applyNodeStates(e, 'job-1-g0', [node('od-1', 1, 'pending', 'Acquiring')], T0);
    e = applyNodeStates(e, 'job-1-g0', [{ name: 'od-1', id: null, status: 'Ready', demand: null, outcome: 'ready' }], T0);
    expect(e.record.nodes[0]).toEqual({ name: 'od-1', id: 'id-od-1', status: 'Ready', demand: 1, startedAt: new Date(T0).toISOString() });
    expect(e.record.demands[1]!.ready).toBe(1);
  });
});

describe('record: compensation and settling', () => {
  it('compensated nodes no longer count and their group is excluded', () => {
    let e = applySubmission(
      newEntry(scale(), T0, DEADLINE),
      attempt({
        sets: [{ nodearray: 'mpi', machineType: 'HB', placementGroupId: 'pg-a', count: 4, added: 2, message: 'pg full', demands: [{ index: 0, count: 4 }] }],
      }),
      T0,
    );
    expect(remainingByDemand(e)[0]).toBe(2);
    e = markCompensated(e, { demandIndex: 0, placementGroupId: 'pg-a', nodeNames: ['mpi-1', 'mpi-2'], reason: 'only 2 of 4 added in pg-a' }, T0);
    e = markCompensated(e, { demandIndex: 0, placementGroupId: 'pg-a', nodeNames: ['mpi-1', 'mpi-2'], reason: 'only 2 of 4 added in pg-a' }, T0);
    expect(e.compensations).toHaveLength(1);
    expect(e.compensations![0]!.nodeNames).toEqual(['mpi-1', 'mpi-2']);
    expect(remainingByDemand(e)[0]).toBe(4);
    expect(excludedPlacementGroups(e)).toEqual(['pg-a']);
    expect(e.record.demands[0]!.reason).toContain('only 2 of 4');
    // later reports of those nodes (terminating) do not bring them back
    e = applyNodeStates(e, 'job-1-g0', [node('mpi-1', 0, 'ready'), node('mpi-2', 0, 'gone', 'Off')], T0);
    expect(e.record.demands[0]).toMatchObject({ created: 0, ready: 0 });
  });

  it("a node that reuses a compensated node's name counts as a new node (CycleCloud reuses removed names)", () => {
    // Prepare: generation 0's gang mpi-1..4 broke and was compensated and terminated; CycleCloud
    // removed those nodes and named generation 1's gang mpi-1..4 again (new ids).
    const gang = (gen: number) => ['mpi-1', 'mpi-2', 'mpi-3', 'mpi-4'].map((name) => ({ name, id: `g${gen}-${name}`, status: 'Ready', demand: 0, outcome: 'ready' as const }));
    const request: ScaleRequest = { kind: 'scale', requestId: 'job-1', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 4, colocated: true }] };
    const set = (pg: string) => [{ nodearray: 'mpi', machineType: 'HB', placementGroupId: pg, count: 4, added: 4, message: null, demands: [{ index: 0, count: 4 }] }];
    let e = applySubmission(newEntry(request, T0, DEADLINE), attempt({ sets: set('pg-a') }), T0);
    e = applyNodeStates(e, 'job-1-g0', gang(0), T0);
    const old = gang(0);
    e = markCompensated(e, { demandIndex: 0, placementGroupId: 'pg-a', nodeNames: old.map((n) => n.name), nodeKeys: old.map((n) => nodeKey(n)), reason: 'mpi-1 failed' }, T0);
    e = applyNodeStates(
      e,
      'op-c',
      old.map((n) => ({ ...n, status: 'Terminated', demand: null, outcome: 'gone' as const })),
      T0,
    );
    e = applySubmission(e, attempt({ generation: 1, cycleCloudRequestId: 'job-1-g1', operationId: 'op-2', sets: set('pg-b') }), T0);
    // Act
    e = settle(applyNodeStates(e, 'job-1-g1', gang(1), T0), T0);
    // Assess
    expect(e.record.demands[0]).toMatchObject({ created: 4, ready: 4 });
    expect(e.record.state).toBe('fulfilled');
    expect(e.record.nodes.filter((n) => n.status === 'Ready').map((n) => n.id)).toEqual(gang(1).map((n) => n.id));
    expect(e.record.nodes.filter((n) => n.status === 'Terminated').map((n) => n.id)).toEqual(old.map((n) => n.id));
  });

  it('settles fulfilled when every demand is ready', () => {
    let e = applySubmission(newEntry(scale(), T0, DEADLINE), attempt(), T0);
    const nodes = ['m1', 'm2', 'm3', 'm4'].map((n) => node(n, 0, 'ready')).concat(['o1', 'o2', 'o3'].map((n) => node(n, 1, 'ready')));
    expect(settle(e, T0).record.state).toBe('submitted');
    e = settle(applyNodeStates(e, 'job-1-g0', nodes, T0), T0 + 1);
    expect(e.record.state).toBe('fulfilled');
    expect(e.record.reason).toBeNull();
  });

  it('stays open while nodes are pending or demands wait before the deadline', () => {
    let e = applySubmission(newEntry(scale(), T0, DEADLINE), attempt(), T0);
    e = applyNodeStates(e, 'job-1-g0', ['m1', 'm2', 'm3', 'm4'].map((n) => node(n, 0, 'ready')).concat([node('o1', 1, 'pending', 'Acquiring')]), T0);
    expect(settle(e, T0 + DEADLINE + 1).record.state).toBe('submitted');
    e = applyNodeStates(e, 'job-1-g0', [node('o1', 1, 'failed', 'Failed'), node('o2', 1, 'ready'), node('o3', 1, 'ready')], T0);
    expect(openRemaining(e)).toEqual({ 1: 1 });
    expect(settle(e, T0 + 1000).record.state).toBe('submitted');
    const late = settle(e, T0 + DEADLINE);
    expect(late.record.state).toBe('partially_fulfilled');
    expect(late.record.reason).toContain('deadline');
    expect(late.record.reason).toContain('demand 1: 2/3 ready');
  });

  it('fails with the closed demand reason when nothing became ready', () => {
    let e = newEntry(scale(), T0, DEADLINE);
    e = closeDemand(e, 0, 'maxPlacementGroupSize=4 (mpi/HB)', T0);
    expect(settle(e, T0).record.state).toBe('queued');
    e = closeDemand(e, 1, 'no capacity', T0);
    const s = settle(e, T0);
    expect(s.record.state).toBe('failed');
    expect(s.record.reason).toContain('maxPlacementGroupSize=4 (mpi/HB)');
    expect(s.nextAttemptAtMs).toBeNull();
  });

  it('a final entry is not changed by settle', () => {
    const e = settle(closeDemand(closeDemand(newEntry(scale(), T0, DEADLINE), 0, 'x', T0), 1, 'y', T0), T0);
    expect(settle(e, T0 + 5)).toBe(e);
  });

  it('settles terminate requests from their operation and node outcomes', () => {
    const t: TerminateRequest = { kind: 'terminate', requestId: 'drain-1', cluster: 'hpc', names: ['a', 'b'] };
    let e = newEntry(t, T0, DEADLINE);
    expect(e.record.demands).toEqual([]);
    expect(settle(e, T0).record.state).toBe('queued');
    e.record.operations.push({ operationId: 'op-t', cycleCloudRequestId: 'drain-1-t', state: 'pending', action: 'terminate' });
    e = applyNodeStates(e, 'drain-1-t', [{ name: 'a', id: 'ia', status: 'Terminating', demand: null, outcome: 'pending' }], T0);
    expect(settle(e, T0).record.state).toBe('queued');
    e = applyNodeStates(
      e,
      'drain-1-t',
      [
        { name: 'a', id: 'ia', status: 'Off', demand: null, outcome: 'gone' },
        { name: 'b', id: 'ib', status: 'Failed', demand: null, outcome: 'failed' },
      ],
      T0,
    );
    expect(e.record.operations[0]!.state).toBe('done');
    const s = settle(e, T0);
    expect(s.record.state).toBe('partially_fulfilled');
    expect(s.record.reason).toContain('b (Failed)');
  });

  it('records a start (a terminate message with action "start") as kind start: fulfilled when its nodes are Ready', () => {
    const t: TerminateRequest = { kind: 'terminate', action: 'start', requestId: 'resume-1', cluster: 'hpc', names: ['a', 'b'] };
    let e = newEntry(t, T0, DEADLINE);
    expect(e.record.kind).toBe('start');
    expect(newEntry({ ...t, action: 'shutdown' }, T0, DEADLINE).record.kind).toBe('terminate');
    e.record.operations.push({ operationId: 'op-s', cycleCloudRequestId: 'resume-1-t', state: 'pending', action: 'start' });
    const ready = applyNodeStates(
      e,
      'resume-1-t',
      [
        { name: 'a', id: 'ia', status: 'Ready', demand: null, outcome: 'ready' },
        { name: 'b', id: 'ib', status: 'Ready', demand: null, outcome: 'ready' },
      ],
      T0,
    );
    expect(settle(ready, T0).record).toMatchObject({ kind: 'start', state: 'fulfilled', reason: null });
    e = applyNodeStates(
      e,
      'resume-1-t',
      [
        { name: 'a', id: 'ia', status: 'Ready', demand: null, outcome: 'ready' },
        { name: 'b', id: 'ib', status: 'Off', demand: null, outcome: 'failed' },
      ],
      T0,
    );
    const s = settle(e, T0);
    expect(s.record.state).toBe('partially_fulfilled');
    expect(s.record.reason).toBe('1 of 2 nodes did not start: b (Off)');
  });
});
