/**
 * The lease reminders of `src/requests/lifecycle.ts` on fakes: one chain of reminders per request
 * however often it is renewed (a caller renewing every 30 s must not pile up invisible messages),
 * a reminder of its own only for a renew that brings the expiry forward, and a reminder that finds
 * the lease renewed sending the next for the current expiry.
 */
import { describe, expect, it } from 'vitest';
import { onLeaseReminder, renew, type LeaseIndex, type LifecycleDeps } from '../../src/requests/lifecycle.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { MemoryLedger } from '../ledger/memory-ledger.ts';

const T0 = Date.UTC(2026, 11, 7, 12);

function setup(leaseSeconds: number) {
  let now = T0;
  const sends: { body: unknown; delayMs: number }[] = [];
  const notes = new Map<string, number>();
  const ledger = new MemoryLedger();
  const leases = {
    note: async (id: string, _cluster: string, dueAtMs: number) => void notes.set(id, dueAtMs),
    drop: async (id: string) => void notes.delete(id),
    due: async () => [...notes].map(([requestId, dueAtMs]) => ({ requestId, cluster: 'hpc', dueAtMs })),
  } as unknown as LeaseIndex;
  const deps: LifecycleDeps = {
    ledger,
    tracker: { terminate: async () => ({ operationId: 'op', nodes: [], calls: 1 }) },
    leases,
    queue: { send: async (body, options) => void sends.push({ body, delayMs: options?.visibilityDelayMs ?? 0 }) },
    now: () => now,
    logger: silentLogger,
  };
  return {
    deps,
    sends,
    notes,
    admit: () => ledger.admit({ kind: 'scale', requestId: 'r', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }], lease: { seconds: leaseSeconds } }, now),
    at: (ms: number) => {
      now = T0 + ms;
    },
  };
}

describe('lease reminders', () => {
  it('renewing every 10 s sends no reminder; the one on its way finds the lease renewed and sends the next', async () => {
    const t = setup(60);
    await t.admit();
    for (let s = 10; s <= 50; s += 10) {
      t.at(s * 1000);
      expect((await renew(t.deps, 'r', undefined)).ok).toBe(true);
    }
    expect(t.sends).toEqual([]);
    expect(t.notes.get('r')).toBe(T0 + 110_000);

    t.at(60_000);
    const entry = await onLeaseReminder(t.deps, { $scaler: 'lease', requestId: 'r' });

    expect(entry?.record.released).toBeUndefined();
    expect(t.sends).toEqual([{ body: { $scaler: 'lease', requestId: 'r', dueAtMs: T0 + 110_000 }, delayMs: 50_000 }]);
  });

  it('a renew that brings the expiry forward sends a reminder of its own', async () => {
    const t = setup(3600);
    await t.admit();
    t.at(10_000);
    await renew(t.deps, 'r', 60);
    expect(t.sends).toEqual([{ body: { $scaler: 'lease', requestId: 'r', dueAtMs: T0 + 70_000 }, delayMs: 60_000 }]);
  });

  it('a reminder at the expiry releases, and sends nothing more', async () => {
    const t = setup(60);
    await t.admit();
    t.at(60_000);
    const entry = await onLeaseReminder(t.deps, { $scaler: 'lease', requestId: 'r' });
    expect(entry?.record.released?.reason).toBe('lease expired');
    expect(t.sends).toEqual([]);
  });
});
