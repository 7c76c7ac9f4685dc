import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_MACHINE_CONFIG,
  TIMED_OUT_STATUS,
  createOutcome,
  gangKey,
  initialState,
  step,
  terminateOutcome,
  type MachineConfig,
  type ObservedNode,
  type TrackerAction,
  type TrackerState,
} from '../../src/tracking/machine.ts';
import type { TrackStart } from '../../src/tracking/types.ts';

const T0 = 1_700_000_000_000;

function createStart(over: Partial<TrackStart> = {}): TrackStart {
  return {
    cluster: 'hpc',
    operationId: 'op-1',
    cycleCloudRequestId: 'job-1-g0',
    requestId: 'job-1',
    action: 'create',
    generation: 0,
    sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count: 2, added: 2, colocated: false, demands: [{ index: 0, count: 2 }] }],
    ...over,
  };
}

const gangStart = (generation = 0): TrackStart =>
  createStart({
    generation,
    sets: [{ nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg-a', count: 3, added: 3, colocated: true, demands: [{ index: 0, count: 3 }] }],
  });

function node(name: string, status: string, over: Partial<ObservedNode> = {}): ObservedNode {
  return { name, id: `id-${name}`, status, nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, ...over };
}
const mpi = (name: string, status: string, over: Partial<ObservedNode> = {}): ObservedNode =>
  node(name, status, { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg-a', ...over });

const ofType = <T extends TrackerAction['type']>(actions: TrackerAction[], type: T) => actions.filter((a): a is Extract<TrackerAction, { type: T }> => a.type === type);

describe('status mapping', () => {
  it.each([
    ['Acquiring', undefined, 'pending'],
    ['Preparing', undefined, 'pending'],
    ['Allocation', undefined, 'pending'],
    ['Terminating', undefined, 'pending'],
    ['SomethingNew', undefined, 'pending'],
    ['', undefined, 'pending'],
    ['Ready', undefined, 'ready'],
    ['Started', '10.0.0.4', 'ready'],
    ['Started', undefined, 'pending'],
    ['Failed', undefined, 'failed'],
    ['Unavailable', undefined, 'failed'],
    ['Terminated', undefined, 'gone'],
    ['Off', undefined, 'gone'],
    ['Deallocated', undefined, 'gone'],
  ] as const)('create: %s (ip %s) → %s', (status, ip, outcome) => {
    expect(createOutcome(status, ip)).toBe(outcome);
  });

  it.each([
    ['Terminating', 'pending'],
    ['Ready', 'pending'],
    ['Terminated', 'gone'],
    ['Off', 'gone'],
    ['Deallocated', 'gone'],
    ['Failed', 'failed'],
  ] as const)('terminate: %s → %s', (status, outcome) => {
    expect(terminateOutcome(status)).toBe(outcome);
  });
});

describe('create tracking', () => {
  it('follows nodes to Ready and ends with a final action', () => {
    // Prepare
    const s0 = initialState(createStart(), T0);
    // Act
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Acquiring'), node('ondemand-2', 'Preparing')] });
    const r2 = step(r1.state, { nowMs: T0 + 20_000, nodes: [node('ondemand-1', 'Ready'), node('ondemand-2', 'Ready')] });
    // Assess
    expect(ofType(r1.actions, 'schedule')).toEqual([{ type: 'schedule', atMs: T0 + 20_000 }]);
    expect(r1.state.nodes.map((n) => [n.name, n.outcome, n.demandIndex])).toEqual([
      ['ondemand-1', 'pending', 0],
      ['ondemand-2', 'pending', 0],
    ]);
    expect(r2.state.final).toBe(true);
    expect(r2.actions).toEqual([{ type: 'final' }]);
    expect(r2.changed).toBe(true);
  });

  it('does not finish before every added node has been seen', () => {
    const s0 = initialState(createStart(), T0);
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Ready')] });
    expect(r.state.final).toBe(false);
    expect(ofType(r.actions, 'schedule')).toHaveLength(1);
  });

  it('finishes at once when nothing was added', () => {
    const s0 = initialState(createStart({ sets: [{ ...createStart().sets[0]!, added: 0 }] }), T0);
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [] });
    expect(r.actions).toEqual([{ type: 'final' }]);
  });

  it('attributes nodes to demands in name order across sets', () => {
    // Prepare: one set with two demands (2 + 1), names out of order and a two-digit index.
    const s0 = initialState(
      createStart({
        sets: [
          {
            nodearray: 'ondemand',
            machineType: 'Standard_F32s_v2',
            placementGroupId: null,
            count: 3,
            added: 3,
            colocated: false,
            demands: [
              { index: 0, count: 2 },
              { index: 1, count: 1 },
            ],
          },
        ],
      }),
      T0,
    );
    // Act
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-10', 'Acquiring'), node('ondemand-9', 'Acquiring'), node('ondemand-2', 'Acquiring')] });
    // Assess
    const byName = Object.fromEntries(r.state.nodes.map((n) => [n.name, n.demandIndex]));
    expect(byName).toEqual({ 'ondemand-2': 0, 'ondemand-9': 0, 'ondemand-10': 1 });
  });

  it('a node missing from the list after being seen is gone', () => {
    const s0 = initialState(createStart(), T0);
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Ready'), node('ondemand-2', 'Acquiring')] });
    const r2 = step(r1.state, { nowMs: T0 + 20_000, nodes: [node('ondemand-1', 'Ready')] });
    expect(r2.state.nodes.find((n) => n.name === 'ondemand-2')?.outcome).toBe('gone');
    expect(r2.state.final).toBe(true);
  });

  it('a loose failure is just failed: no terminate, no re-plan', () => {
    const s0 = initialState(createStart(), T0);
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Ready'), node('ondemand-2', 'Failed', { statusMessage: 'AllocationFailed' })] });
    expect(r.actions).toEqual([{ type: 'final' }]);
    expect(r.state.nodes.find((n) => n.name === 'ondemand-2')).toMatchObject({ outcome: 'failed', statusMessage: 'AllocationFailed' });
  });

  it('a failed outcome is not undone by a later status', () => {
    const s0 = initialState(createStart(), T0);
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Failed'), node('ondemand-2', 'Acquiring')] });
    const r2 = step(r1.state, { nowMs: T0 + 20_000, nodes: [node('ondemand-1', 'Acquiring'), node('ondemand-2', 'Acquiring')] });
    expect(r2.state.nodes[0]!.outcome).toBe('failed');
  });

  it('does not mutate the previous state', () => {
    const s0 = initialState(createStart(), T0);
    const copy = structuredClone(s0);
    step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Ready')] });
    expect(s0).toEqual(copy);
  });
});

describe('boot deadline', () => {
  const config: MachineConfig = { ...DEFAULT_MACHINE_CONFIG, bootTimeoutMs: 10 * 60_000 };

  it('times out pending loose nodes and terminates them', () => {
    // Prepare
    const s0 = initialState(createStart(), T0, config);
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Ready'), node('ondemand-2', 'Acquiring')] }, config);
    // Act
    const r2 = step(r1.state, { nowMs: T0 + 10 * 60_000, nodes: [node('ondemand-1', 'Ready'), node('ondemand-2', 'Preparing')] }, config);
    // Assess
    expect(r2.state.nodes.find((n) => n.name === 'ondemand-2')).toMatchObject({ outcome: 'timed_out', status: TIMED_OUT_STATUS, terminating: true });
    expect(r2.actions).toEqual([{ type: 'terminate', names: ['ondemand-2'], cause: 'timeout', key: 'to' }, { type: 'final' }]);
  });

  it('only reports timed-out nodes when TERMINATE_ON_BOOT_TIMEOUT is off', () => {
    const off = { ...config, terminateOnBootTimeout: false };
    const s0 = initialState(createStart(), T0, off);
    const r = step(s0, { nowMs: T0 + 10 * 60_000, nodes: [node('ondemand-1', 'Ready'), node('ondemand-2', 'Acquiring')] }, off);
    expect(r.actions).toEqual([{ type: 'final' }]);
    expect(r.state.nodes[1]!.outcome).toBe('timed_out');
  });

  it('applies the deadline even when the poll failed', () => {
    const s0 = initialState(createStart(), T0, config);
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Acquiring'), node('ondemand-2', 'Acquiring')] }, config);
    const r2 = step(r1.state, { nowMs: T0 + 11 * 60_000, nodes: null }, config);
    expect(r2.state.final).toBe(true);
    expect(ofType(r2.actions, 'terminate')[0]?.names).toEqual(['ondemand-1', 'ondemand-2']);
  });

  it('never schedules a poll past the deadline', () => {
    const s0 = initialState(createStart(), T0, config);
    let s: TrackerState = s0;
    let now = s0.nextPollAtMs;
    const times: number[] = [];
    for (let i = 0; i < 30 && !s.final; i++) {
      const r = step(s, { nowMs: now, nodes: [node('ondemand-1', 'Acquiring'), node('ondemand-2', 'Acquiring')] }, config);
      s = r.state;
      const sched = ofType(r.actions, 'schedule')[0];
      if (sched) {
        times.push(sched.atMs);
        now = sched.atMs;
      }
    }
    expect(s.final).toBe(true);
    expect(Math.max(...times)).toBe(T0 + 10 * 60_000);
  });

  it('a terminate operation times out without terminating again', () => {
    const s0 = initialState(createStart({ action: 'terminate', sets: [], nodeNames: ['ondemand-1'] }), T0, config);
    const r = step(s0, { nowMs: T0 + 10 * 60_000, nodes: [node('ondemand-1', 'Terminating')] }, config);
    expect(r.actions).toEqual([{ type: 'final' }]);
    expect(r.state.nodes[0]!.outcome).toBe('timed_out');
  });
});

describe('colocated gangs', () => {
  it('a failed member terminates the whole gang and re-plans the demand', () => {
    // Prepare
    const s0 = initialState(gangStart(), T0);
    // Act
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [mpi('mpi-1', 'Ready'), mpi('mpi-2', 'Failed', { statusMessage: 'boom' }), mpi('mpi-3', 'Acquiring')] });
    // Assess
    expect(ofType(r.actions, 'terminate')).toEqual([{ type: 'terminate', names: ['mpi-1', 'mpi-2', 'mpi-3'], cause: 'gang', key: 'c0', demandIndex: 0, placementGroupId: 'pg-a' }]);
    const replan = ofType(r.actions, 'replan');
    expect(replan).toHaveLength(1);
    expect(replan[0]).toMatchObject({ demandIndex: 0, placementGroupId: 'pg-a', nodeNames: ['mpi-1', 'mpi-2', 'mpi-3'] });
    expect(replan[0]!.reason).toContain('mpi-2 (Failed: boom)');
    expect(r.state.final).toBe(true);
    expect(r.state.nodes.map((n) => n.outcome)).toEqual(['gone', 'failed', 'gone']);
  });

  it('compensates a gang once, even if more members fail later', () => {
    const s0 = initialState(
      createStart({
        sets: [
          {
            nodearray: 'mpi',
            machineType: 'Standard_HB120rs_v3',
            placementGroupId: 'pg-a',
            count: 4,
            added: 4,
            colocated: true,
            demands: [
              { index: 0, count: 2 },
              { index: 1, count: 2 },
            ],
          },
        ],
      }),
      T0,
    );
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [mpi('mpi-1', 'Failed'), mpi('mpi-2', 'Acquiring'), mpi('mpi-3', 'Acquiring'), mpi('mpi-4', 'Acquiring')] });
    const r2 = step(r1.state, { nowMs: T0 + 20_000, nodes: [mpi('mpi-1', 'Terminating'), mpi('mpi-2', 'Terminating'), mpi('mpi-3', 'Ready'), mpi('mpi-4', 'Ready')] });
    // Demand 0 (mpi-1, mpi-2) is compensated; demand 1 is untouched and completes.
    expect(ofType(r1.actions, 'replan').map((a) => a.demandIndex)).toEqual([0]);
    expect(ofType(r1.actions, 'terminate')[0]?.names).toEqual(['mpi-1', 'mpi-2']);
    expect(ofType(r2.actions, 'replan')).toEqual([]);
    expect(ofType(r2.actions, 'terminate')).toEqual([]);
    expect(r2.state.final).toBe(true);
  });

  it('a timed-out member breaks the gang too', () => {
    const config = { ...DEFAULT_MACHINE_CONFIG, bootTimeoutMs: 60_000 };
    const s0 = initialState(gangStart(), T0, config);
    const r = step(s0, { nowMs: T0 + 60_000, nodes: [mpi('mpi-1', 'Ready'), mpi('mpi-2', 'Ready'), mpi('mpi-3', 'Preparing')] }, config);
    expect(ofType(r.actions, 'terminate')).toEqual([{ type: 'terminate', names: ['mpi-1', 'mpi-2', 'mpi-3'], cause: 'gang', key: 'c0', demandIndex: 0, placementGroupId: 'pg-a' }]);
    expect(ofType(r.actions, 'replan')).toHaveLength(1);
  });

  it('closes the demand instead of re-planning when the generations are used up', () => {
    const s0 = initialState(gangStart(3), T0);
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [mpi('mpi-1', 'Failed'), mpi('mpi-2', 'Ready'), mpi('mpi-3', 'Ready')] });
    expect(ofType(r.actions, 'replan')).toEqual([]);
    expect(ofType(r.actions, 'close')[0]?.reason).toContain('MAX_REPLAN_ATTEMPTS=3');
    expect(ofType(r.actions, 'terminate')).toHaveLength(1);
  });

  it('leaves gangs compensated by the submission alone', () => {
    const s0 = initialState(gangStart(), T0);
    const r = step(s0, {
      nowMs: T0 + 5_000,
      nodes: [mpi('mpi-1', 'Failed'), mpi('mpi-2', 'Terminating'), mpi('mpi-3', 'Terminating')],
      compensated: new Set(['mpi-1', 'mpi-2', 'mpi-3']),
    });
    expect(ofType(r.actions, 'replan')).toEqual([]);
    expect(ofType(r.actions, 'terminate')).toEqual([]);
  });

  it('does not wait for nodes of a group the submission compensated that CycleCloud already removed', () => {
    // Prepare: the partial gang was terminated (and removed) before the create's first poll
    const s0 = initialState(gangStart(), T0);
    // Act
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [], compensated: new Set(['id:id-mpi-1', 'id:id-mpi-2', 'id:id-mpi-3']), compensatedGroups: new Set(['pg-a']) });
    // Assess: final now, not polling until the boot deadline for nodes that will never show
    expect(r.state.final).toBe(true);
    expect(r.actions).toEqual([{ type: 'final' }]);
  });

  it('is not final on a failed poll of a written-off group whose members were never listed (they may still show up)', () => {
    // Prepare: the group was written off before CycleCloud's lagging list showed any member
    const s0 = initialState(gangStart(), T0);
    const writtenOff = { compensated: new Set<string>(), compensatedGroups: new Set(['pg-a']) };
    // Act: the first poll fails (throttled)
    const r = step(s0, { nowMs: T0 + 5_000, nodes: null, retryAfterMs: 1_000, ...writtenOff });
    // Assess: it keeps polling; the members, once listed, are terminated as late members
    expect(r.state.final).toBe(false);
    const late = step(r.state, { nowMs: T0 + 6_000, nodes: [mpi('mpi-1', 'Failed'), mpi('mpi-2', 'Ready', { privateIp: '10.0.0.2' })], ...writtenOff });
    expect(ofType(late.actions, 'terminate').map((a) => a.names)).toEqual([['mpi-1', 'mpi-2']]);
    expect(ofType(late.actions, 'written-off').map((a) => a.nodeNames)).toEqual([['mpi-1', 'mpi-2']]);
  });
});

