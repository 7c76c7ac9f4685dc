/** What a batch counts per tenant (src/requests/tenant-share.ts): tagged live nodes, reservations the snapshot does not count yet, caps as quotas. */
import { describe, expect, it } from 'vitest';
import { addInFlight, budgetBlock, clusterSize, quotasFor, tenantHoldings } from '../../src/requests/tenant-share.ts';
import { plan } from '../../src/planning/planner.ts';
import type { Reservation } from '../../src/requests/reservations.ts';
import { tenantsOf } from '../../src/platform/tenants.ts';
import type { InFlightAllocation } from '../../src/planning/types.ts';
import { seedSnapshot, T0 } from '../planning/fixtures.ts';

const node = (name: string, status: string, tenant: string | undefined, machineType = 'Standard_HC44rs') => ({
  name,
  id: name,
  status,
  nodearray: 'ondemand',
  placementGroupId: null,
  machineType,
  mark: { requestId: 'r', cycleCloudRequestId: 'c', ...(tenant ? { tenant } : {}) },
});

describe('tenant holdings', () => {
  it("counts a tenant's tagged nodes that hold a VM, untagged ones as default, and skips the scaler's strangers", () => {
    const snapshot = seedSnapshot({
      nodes: [
        node('a', 'Ready', 'cfd'),
        node('b', 'Acquiring', 'cfd'),
        node('c', 'Terminated', 'cfd'),
        node('d', 'Deallocated', 'cfd'),
        node('e', 'Ready', undefined, 'Standard_F32s_v2'),
        { name: 'f', id: 'f', status: 'Ready', nodearray: 'ondemand', placementGroupId: null },
      ],
    });
    const held = tenantHoldings(snapshot, [], T0);
    expect(Object.fromEntries(held)).toEqual({ cfd: { nodes: 2, cores: 88 }, default: { nodes: 1, cores: 32 } });
  });

  it('adds the reservations the snapshot does not count yet, and only those', () => {
    const r = (tenant: string | undefined, acceptedAtMs: number | undefined): Reservation => ({
      cycleCloudRequestId: `c-${tenant}-${acceptedAtMs}`,
      requestId: 'r',
      sets: [{ nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg', count: 2 }],
      reservedAtMs: T0 - 60_000,
      ...(acceptedAtMs !== undefined ? { acceptedAtMs } : {}),
      ...(tenant ? { tenant } : {}),
    });
    // Accepted well before the snapshot started: the snapshot counts those nodes already
    const held = tenantHoldings(seedSnapshot(), [r('cfd', undefined), r('cfd', T0 - 30_000), r(undefined, T0)], T0);
    expect(Object.fromEntries(held)).toEqual({ cfd: { nodes: 2, cores: 240 }, default: { nodes: 2, cores: 240 } });
  });

  it("keeps counting a reservation's nodes the node list does not show while the list may lag", () => {
    // The node list lags the create: accepted a minute before the snapshot, one of its 2 nodes listed
    const r: Reservation = {
      cycleCloudRequestId: 'cc-1',
      requestId: 'r',
      sets: [{ nodearray: 'ondemand', machineType: 'Standard_HC44rs', placementGroupId: null, count: 2 }],
      reservedAtMs: T0 - 70_000,
      acceptedAtMs: T0 - 60_000,
      tenant: 'cfd',
    };
    const listedOne = seedSnapshot({ nodes: [{ ...node('a', 'Acquiring', 'cfd'), mark: { requestId: 'r', cycleCloudRequestId: 'cc-1', tenant: 'cfd' } }] });
    // 5 s after the create's answer: counted by time, but the list may still lag
    expect(tenantHoldings(listedOne, [r], T0 - 55_000).get('cfd')).toEqual({ nodes: 2, cores: 88 });
    const listedNone = seedSnapshot({ nodes: [] });
    expect(tenantHoldings(listedNone, [r], T0 - 55_000).get('cfd')).toEqual({ nodes: 2, cores: 88 });
    // Past the lag a list may have, the list is right: a node it no longer shows is gone
    expect(tenantHoldings(listedOne, [r], T0).get('cfd')).toEqual({ nodes: 1, cores: 44 });
  });

  it("sizes the cluster by every bucket's active and available nodes", () => {
    expect(clusterSize(seedSnapshot())).toEqual({ nodes: 3 + 11 + 64, cores: 3 * 32 + 11 * 44 + 64 * 120 });
  });

  it("turns a tenant's caps on this cluster into planner quotas, none without caps", () => {
    const tenants = tenantsOf({ tenants: { cfd: { weight: 1, maxCores: { hpc: 512, htc: 64 }, maxNodes: { hpc: 10 } }, ml: { weight: 1 } } });
    expect(quotasFor(tenants, 'cfd', 'hpc', { nodes: 3, cores: 96 })).toEqual([{ tenant: 'cfd', scope: 'on hpc', maxCores: 512, maxNodes: 10, usedNodes: 3, usedCores: 96 }]);
    expect(quotasFor(tenants, 'ml', 'hpc', { nodes: 3, cores: 96 })).toEqual([]);
    expect(quotasFor(undefined, 'cfd', 'hpc', { nodes: 0, cores: 0 })).toEqual([]);
  });

  it('adds a cap over every cluster (`*`) counting the holdings elsewhere, and a budget block', () => {
    const tenants = tenantsOf({ tenants: { cfd: { weight: 1, maxCores: { hpc: 512, '*': 600 }, maxNodes: { '*': 12 }, budget: { monthly: 100 } } } });
    expect(quotasFor(tenants, 'cfd', 'hpc', { nodes: 3, cores: 96 }, undefined, { nodes: 5, cores: 400 })).toEqual([
      { tenant: 'cfd', scope: 'on hpc', maxCores: 512, usedNodes: 3, usedCores: 96 },
      { tenant: 'cfd', scope: 'in all clusters', maxCores: 600, maxNodes: 12, usedNodes: 8, usedCores: 496 },
    ]);
    expect(budgetBlock(tenants, 'cfd', new Map([['cfd', { today: 3, month: 99.99 }]]), 'USD')).toBeUndefined();
    const why = budgetBlock(tenants, 'cfd', new Map([['cfd', { today: 3, month: 100.5 }]]), 'USD');
    expect(why).toBe('tenant cfd past its monthly budget: 100.50 of 100 USD spent this month');
    expect(budgetBlock(tenants, 'ml', new Map([['ml', { today: 3, month: 1e6 }]]), 'USD')).toBeUndefined();
    expect(budgetBlock(tenants, 'cfd', undefined, 'USD')).toBeUndefined();

    // The planner: a blocked tenant waits with the words (not rejected); the in-all cap binds with its scope.
    const request = { kind: 'scale' as const, requestId: 'r', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }] };
    const blocked = plan({ request, snapshot: seedSnapshot(), inFlight: [], backoffs: [], nowMs: T0, quotas: quotasFor(tenants, 'cfd', 'hpc', { nodes: 0, cores: 0 }, why) });
    expect(blocked.sets).toEqual([]);
    expect(blocked.demands[0]!.status).toBe('waiting');
    expect(blocked.demands[0]!.reason).toContain(why);
    const full = plan({
      request,
      snapshot: seedSnapshot(),
      inFlight: [],
      backoffs: [],
      nowMs: T0,
      quotas: quotasFor(tenants, 'cfd', 'hpc', { nodes: 1, cores: 44 }, undefined, { nodes: 11, cores: 540 }),
    });
    expect(full.sets).toEqual([]);
    expect(full.demands[0]!.reason).toContain('tenant cfd at 12 of 12 nodes in all clusters');
  });

  it('merges in-flight entries of one bucket and group, keeping others apart', () => {
    const list: InFlightAllocation[] = [];
    for (let i = 0; i < 500; i++) addInFlight(list, { nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count: 1 });
    addInFlight(list, { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg1', count: 4 });
    addInFlight(list, { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', placementGroupId: 'pg2', count: 4 });
    expect(list.map((x) => [x.nodearray, x.placementGroupId, x.count])).toEqual([
      ['ondemand', null, 500],
      ['mpi', 'pg1', 4],
      ['mpi', 'pg2', 4],
    ]);
  });
});
