import { describe, expect, it } from 'vitest';
import { keyHash, parseTenantsDocument, tenantsOf } from '../../src/platform/tenants.ts';
import { intakeRefusals } from '../../src/requests/intake.ts';

const doc = (tenants: unknown) => JSON.stringify({ tenants });

describe('the tenants document', () => {
  it('reads weights (default 1), caps per cluster, clusters and key hashes', () => {
    const parsed = parseTenantsDocument(doc({ cfd: { weight: 2, maxCores: { hpc: 512 }, clusters: ['hpc'], keys: [keyHash('k-cfd')] }, default: {} }));
    expect(parsed.ok).toBe(true);
    const t = tenantsOf(parsed.ok ? parsed.value : undefined);
    expect(t.names).toEqual(['cfd', 'default']);
    expect(t.get('cfd')).toMatchObject({ weight: 2, maxCores: { hpc: 512 } });
    expect(t.get('default')!.weight).toBe(1);
    expect(t.forKey('k-cfd')).toBe('cfd');
    expect(t.forKey('other')).toBe('default');
    expect(t.forKey(undefined)).toBe('default');
  });

  it.each([
    [doc({ cfd: { weight: 0 } }), 'tenants.cfd.weight: must be > 0'],
    [doc({ cfd: { maxCores: { hpc: 1.5 } } }), 'tenants.cfd.maxCores.hpc: must be a whole number ≥ 1'],
    [doc({ cfd: { keys: ['k-cfd'] } }), 'tenants.cfd.keys.0: must be sha256:<64 lower-case hex digits> of a function key'],
    [doc({ cfd: { budget: 5 } }), 'tenants.cfd.budget: Invalid input: expected object, received number'],
    [doc({ cfd: { budget: { monthly: 0 } } }), 'tenants.cfd.budget.monthly: must be an amount > 0'],
    [doc({ cfd: { budget: { monthly: 10, weekly: 2 } } }), 'tenants.cfd.budget: Unrecognized key: "weekly"'],
    [doc({ cfd: { colour: 'red' } }), 'tenants.cfd: Unrecognized key: "colour"'],
    [doc({ 'Bad Name': {} }), 'tenants.Bad Name: must be 1–63 lower-case letters, digits and . _ - (starting with a letter or digit)'],
    [doc({}), 'tenants: declares at least one tenant'],
    ['{"tenants":', 'is not JSON'],
  ])('names the bad field: %s', (text, problem) => {
    const parsed = parseTenantsDocument(text);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.problem).toContain(problem);
  });

  it('refuses an undeclared tenant and a cluster outside its list, and refuses nothing without a document', () => {
    const parsed = parseTenantsDocument(doc({ cfd: { clusters: ['hpc'] }, default: {} }));
    const t = tenantsOf(parsed.ok ? parsed.value : undefined);
    expect(t.refusal('cfd', 'hpc')).toBeNull();
    expect(t.refusal('cfd', 'htc')).toBe('tenant cfd may not use cluster htc (its clusters: hpc)');
    expect(t.refusal('ml', 'hpc')).toBe('tenant "ml" is not declared (declared: cfd, default)');
    expect(tenantsOf(undefined).refusal('anyone', 'hpc')).toBeNull();
    expect(tenantsOf(undefined).declared).toBe(false);
  });

  it('refuses at intake a request that names no tenant when the document does not declare default', () => {
    const parsed = parseTenantsDocument(doc({ cfd: {} }));
    const t = tenantsOf(parsed.ok ? parsed.value : undefined);
    const message = { kind: 'scale' as const, requestId: 'q-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
    expect(intakeRefusals(message, undefined, t)).toEqual([{ path: 'tenant', message: 'tenant "default" is not declared (declared: cfd)' }]);
    expect(intakeRefusals({ ...message, tenant: 'cfd' }, undefined, t)).toEqual([]);
    expect(intakeRefusals(message, undefined, undefined)).toEqual([]);
  });
});