describe('gangs sharing a placement group', () => {
  const shared = (): TrackStart =>
    createStart({
      sets: [
        { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg-a', count: 2, added: 1, colocated: true, demands: [{ index: 0, count: 2 }] },
        { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg-a', count: 2, added: 2, colocated: true, demands: [{ index: 1, count: 2 }] },
      ],
    });

  it("attributes the group's nodes set by set in name order, and a broken gang takes only its own nodes down", () => {
    const s0 = initialState(shared(), T0);
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [mpi('mpi-3', 'Ready'), mpi('mpi-2', 'Ready'), mpi('mpi-1', 'Failed')] });
    expect(r.state.nodes.map((n) => [n.name, n.demandIndex])).toEqual([
      ['mpi-3', 1],
      ['mpi-2', 1],
      ['mpi-1', 0],
    ]);
    expect(ofType(r.actions, 'terminate').map((a) => a.names)).toEqual([['mpi-1']]);
    expect(ofType(r.actions, 'replan').map((a) => [a.demandIndex, a.nodeNames])).toEqual([[0, ['mpi-1']]]);
  });

  it("writes off only the compensated gang of a shared group, still waiting for the other gang's nodes", () => {
    const s0 = initialState(shared(), T0);
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [], compensated: new Set(['id:id-mpi-1']), compensatedGroups: new Set([gangKey('pg-a', 0)]) });
    expect(r.state.final).toBe(false);
    const done = step(r.state, {
      nowMs: T0 + 10_000,
      nodes: [mpi('mpi-2', 'Ready', { privateIp: '10.0.0.2' }), mpi('mpi-3', 'Ready', { privateIp: '10.0.0.3' })],
      compensated: new Set(['id:id-mpi-1']),
      compensatedGroups: new Set([gangKey('pg-a', 0)]),
    });
    expect(done.state.final).toBe(true);
  });

  it("keeps a compensated node's slot in its own gang when it is never listed, so the other gang's nodes stay theirs", () => {
    // Prepare: set 0 (demand 0) came back partial and its one node, mpi-1, was terminated by the
    // submission before the first poll; set 1 (demand 1) added mpi-2 and mpi-3.
    const s0 = initialState(shared(), T0);
    const writtenOff = {
      compensated: new Set(['id:id-mpi-1']),
      compensatedGroups: new Set([gangKey('pg-a', 0)]),
      compensatedNodes: [{ key: 'id:id-mpi-1', placementGroupId: 'pg-a', demandIndex: 0 }],
    };
    // Act: the first poll lists only demand 1's nodes
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [mpi('mpi-2', 'Ready', { privateIp: '10.0.0.2' }), mpi('mpi-3', 'Ready', { privateIp: '10.0.0.3' })], ...writtenOff });
    // Assess: both are demand 1's, nothing is terminated as a late member, and the create is done
    expect(r.state.nodes.map((n) => [n.name, n.demandIndex])).toEqual([
      ['mpi-2', 1],
      ['mpi-3', 1],
    ]);
    expect(ofType(r.actions, 'terminate')).toEqual([]);
    expect(ofType(r.actions, 'written-off')).toEqual([]);
    expect(r.state.final).toBe(true);
  });

  it('attributes a compensated node that is still listed to the gang it was taken from', () => {
    const s0 = initialState(shared(), T0);
    const writtenOff = {
      compensated: new Set(['id:id-mpi-3']),
      compensatedGroups: new Set([gangKey('pg-a', 0)]),
      compensatedNodes: [{ key: 'id:id-mpi-3', placementGroupId: 'pg-a', demandIndex: 0 }],
    };
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [mpi('mpi-1', 'Ready'), mpi('mpi-2', 'Ready'), mpi('mpi-3', 'Terminating')], ...writtenOff });
    expect(r.state.nodes.find((n) => n.name === 'mpi-3')?.demandIndex).toBe(0);
    expect(r.state.nodes.filter((n) => n.demandIndex === 1).map((n) => n.name)).toEqual(['mpi-1', 'mpi-2']);
  });
});

