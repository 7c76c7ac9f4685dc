import { describe, expect, it } from 'vitest';
import { parsePriceDocument, pricesOf, type PriceDocument } from '../../src/platform/prices.ts';
import { nodeSeconds, requestCost } from '../../src/ledger/cost.ts';
import { applyNodeStates, applySubmission, newEntry } from '../../src/ledger/record.ts';
import { publicRecord, type ScaleRequest } from '../../src/ledger/schemas.ts';
import type { SubmissionAttempt } from '../../src/ledger/types.ts';

const T0 = Date.parse('2026-12-08T10:00:00.000Z');
const DOC: PriceDocument = {
  currency: 'USD',
  prices: {
    westeurope: { Standard_HB120rs_v3: { regular: 3.6, spot: 0.72 } },
    '*': { Standard_HB120rs_v3: { regular: 4 }, Standard_F2s_v2: { regular: 0.1 } },
  },
};

describe('the price table', () => {
  it('prices by region first, then *, spot as spot, machine types in any case', () => {
    const p = pricesOf(DOC)!;
    expect(p.hourly({ machineType: 'standard_hb120rs_v3', region: 'WestEurope' })).toBe(3.6);
    expect(p.hourly({ machineType: 'Standard_HB120rs_v3', region: 'westeurope', spot: true })).toBe(0.72);
    expect(p.hourly({ machineType: 'Standard_HB120rs_v3', region: 'eastus' })).toBe(4);
    // No spot price: priced as regular (never as free).
    expect(p.hourly({ machineType: 'Standard_F2s_v2', region: 'eastus', spot: true })).toBe(0.1);
    expect(p.hourly({ machineType: 'Standard_NC6', region: 'westeurope' })).toBeNull();
    expect(p.hourly({ machineType: null, region: 'westeurope' })).toBeNull();
  });

  it('takes the first document that prices a node, and ignores one in another currency', () => {
    const retail: PriceDocument = { currency: 'USD', prices: { westeurope: { Standard_HB120rs_v3: { regular: 3.3 } } } };
    const euro: PriceDocument = { currency: 'EUR', prices: { '*': { Standard_NC6: { regular: 1 } } } };
    const p = pricesOf(retail, DOC, euro)!;
    expect(p.hourly({ machineType: 'Standard_HB120rs_v3', region: 'westeurope' })).toBe(3.3);
    expect(p.hourly({ machineType: 'Standard_F2s_v2', region: 'westeurope' })).toBe(0.1);
    expect(p.hourly({ machineType: 'Standard_NC6', region: 'westeurope' })).toBeNull();
    expect(pricesOf(undefined)).toBeUndefined();
  });

  it.each([
    ['not json', 'is not JSON'],
    [JSON.stringify({ currency: 'usd', prices: {} }), 'currency: must be a 3-letter currency code such as USD'],
    [JSON.stringify({ currency: 'USD', prices: { westeurope: { F2: { regular: -1 } } } }), 'prices.westeurope.F2.regular: must be a price per hour ≥ 0'],
    [JSON.stringify({ currency: 'USD', prices: { westeurope: { F2: { regular: 1, reserved: 0.5 } } } }), 'prices.westeurope.F2: Unrecognized key: "reserved"'],
  ])('names what is wrong in a bad document: %s', (text, problem) => {
    const parsed = parsePriceDocument(text);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.problem).toBe(problem);
  });
});

const request: ScaleRequest = { kind: 'scale', requestId: 'job-1', cluster: 'hpc', demands: [{ nodearray: 'hpc', count: 2 }] };
const accepted = (acceptedAtMs: number, spot = false): SubmissionAttempt => ({
  generation: 0,
  cycleCloudRequestId: 'job-1-g0',
  state: 'accepted',
  operationId: 'op-1',
  sets: [
    {
      nodearray: 'hpc',
      machineType: 'Standard_HB120rs_v3',
      placementGroupId: null,
      count: 2,
      added: 2,
      message: null,
      demands: [{ index: 0, count: 2 }],
      ...(spot ? { spot: true as const } : {}),
    },
  ],
  submittedAtMs: acceptedAtMs - 500,
  acceptedAtMs,
});
const node = (name: string, outcome: 'pending' | 'ready' | 'gone' | 'failed', extra: { spot?: boolean } = {}) => ({
  name,
  id: `id-${name}`,
  status: outcome === 'ready' ? 'Ready' : outcome === 'pending' ? 'Acquiring' : outcome === 'gone' ? 'Terminated' : 'Failed',
  demand: 0,
  outcome,
  machineType: 'Standard_HB120rs_v3',
  region: 'westeurope',
  ...extra,
});

