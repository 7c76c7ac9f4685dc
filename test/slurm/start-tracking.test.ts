import { describe, expect, it } from 'vitest';
import { initialState, startOutcome, step } from '../../src/tracking/machine.ts';
import type { TrackStart } from '../../src/tracking/types.ts';

const T0 = Date.parse('2026-11-28T01:00:00.000Z');
const start: TrackStart = {
  cluster: 'hpc',
  operationId: 'op-s',
  cycleCloudRequestId: 'r-t',
  requestId: 'r',
  action: 'start',
  generation: 0,
  sets: [],
  nodeNames: ['mpi-2', 'mpi-3'],
};
const node = (name: string, status: string, privateIp?: string) => ({ name, id: `id-${name}`, status, ...(privateIp ? { privateIp } : {}), placementGroupId: null });

describe('tracking a start of deallocated nodes', () => {
  it('maps CycleCloud statuses: still Deallocated is pending, Ready is ready, removed is failed', () => {
    expect(startOutcome('Deallocated')).toBe('pending');
    expect(startOutcome('Deallocating')).toBe('pending');
    expect(startOutcome('Acquiring')).toBe('pending');
    expect(startOutcome('Ready')).toBe('ready');
    expect(startOutcome('Failed')).toBe('failed');
    expect(startOutcome('Terminated')).toBe('failed');
  });

  it('is final once every named node is Ready', () => {
    let state = initialState(start, T0);
    expect(state.nodes.map((n) => n.name)).toEqual(['mpi-2', 'mpi-3']);
    let r = step(state, { nowMs: T0 + 1_000, nodes: [node('mpi-2', 'Deallocated'), node('mpi-3', 'Preparing')] });
    expect(r.state.final).toBe(false);
    state = r.state;
    r = step(state, { nowMs: T0 + 5_000, nodes: [node('mpi-2', 'Ready', '10.0.0.2'), node('mpi-3', 'Ready', '10.0.0.3')] });
    expect(r.state.final).toBe(true);
    expect(r.state.nodes.map((n) => n.outcome)).toEqual(['ready', 'ready']);
  });
});