describe('terminate tracking', () => {
  it('is done when every named node is gone, listed or not', () => {
    const s0 = initialState(createStart({ action: 'terminate', sets: [], nodeNames: ['ondemand-1', 'ondemand-2'] }), T0);
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Terminating')] });
    const r2 = step(r1.state, { nowMs: T0 + 20_000, nodes: [] });
    expect(r1.state.nodes.map((n) => n.outcome)).toEqual(['pending', 'gone']);
    expect(r1.state.final).toBe(false);
    expect(r2.actions).toEqual([{ type: 'final' }]);
  });

  it('reports a node whose termination failed', () => {
    const s0 = initialState(createStart({ action: 'terminate', sets: [], nodeNames: ['ondemand-1'] }), T0);
    const r = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Failed')] });
    expect(r.state.nodes[0]!.outcome).toBe('failed');
    expect(r.state.final).toBe(true);
  });
});

describe('poll cadence', () => {
  const pending = [node('ondemand-1', 'Acquiring'), node('ondemand-2', 'Acquiring')];

  it('backs off 5 s → 15 s → 45 s → 60 s cap', () => {
    // Prepare
    let s = initialState(createStart(), T0);
    const delays = [s.nextPollAtMs - T0];
    // Act
    for (let i = 0; i < 6; i++) {
      const now = s.nextPollAtMs;
      s = step(s, { nowMs: now, nodes: pending }).state;
      delays.push(s.nextPollAtMs - now);
    }
    // Assess
    expect(delays).toEqual([5_000, 15_000, 45_000, 60_000, 60_000, 60_000, 60_000]);
  });

  it('honours configured bounds', () => {
    const config = { ...DEFAULT_MACHINE_CONFIG, pollMinMs: 2_000, pollMaxMs: 10_000, backoffFactor: 2 };
    let s = initialState(createStart(), T0, config);
    const delays = [s.nextPollAtMs - T0];
    for (let i = 0; i < 4; i++) {
      const now = s.nextPollAtMs;
      s = step(s, { nowMs: now, nodes: pending }, config).state;
      delays.push(s.nextPollAtMs - now);
    }
    expect(delays).toEqual([2_000, 4_000, 8_000, 10_000, 10_000]);
  });

  it('jitter stretches only the first delay, by at most 20 %', () => {
    const a = initialState(createStart(), T0, DEFAULT_MACHINE_CONFIG, 0.999);
    const b = initialState(createStart(), T0, DEFAULT_MACHINE_CONFIG, 0.5);
    expect(a.nextPollAtMs - T0).toBe(5_999);
    expect(b.nextPollAtMs - T0).toBe(6_000 - 500);
    expect(a.intervalMs).toBe(b.intervalMs);
  });

  it('Retry-After wins and does not advance the backoff', () => {
    const s0 = initialState(createStart(), T0);
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: null, retryAfterMs: 120_000 });
    const r2 = step(r1.state, { nowMs: T0 + 125_000, nodes: pending });
    expect(ofType(r1.actions, 'schedule')).toEqual([{ type: 'schedule', atMs: T0 + 125_000 }]);
    expect(ofType(r2.actions, 'schedule')).toEqual([{ type: 'schedule', atMs: T0 + 140_000 }]);
  });

  it('a final state does not move', () => {
    const s0 = initialState(createStart(), T0);
    const r1 = step(s0, { nowMs: T0 + 5_000, nodes: [node('ondemand-1', 'Ready'), node('ondemand-2', 'Ready')] });
    const r2 = step(r1.state, { nowMs: T0 + 6_000, nodes: [] });
    expect(r2.actions).toEqual([]);
    expect(r2.state).toEqual(r1.state);
  });
});

