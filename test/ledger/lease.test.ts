/**
 * The lease rules of `src/ledger/lease.ts`, on plain entries: when a lease or lifetime is due, what
 * a renew may do, what a release closes, and which nodes a release round still has to shut down.
 */
import { describe, expect, it } from 'vitest';
import { applyNodeStates, applySubmission, isFinal, newEntry, settle } from '../../src/ledger/record.ts';
import {
  addReleaseRound,
  dueReason,
  LeaseRefused,
  lifecycleDueAtMs,
  markReleased,
  releaseRequestId,
  releaseRoundSent,
  releaseSettled,
  releaseTargets,
  renewLease,
} from '../../src/ledger/lease.ts';
import { parseLifecycleCommand, parseRequestMessage, type ScaleRequest } from '../../src/ledger/schemas.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';

const T0 = Date.UTC(2026, 11, 7, 12);
const DEADLINE = 30 * 60_000;

function request(over: Partial<ScaleRequest> = {}): ScaleRequest {
  return { kind: 'scale', requestId: 'lease-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2 }], ...over };
}

/** An entry whose two nodes were created and are Ready (fulfilled). */
function fulfilled(over: Partial<ScaleRequest> = { lease: { seconds: 60 } }): LedgerEntry {
  let e = newEntry(request(over), T0, DEADLINE);
  e = applySubmission(
    e,
    {
      generation: 0,
      cycleCloudRequestId: 'lease-1-g0',
      state: 'accepted',
      operationId: 'op-1',
      sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count: 2, added: 2, message: null, demands: [{ index: 0, count: 2 }] }],
      submittedAtMs: T0,
    },
    T0,
  );
  e = applyNodeStates(
    e,
    'lease-1-g0',
    [
      { name: 'ondemand-1', id: 'n1', status: 'Ready', demand: 0, outcome: 'ready' },
      { name: 'ondemand-2', id: 'n2', status: 'Ready', demand: 0, outcome: 'ready' },
    ],
    T0 + 5_000,
  );
  return settle(e, T0 + 5_000);
}

describe('lease and lifetime at acceptance', () => {
  it('starts both clocks at acceptance; the request names them or the defaults do', () => {
    const named = newEntry(request({ lease: { seconds: 120 }, maxLifetimeSeconds: 3600 }), T0, DEADLINE);
    expect(named.record.lease).toEqual({ seconds: 120, expiresAt: new Date(T0 + 120_000).toISOString() });
    expect(named.record.maxLifetime).toEqual({ seconds: 3600, endsAt: new Date(T0 + 3_600_000).toISOString() });
    expect(lifecycleDueAtMs(named)).toBe(T0 + 120_000);

    const defaulted = newEntry(request(), T0, DEADLINE, { leaseSeconds: 300, maxLifetimeSeconds: 200 });
    expect(defaulted.record.lease?.seconds).toBe(300);
    // The lifetime is sooner than the lease here: it is what is due first.
    expect(lifecycleDueAtMs(defaulted)).toBe(T0 + 200_000);

    const none = newEntry(request(), T0, DEADLINE);
    expect(none.record.lease).toBeUndefined();
    expect(lifecycleDueAtMs(none)).toBeNull();
  });

  it('the request names its own lease over the default, and the defaults do not change its body hash', () => {
    const a = newEntry(request({ lease: { seconds: 90 } }), T0, DEADLINE, { leaseSeconds: 600 });
    expect(a.record.lease?.seconds).toBe(90);
    expect(newEntry(request(), T0, DEADLINE, { leaseSeconds: 600 }).bodyHash).toBe(newEntry(request(), T0, DEADLINE).bodyHash);
  });

  it('validates the fields, naming each', () => {
    const bad = parseRequestMessage({ ...request(), lease: { seconds: 59 }, maxLifetimeSeconds: 1.5 });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.errors.map((e) => e.path).sort()).toEqual(['lease.seconds', 'maxLifetimeSeconds']);
    expect(bad.errors.find((e) => e.path === 'lease.seconds')?.message).toMatch(/at least 60 seconds/);
    const long = parseRequestMessage({ ...request(), lease: { seconds: 2_592_001 } });
    expect(long.ok ? null : long.errors[0]).toEqual({ path: 'lease.seconds', message: 'must be at most 2592000 seconds' });
    const extra = parseRequestMessage({ ...request(), lease: { seconds: 60, until: 'x' } });
    expect(extra.ok ? null : extra.errors[0]?.path).toBe('lease.until');
  });

  it('parses the queue forms of renew and release, and refuses what they do not take', () => {
    expect(parseLifecycleCommand({ kind: 'renew', requestId: 'a', seconds: 120 })).toEqual({ ok: true, value: { kind: 'renew', requestId: 'a', seconds: 120 } });
    expect(parseLifecycleCommand({ kind: 'release', requestId: 'a' }).ok).toBe(true);
    const bad = parseLifecycleCommand({ kind: 'release', requestId: 'a', seconds: 120 });
    expect(bad.ok ? null : bad.errors[0]?.path).toBe('seconds');
    const noId = parseLifecycleCommand({ kind: 'renew' });
    expect(noId.ok ? null : noId.errors[0]).toEqual({ path: 'requestId', message: 'is required' });
  });
});

