/**
 * Tenant caps in the planner (issue 22 item 2): a request's tenant quotas bind every bucket like the
 * cluster's own limits, count what this plan takes, wait with the tenant's words, and reject a demand
 * that can never fit under the cap.
 */
import { describe, expect, it } from 'vitest';
import { plan } from '../../src/planning/planner.ts';
import type { TenantQuota } from '../../src/planning/types.ts';
import { input } from './fixtures.ts';

const cores = (used: number, max: number): TenantQuota => ({ tenant: 'cfd', scope: 'on hpc', maxCores: max, usedNodes: 0, usedCores: used });

describe('plan: tenant quotas', () => {
  it('places only what fits under the core cap and says which tenant limit bound it', () => {
    // Prepare: HC44rs has 44 cores; 480 of 512 used leaves 32: not one node
    const i = input([{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] }], { quotas: [cores(480, 512)] });
    // Act
    const p = plan(i);
    // Assess
    expect(p.sets).toEqual([]);
    expect(p.demands[0]).toMatchObject({ status: 'waiting', planned: 0 });
    expect(p.demands[0]!.reason).toContain('tenant cfd at 480 of 512 cores on hpc');
  });

  it('counts the nodes of earlier demands of the same plan against the cap', () => {
    // 512 − 400 = 112 cores: two HC44rs (88), then none for the second demand
    const p = plan(
      input(
        [
          { nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] },
          { nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] },
        ],
        { quotas: [cores(400, 512)] },
      ),
    );
    expect(p.demands.map((d) => [d.status, d.planned])).toEqual([
      ['placed', 2],
      ['waiting', 0],
    ]);
    expect(p.demands[1]!.reason).toContain('tenant cfd at 488 of 512 cores on hpc');
  });

  it('takes part of a loose demand up to the node cap and the rest waits', () => {
    const p = plan(
      input([{ nodearray: 'ondemand', count: 5, machineTypes: ['Standard_HC44rs'] }], { quotas: [{ tenant: 'cfd', scope: 'in all', maxNodes: 10, usedNodes: 7, usedCores: 0 }] }),
    );
    expect(p.demands[0]).toMatchObject({ status: 'partial', planned: 3 });
    expect(p.demands[0]!.reason).toContain('tenant cfd at 7 of 10 nodes in all');
  });

  it('keeps a gang whole: it waits when the cap cannot take all of it', () => {
    // 600 − 200 leaves room for 3 of the gang's 4 HB120rs (120 cores each)
    const p = plan(input([{ nodearray: 'mpi', count: 4, colocated: true }], { quotas: [cores(200, 600)] }));
    expect(p.sets).toEqual([]);
    expect(p.demands[0]!.status).toBe('waiting');
    expect(p.demands[0]!.reason).toContain('tenant cfd at 200 of 600 cores on hpc');
  });

  it('rejects a demand that needs more than the cap allows at all, naming the cap', () => {
    const p = plan(input([{ nodearray: 'mpi', count: 4, colocated: true }], { quotas: [cores(0, 240)] }));
    expect(p.demands[0]).toMatchObject({ status: 'rejected', code: 'PLAN_EXCEEDS_TENANT_QUOTA', planned: 0 });
    expect(p.demands[0]!.reason).toBe('demand 0 needs at least 480 cores (4 nodes of 120) but tenant cfd may use at most 240 cores on hpc');
  });

  it('applies the tightest of several quotas and leaves the input untouched', () => {
    const quotas: TenantQuota[] = [cores(0, 10_000), { tenant: 'cfd', scope: 'in all', maxCores: 150, usedNodes: 0, usedCores: 60 }];
    const before = structuredClone(quotas);
    const p = plan(input([{ nodearray: 'ondemand', count: 3, machineTypes: ['Standard_HC44rs'] }], { quotas }));
    expect(p.demands[0]).toMatchObject({ status: 'partial', planned: 2 });
    expect(p.demands[0]!.reason).toContain('tenant cfd at 60 of 150 cores in all');
    expect(quotas).toEqual(before);
  });

  it('changes nothing without quotas', () => {
    const demands = [{ nodearray: 'ondemand', count: 3, machineTypes: ['Standard_HC44rs'] }];
    expect(plan(input(demands, { quotas: [] }))).toEqual(plan(input(demands)));
  });
});