describe("a request's cost", () => {
  it('runs each node from its create accepted to first seen gone, at its own price', () => {
    let e = applySubmission(newEntry(request, T0, 3_600_000), accepted(T0 + 1000), T0 + 1000);
    e = applyNodeStates(e, 'job-1-g0', [node('hpc-1', 'pending'), node('hpc-2', 'pending', { spot: true })], T0 + 5000);
    e = applyNodeStates(e, 'job-1-g0', [node('hpc-1', 'ready'), node('hpc-2', 'ready', { spot: true })], T0 + 60_000);
    const [a, b] = e.record.nodes;
    expect(a).toMatchObject({ startedAt: new Date(T0 + 1000).toISOString(), machineType: 'Standard_HB120rs_v3', region: 'westeurope' });
    expect(a!.endedAt).toBeUndefined();
    // hpc-1 goes after one hour; seeing it gone again later does not move its end.
    e = applyNodeStates(e, '', [{ ...node('hpc-1', 'gone'), machineType: null, region: null }], T0 + 1000 + 3_600_000);
    e = applyNodeStates(e, '', [node('hpc-1', 'gone')], T0 + 9_000_000);
    expect(e.record.nodes[0]!.endedAt).toBe(new Date(T0 + 1000 + 3_600_000).toISOString());
    expect(nodeSeconds(e.record.nodes[0]!, T0 + 99_000_000)).toBe(3600);
    expect(b!.spot).toBe(true);

    // Two hours after the start: hpc-1 3600 s × 3.6/h, hpc-2 (spot, still running) 7200 s × 0.72/h.
    const cost = requestCost(e.record, pricesOf(DOC)!, T0 + 1000 + 7_200_000);
    expect(cost).toEqual({ currency: 'USD', amount: 3.6 + 1.44, nodeSeconds: 10_800, asOf: new Date(T0 + 1000 + 7_200_000).toISOString(), unpriced: [] });
  });

  it('counts a failed node until it failed, and names what it cannot price', () => {
    let e = applySubmission(newEntry(request, T0, 3_600_000), accepted(T0), T0);
    e = applyNodeStates(e, 'job-1-g0', [{ ...node('hpc-1', 'failed'), machineType: 'Standard_XYZ' }, node('hpc-2', 'ready')], T0 + 30_000);
    const cost = requestCost(e.record, pricesOf(DOC)!, T0 + 3_600_000);
    expect(e.record.nodes[0]!.endedAt).toBe(new Date(T0 + 30_000).toISOString());
    expect(cost.nodeSeconds).toBe(3630);
    expect(cost.amount).toBe(3.6);
    expect(cost.unpriced).toEqual(['westeurope/Standard_XYZ']);
  });

  it('is in the public record only with a price table, and only for scale requests', () => {
    let e = applySubmission(newEntry(request, T0, 3_600_000), accepted(T0), T0);
    e = applyNodeStates(e, 'job-1-g0', [node('hpc-1', 'ready')], T0 + 30_000);
    expect(publicRecord(e.record).cost).toBeUndefined();
    const priced = publicRecord(e.record, { cost: { prices: pricesOf(DOC), nowMs: T0 + 1_800_000 } });
    expect(priced.cost).toMatchObject({ currency: 'USD', amount: 1.8, nodeSeconds: 1800 });
    const terminate = newEntry({ kind: 'terminate', requestId: 't-1', cluster: 'hpc', names: ['hpc-1'] }, T0, 60_000);
    expect(publicRecord(terminate.record, { cost: { prices: pricesOf(DOC), nowMs: T0 } }).cost).toBeUndefined();
  });
});
