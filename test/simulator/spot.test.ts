/**
 * Spot in the simulator: the default cluster's `spot` nodearray says `Interruptible` where the
 * reference places it (the nodearray record and node records), and the fault `evict:<n>` evicts the
 * next n Ready spot nodes, in-process and over `POST /__sim/faults`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterStatus, type NodeRecord } from '../../src/cyclecloud/schemas.ts';
import { parseEvictionFault } from '../../src/simulator/faults.ts';
import { EVICTION_MESSAGE } from '../../src/simulator/model.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { call } from './http.ts';

const STEP_MS = 1000;
let h: SimulatorHandle;
let nowMs = Date.UTC(2026, 0, 1);

beforeEach(async () => {
  nowMs = Date.UTC(2026, 0, 1);
  h = await startSimulator({ port: 0, stepMs: STEP_MS, now: () => nowMs });
});

afterEach(async () => {
  await h.close();
});

async function create(nodearray: string, count: number): Promise<void> {
  const res = await call(h, 'POST', '/clusters/hpc/nodes/create', { body: { sets: [{ nodearray, count }] } });
  expect(res.status).toBe(202);
}

const byName = (name: string): NodeRecord => h.nodes('hpc').find((n) => n.Name === name)!;
const statuses = (): Record<string, unknown> => Object.fromEntries(h.nodes('hpc').map((n) => [n.Name, n.Status]));

describe('the spot nodearray', () => {
  it('comes after the regular nodearrays in the default cluster (before gpu); only its nodearray and node records say Interruptible', async () => {
    // Act
    const status = ClusterStatus.parse((await call(h, 'GET', '/clusters/hpc/status')).json);
    await create('spot', 1);
    await create('ondemand', 1);
    // Assess
    expect(status.nodearrays.map((na) => [na.name, na.nodearray.Interruptible])).toEqual([
      ['ondemand', undefined],
      ['mpi', undefined],
      ['spot', true],
      ['gpu', undefined],
    ]);
    const spot = status.nodearrays[2]!;
    expect(spot.buckets.map((b) => [b.definition?.machineType, b.availableCount])).toEqual([['Standard_F32s_v2', 8]]);
    expect(byName('spot-1').Interruptible).toBe(true);
    expect(byName('ondemand-1')).not.toHaveProperty('Interruptible');
  });
});

describe('evict:<n>', () => {
  it('evicts the Ready spot nodes first, then each spot node as it becomes Ready, and never a regular one', async () => {
    // Prepare: 2 spot nodes Ready, 2 regular nodes Ready
    await create('spot', 2);
    await create('ondemand', 2);
    nowMs += 2 * STEP_MS;
    // Act: 3 evictions armed, 2 spot nodes to take them now
    h.evictNext('hpc', 3);
    // Assess
    expect(statuses()).toEqual({ 'spot-1': 'Failed', 'spot-2': 'Failed', 'ondemand-1': 'Ready', 'ondemand-2': 'Ready' });
    expect(byName('spot-1')).toMatchObject({ Status: 'Failed', State: 'Failed', TargetState: 'Started', StatusMessage: EVICTION_MESSAGE });
    expect(byName('spot-1').PrivateIp).toBeDefined();

    // Act: the third waits for the next spot node to be Ready, not merely created
    await create('spot', 2);
    expect(byName('spot-3').Status).toBe('Acquiring');
    nowMs += 2 * STEP_MS;
    // Assess: used up; the fourth spot node stays
    expect(byName('spot-3').Status).toBe('Failed');
    expect(byName('spot-4').Status).toBe('Ready');
    h.evictNext('hpc', 0);
    expect(byName('spot-4').Status).toBe('Ready');
  });

  it('an evicted node still counts against the limits until it is terminated', async () => {
    // Prepare
    await create('spot', 8);
    nowMs += 2 * STEP_MS;
    // Act
    h.evictNext('hpc', 8, 'preempted in a test');
    const status = ClusterStatus.parse((await call(h, 'GET', '/clusters/hpc/status')).json);
    // Assess: the record keeps its TargetState, so CycleCloud (and scalelib) still count it
    expect(status.nodearrays[2]!.buckets[0]).toMatchObject({ activeCount: 8, availableCount: 0 });
    expect(byName('spot-8').StatusMessage).toBe('preempted in a test');
  });

  it('is armed over POST /__sim/faults as "evict:<n>" or {kind: "evict", count}, and DELETE disarms it', async () => {
    // Prepare
    await create('spot', 3);
    nowMs += 2 * STEP_MS;
    // Act
    const named = await call(h, 'POST', '/__sim/faults', { body: { kind: 'evict:1' } });
    const counted = await call(h, 'POST', '/__sim/faults', { body: { kind: 'evict', count: 1, cluster: 'hpc', message: 'Spot eviction' } });
    await call(h, 'POST', '/__sim/faults', { body: { kind: 'evict:5' } });
    const cleared = await call(h, 'DELETE', '/__sim/faults');
    await create('spot', 1);
    nowMs += 2 * STEP_MS;
    // Assess
    expect([named.status, counted.status, cleared.status]).toEqual([201, 201, 204]);
    expect(h.nodes('hpc').map((n) => [n.Name, n.Status, n.StatusMessage])).toEqual([
      ['spot-1', 'Failed', EVICTION_MESSAGE],
      ['spot-2', 'Failed', 'Spot eviction'],
      ['spot-3', 'Failed', EVICTION_MESSAGE],
      ['spot-4', 'Ready', undefined],
    ]);
  });

  it('refuses a malformed eviction fault naming the field', async () => {
    const bad = await Promise.all(
      [{ kind: 'evict:0' }, { kind: 'evict:x' }, { kind: 'evict' }, { kind: 'evict:1', cluster: 'nope' }, { kind: 'evict:1', times: 2 }].map((body) =>
        call(h, 'POST', '/__sim/faults', { body }),
      ),
    );
    expect(bad.map((r) => r.status)).toEqual([400, 400, 400, 404, 400]);
    expect((bad[0]!.json as { Message: string }).Message).toBe('kind: must be "evict:<n>" with a whole n ≥ 1, or "evict" with count');
  });

  it('parses only evict:<n> with a whole n ≥ 1', () => {
    expect(parseEvictionFault('evict:3')).toEqual({ kind: 'evict', count: 3 });
    expect(['evict', 'evict:', 'evict:0', 'evict:-1', 'evict:1.5', 'evict:03', ' evict:1', 'evict:1x'].map(parseEvictionFault)).toEqual(Array(8).fill(undefined));
  });
});
