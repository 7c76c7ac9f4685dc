import { describe, expect, it } from 'vitest';
import { ClusterStatus } from '../../src/cyclecloud/schemas.ts';
import { statusView, toSnapshot } from '../../src/snapshots/snapshot.ts';
import { bigStatusBody, seedStatusBody } from './wire.ts';

const T = Date.parse('2026-11-28T01:00:00.000Z');

describe('toSnapshot', () => {
  it('compacts the seed status', () => {
    // Prepare
    const status = ClusterStatus.parse(seedStatusBody());
    // Act
    const s = toSnapshot('hpc', status, T);
    // Assess
    expect(s).toMatchObject({ cluster: 'hpc', takenAt: '2026-11-28T01:00:00.000Z', maxCount: 100, maxCoreCount: 10000 });
    expect(s.nodes).toBeUndefined();
    expect(s.nodearrays[0]).toMatchObject({ name: 'ondemand', maxCount: 100, maxCoreCount: 500 });
    expect(s.nodearrays[0]!.buckets[1]).toEqual({
      bucketId: 'd81e001a-abcd-1234-9754-79815cb7b225',
      machineType: 'Standard_Hc44rs',
      vcpuCount: 44,
      memoryGB: 327.83,
      infiniband: true,
      gpuCount: 0,
      valid: true,
      maxCount: 11,
      activeCount: 0,
      availableCount: 11,
      quotaCount: 200,
      maxPlacementGroupSize: 40,
      placementGroups: [],
      lastCapacityFailureSec: null,
      spot: false,
    });
  });

  it('keeps capacity failures, invalid reasons, groups and node records', () => {
    const body = seedStatusBody() as { nodearrays: { buckets: Record<string, unknown>[] }[]; nodes?: unknown[] };
    Object.assign(body.nodearrays[0]!.buckets[0]!, { lastCapacityFailure: 12.5, valid: false, invalidReason: 'NotActivated' });
    Object.assign(body.nodearrays[0]!.buckets[1]!, { lastCapacityFailure: -1, placementGroups: [{ name: 'pg0', activeCount: 4, activeCoreCount: 176 }] });
    body.nodes = [{ Name: 'ondemand-1', NodeId: 'id-1', Template: 'ondemand', Status: 'Ready', PlacementGroupId: 'pg0', Extra: { x: 1 } }, { Name: 'ondemand-2' }];
    const s = toSnapshot('hpc', ClusterStatus.parse(body), T);
    expect(s.nodearrays[0]!.buckets[0]).toMatchObject({ lastCapacityFailureSec: 12.5, valid: false, invalidReason: 'NotActivated' });
    expect(s.nodearrays[0]!.buckets[1]).toMatchObject({ lastCapacityFailureSec: null, placementGroups: [{ name: 'pg0', activeCount: 4 }] });
    expect(s.nodes).toEqual([
      { name: 'ondemand-1', id: 'id-1', status: 'Ready', nodearray: 'ondemand', placementGroupId: 'pg0' },
      { name: 'ondemand-2', id: null, status: 'Unknown', nodearray: null, placementGroupId: null },
    ]);
  });

  it('marks every bucket of an Interruptible nodearray spot; only true or "true" is spot, absent or odd values are regular', () => {
    // Prepare: the seed's nodearray repeated with each Interruptible value
    const values = [true, 'True', false, 'false', undefined, 1, null, 'yes'];
    const body = seedStatusBody() as { nodearrays: Array<{ name: string; nodearray?: Record<string, unknown> }> };
    const template = body.nodearrays[0]!;
    body.nodearrays = values.map((v, i) => ({
      ...structuredClone(template),
      name: `na${i}`,
      nodearray: v === undefined ? { Name: `na${i}` } : { Name: `na${i}`, Interruptible: v },
    }));
    // Act
    const s = toSnapshot('hpc', ClusterStatus.parse(body), T);
    // Assess
    expect(s.nodearrays.map((na) => na.buckets.map((b) => b.spot))).toEqual([[true, true], [true, true], ...Array(6).fill([false, false])]);
    expect(statusView(s, T).nodearrays[0]!.buckets[0]!.spot).toBe(true);
  });

  it('refuses a bad node record by index (the fast node check)', () => {
    const body = { ...bigStatusBody(1, 1, 3) } as { nodes: unknown[] };
    body.nodes[2] = { Name: 7 };
    const r = ClusterStatus.safeParse(body);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['nodes', 2]);
    body.nodes[2] = { Name: 'ok', Status: 3 };
    expect(ClusterStatus.safeParse(body).success).toBe(false);
  });
});

describe('statusView', () => {
  it('answers docs/api.md §4 fields with age and staleness', () => {
    const s = toSnapshot('hpc', ClusterStatus.parse({ ...seedStatusBody(), nodes: [{ Name: 'a' }] }), T);
    const v = statusView(s, T + 61_400, { stale: false });
    expect(v).toMatchObject({ cluster: 'hpc', takenAt: '2026-11-28T01:00:00.000Z', ageSeconds: 61, stale: false });
    expect(v).not.toHaveProperty('nodes');
    expect(v).not.toHaveProperty('maxCount');
    const b = v.nodearrays[0]!.buckets[0]!;
    for (const key of [
      'bucketId',
      'machineType',
      'vcpuCount',
      'memoryGB',
      'infiniband',
      'valid',
      'maxCount',
      'activeCount',
      'availableCount',
      'maxPlacementGroupSize',
      'placementGroups',
      'spot',
    ]) {
      expect(b).toHaveProperty(key);
    }
  });

  it('answers spot false for a bucket of a snapshot stored before spot was read', () => {
    const s = toSnapshot('hpc', ClusterStatus.parse(seedStatusBody()), T);
    for (const b of s.nodearrays[0]!.buckets) delete b.spot;
    expect(statusView(s, T).nodearrays[0]!.buckets.map((b) => b.spot)).toEqual([false, false]);
  });

  it('is stale when the store says so or the snapshot is older than staleAfterMs', () => {
    const s = toSnapshot('hpc', ClusterStatus.parse(seedStatusBody()), T);
    expect(statusView(s, T + 1000, { stale: true }).stale).toBe(true);
    expect(statusView(s, T + 301_000, { staleAfterMs: 300_000 }).stale).toBe(true);
    expect(statusView(s, T + 299_000, { staleAfterMs: 300_000 }).stale).toBe(false);
  });
});

describe('seed end to end: wire status → snapshot → plan', () => {
  it('plans the seed colocated create against the seed status, matching Standard_Hc44rs case-insensitively', async () => {
    const { plan } = await import('../../src/planning/planner.ts');
    const snapshot = toSnapshot('hpc', ClusterStatus.parse(seedStatusBody()), T);
    const p = plan({
      request: {
        kind: 'scale',
        requestId: '463270ca-abcd-1234-98d6-431ee3ef8ed5',
        cluster: 'hpc',
        demands: [{ nodearray: 'ondemand', count: 4, machineTypes: ['Standard_HC44rs'], placementGroupId: 'pg0' }],
      },
      snapshot,
      inFlight: [],
      backoffs: [],
      nowMs: T + 1000,
    });
    // The set carries CycleCloud's own spelling of the bucket: it is what CycleCloud listed, so its
    // definition match accepts it whether or not that match ignores case.
    expect(p.sets.map((s) => s.set)).toEqual([{ count: 4, nodearray: 'ondemand', placementGroupId: 'pg0', definition: { machineType: 'Standard_Hc44rs' } }]);
  });
});