describe('renew', () => {
  it('moves the lease to now + its length, or + the seconds asked', () => {
    const e = fulfilled();
    const later = T0 + 50_000;
    expect(renewLease(e, undefined, later).record.lease).toEqual({ seconds: 60, expiresAt: new Date(later + 60_000).toISOString() });
    expect(renewLease(e, 600, later).record.lease).toEqual({ seconds: 600, expiresAt: new Date(later + 600_000).toISOString() });
  });

  it('is refused after expiry (even before anything acted on it), after a release, and without a lease', () => {
    const e = fulfilled();
    expect(() => renewLease(e, undefined, T0 + 60_000)).toThrow(LeaseRefused);
    expect(() => renewLease(e, undefined, T0 + 60_000)).toThrow(/expired at 2026-12-07T12:01:00.000Z/);
    const released = markReleased(e, 'released', T0 + 10_000);
    expect(() => renewLease(released, undefined, T0 + 20_000)).toThrow(/was released at .* \(released\)/);
    expect(() => renewLease(fulfilled({}), undefined, T0)).toThrow(/has no lease/);
  });

  it('does not outlive the max lifetime: past it, a renew is refused and the lifetime is what is due', () => {
    const e = fulfilled({ lease: { seconds: 60 }, maxLifetimeSeconds: 100 });
    const renewed = renewLease(e, 600, T0 + 50_000);
    expect(lifecycleDueAtMs(renewed)).toBe(T0 + 100_000);
    expect(dueReason(renewed, T0 + 100_000)).toBe('max lifetime');
    expect(() => renewLease(renewed, undefined, T0 + 100_000)).toThrow(/max lifetime/);
  });

  it('orders against expiry: a renew written first makes the expiry check find nothing due', () => {
    const e = fulfilled();
    // Both decided at T0+59.9s: the renew lands first; the expiry, re-decided on the stored entry at T0+60s, finds the new lease.
    const renewed = renewLease(e, undefined, T0 + 59_900);
    expect(dueReason(renewed, T0 + 60_000)).toBeNull();
    // The other order: released first, the renew is refused.
    const expired = markReleased(e, dueReason(e, T0 + 60_000)!, T0 + 60_000);
    expect(expired.record.released).toEqual({ at: new Date(T0 + 60_000).toISOString(), reason: 'lease expired' });
    expect(() => renewLease(expired, undefined, T0 + 60_001)).toThrow(LeaseRefused);
  });
});

describe('release', () => {
  it('the first release stands; the lease leaves the record', () => {
    const e = markReleased(fulfilled(), 'released', T0 + 10_000);
    expect(e.record.lease).toBeUndefined();
    expect(markReleased(e, 'lease expired', T0 + 90_000)).toBe(e);
    expect(lifecycleDueAtMs(e)).toBeNull();
  });

  it('closes the demands still waiting, so nothing more is created, and the request ends', () => {
    const waiting = newEntry(request({ lease: { seconds: 60 } }), T0, DEADLINE);
    const e = markReleased(waiting, 'lease expired', T0 + 60_000);
    expect(e.closedDemands?.[0]).toMatch(/lease expired/);
    expect(isFinal(e)).toBe(true);
    expect(e.record.state).toBe('failed');
    expect(releaseTargets(e)).toEqual([]);
    expect(releaseSettled(e)).toBe(true);
  });

  it('targets the live nodes no round covers; a sent round and gone nodes settle it', () => {
    let e = markReleased(fulfilled(), 'released', T0 + 10_000);
    expect(releaseTargets(e).map((t) => t.key)).toEqual(['id:n1', 'id:n2']);
    const { entry, round } = addReleaseRound(e, releaseTargets(e), T0 + 10_000);
    expect(round).toMatchObject({
      round: 0,
      cycleCloudRequestId: releaseRequestId('lease-1', 0),
      names: ['ondemand-1', 'ondemand-2'],
      nodeIds: { 'ondemand-1': 'n1', 'ondemand-2': 'n2' },
    });
    expect(round.cycleCloudRequestId).toBe('lease-1-rel0');
    e = entry;
    expect(releaseTargets(e)).toEqual([]);
    // The intent is not settled until it is sent.
    expect(releaseSettled(e)).toBe(false);
    e = releaseRoundSent(e, 0, T0 + 11_000);
    expect(releaseSettled(e)).toBe(true);
  });

  it('a node that shows up after the release (a late create) gets a round of its own; one already going does not', () => {
    let e = markReleased(fulfilled(), 'released', T0 + 10_000);
    e = releaseRoundSent(addReleaseRound(e, releaseTargets(e), T0 + 10_000).entry, 0, T0 + 10_000);
    e = applyNodeStates(
      e,
      'lease-1-g0',
      [
        { name: 'ondemand-3', id: 'n3', status: 'Allocation', demand: 0, outcome: 'pending' },
        { name: 'ondemand-4', id: 'n4', status: 'Terminating', demand: 0, outcome: 'pending' },
      ],
      T0 + 20_000,
    );
    expect(releaseTargets(e).map((t) => t.name)).toEqual(['ondemand-3']);
    expect(releaseSettled(e)).toBe(false);
    expect(addReleaseRound(e, releaseTargets(e), T0 + 20_000).round.cycleCloudRequestId).toBe('lease-1-rel1');
  });

  it('is not settled while a create of the request may still add nodes', () => {
    const open = newEntry(request({ lease: { seconds: 60 } }), T0, DEADLINE);
    const inFlight = applySubmission(open, { generation: 0, cycleCloudRequestId: 'lease-1-g0', state: 'intent', operationId: null, sets: [], submittedAtMs: T0 }, T0);
    const e = markReleased(inFlight, 'released', T0 + 1_000);
    expect(isFinal(e)).toBe(false);
    expect(releaseSettled(e)).toBe(false);
  });
});
