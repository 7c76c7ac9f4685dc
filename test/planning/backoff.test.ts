import { describe, expect, it } from 'vitest';
import { isBackingOff, isCapacityShortfall, nextBackoff, snapshotCapacityFailures, toCapacityBackoff, type BackoffState } from '../../src/planning/backoff.ts';
import { seedSnapshot, T0 } from './fixtures.ts';

const MIN = 60_000;
const f = { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', reason: 'AllocationFailed' };

describe('nextBackoff', () => {
  it('backs off 5 minutes after the first failure', () => {
    const s = nextBackoff(null, f, T0);
    expect(s).toMatchObject({ failures: 1, durationMs: 5 * MIN, untilMs: T0 + 5 * MIN, lastFailureAtMs: T0 });
    expect(isBackingOff(s, T0 + 5 * MIN - 1)).toBe(true);
    expect(isBackingOff(s, T0 + 5 * MIN)).toBe(false);
  });

  it('doubles per new failure after the backoff ended, capped at 30 minutes', () => {
    // Prepare / Act: a failure right after each backoff ends.
    let s: BackoffState | null = null;
    let now = T0;
    const durations: number[] = [];
    for (let i = 0; i < 6; i++) {
      s = nextBackoff(s, f, now);
      durations.push(s.durationMs / MIN);
      now = s.untilMs + 1000;
    }
    // Assess
    expect(durations).toEqual([5, 10, 20, 30, 30, 30]);
  });

  it('does not double for failures while still backing off', () => {
    const first = nextBackoff(null, f, T0);
    const again = nextBackoff(first, { ...f, reason: 'again' }, T0 + 2 * MIN);
    expect(again).toMatchObject({ failures: 1, durationMs: 5 * MIN, untilMs: T0 + 5 * MIN, lastFailureAtMs: T0 + 2 * MIN, reason: 'again' });
  });

  it('forgets after 3 hours without failures', () => {
    let s = nextBackoff(null, f, T0);
    s = nextBackoff(s, f, T0 + 6 * MIN);
    expect(s.durationMs).toBe(10 * MIN);
    s = nextBackoff(s, f, T0 + 6 * MIN + 3 * 60 * MIN);
    expect(s).toMatchObject({ failures: 1, durationMs: 5 * MIN });
  });

  it('treats the same failure seen twice as one (snapshot repeats)', () => {
    const s = nextBackoff(null, { ...f, failedAtMs: T0 - 30_000 }, T0);
    expect(s.untilMs).toBe(T0 - 30_000 + 5 * MIN);
    expect(nextBackoff(s, { ...f, failedAtMs: T0 - 29_000 }, T0 + MIN)).toBe(s);
  });

  it('honours a configured policy', () => {
    const policy = { minMs: 10_000, maxMs: 30_000, resetAfterMs: 100_000 };
    const a = nextBackoff(null, f, T0, policy);
    const b = nextBackoff(a, f, T0 + 15_000, policy);
    const c = nextBackoff(b, f, T0 + 40_000, policy);
    const d = nextBackoff(c, f, T0 + 200_000, policy);
    expect([a.durationMs, b.durationMs, c.durationMs, d.durationMs]).toEqual([10_000, 20_000, 30_000, 10_000]);
    expect(toCapacityBackoff(c)).toEqual({ nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', untilMs: T0 + 70_000, reason: 'AllocationFailed' });
  });
});

describe('capacity failure sources', () => {
  it('reads fresh lastCapacityFailureSec from a snapshot', () => {
    const snapshot = seedSnapshot();
    snapshot.nodearrays[0]!.buckets[0]!.lastCapacityFailureSec = 42;
    snapshot.nodearrays[0]!.buckets[1]!.lastCapacityFailureSec = 3600;
    expect(snapshotCapacityFailures(snapshot)).toEqual([
      { nodearray: 'ondemand', machineType: 'Standard_F32s_v2', failedAtMs: T0 - 42_000, reason: 'CycleCloud reported a capacity failure on ondemand/Standard_F32s_v2' },
    ]);
  });

  it('recognises capacity shortfalls in create results', () => {
    expect(isCapacityShortfall(4, 1, 'Allocation failed: not enough capacity in the region')).toBe(true);
    expect(isCapacityShortfall(4, 0, 'SkuNotAvailable')).toBe(true);
    expect(isCapacityShortfall(4, 4, 'capacity')).toBe(false);
    expect(isCapacityShortfall(4, 2, 'node name ondemand-3 already exists')).toBe(false);
    expect(isCapacityShortfall(4, 2, undefined)).toBe(false);
  });
});