describe('properties (random status sequences)', () => {
  const STATUSES = ['Acquiring', 'Preparing', 'Ready', 'Failed', 'Terminating', 'Terminated', 'Unavailable', 'Weird', null] as const;

  it('always ends by the deadline, never schedules past it, and compensates a gang at most once', () => {
    const config: MachineConfig = { ...DEFAULT_MACHINE_CONFIG, bootTimeoutMs: 10 * 60_000 };
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.tuple(fc.constantFrom(...STATUSES), fc.constantFrom(...STATUSES), fc.constantFrom(...STATUSES)), { maxLength: 40 }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (colocated, script, jitter) => {
          const s0 = initialState(
            colocated ? gangStart() : createStart({ sets: [{ ...createStart().sets[0]!, count: 3, added: 3, demands: [{ index: 0, count: 3 }] }] }),
            T0,
            config,
            jitter,
          );
          let s = s0;
          const all: TrackerAction[] = [];
          for (let i = 0; !s.final && i < 100; i++) {
            const row = script[i] ?? ['Acquiring', 'Acquiring', 'Acquiring'];
            const nodes = row.flatMap((status, k) => (status === null ? [] : [colocated ? mpi(`mpi-${k + 1}`, status) : node(`ondemand-${k + 1}`, status)]));
            const r = step(s, { nowMs: s.nextPollAtMs, nodes }, config);
            all.push(...r.actions);
            for (const a of r.actions) if (a.type === 'schedule') expect(a.atMs).toBeLessThanOrEqual(s0.deadlineAtMs);
            s = r.state;
          }
          expect(s.final).toBe(true);
          expect(s.finalAtMs).toBeLessThanOrEqual(s0.deadlineAtMs);
          expect(s.nodes.every((n) => n.outcome !== 'pending')).toBe(true);
          expect(ofType(all, 'replan').length + ofType(all, 'close').length).toBeLessThanOrEqual(1);
          if (!colocated) expect(ofType(all, 'replan')).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
