/**
 * Capacity reservations on azurite: concurrent plans of one cluster never reserve more than the
 * bucket has, and a reservation stops counting exactly when a snapshot started after the create's
 * answer counts its nodes.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { CapacityReservations, CLOCK_SKEW_MS, inFlightOf, UNCONFIRMED_AFTER_MS, type Reservation } from '../../src/requests/reservations.ts';
import { uniqueNames } from '../helpers/names.ts';

let storage: Storage;
beforeAll(() => {
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
});

async function fresh() {
  const names = uniqueNames();
  await storage.ensure({ tables: [names.stateTable] });
  return new CapacityReservations({ storage, names });
}

const one = (cc: string, count: number, atMs: number, extra: Partial<Reservation> = {}): Reservation => ({
  cycleCloudRequestId: cc,
  requestId: cc.replace(/-g\d+$/, ''),
  sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count }],
  reservedAtMs: atMs,
  ...extra,
});

describe('capacity reservations', () => {
  it('40 concurrent plans against 12 free nodes reserve exactly 12, never more', async () => {
    const r = await fresh();
    const free = 12;
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        r.reserve('hpc', (items) => {
          const taken = inFlightOf(items, 0).reduce((n, a) => n + a.count, 0);
          const placed = taken < free ? 1 : 0;
          return { reservation: placed ? one(`req-${i}-g0`, 1, 1000) : null, result: placed };
        }),
      ),
    );
    expect(results.reduce((a, b) => a + b, 0)).toBe(free);
    expect((await r.read('hpc')).items).toHaveLength(free);
  });

  it('a reservation counts until a snapshot started after its answer (minus clock skew); the count is what was added', async () => {
    const r = await fresh();
    await r.reserve('hpc', () => ({ reservation: one('a-g0', 4, 1_000), result: null }));
    expect(inFlightOf((await r.read('hpc')).items, 50_000)).toEqual([{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2', placementGroupId: null, count: 4 }]);
    await r.accepted('hpc', 'a-g0', [3], 10_000);
    const items = (await r.read('hpc')).items;
    // A snapshot whose read started before (or just after, within the skew) the answer does not count it.
    expect(inFlightOf(items, 9_000)[0]!.count).toBe(3);
    expect(inFlightOf(items, 10_000 + CLOCK_SKEW_MS)).toHaveLength(1);
    expect(inFlightOf(items, 10_001 + CLOCK_SKEW_MS)).toEqual([]);
  });

  it('prune drops what a snapshot counts and creates that are over, keeps creates whose outcome is unknown', async () => {
    const r = await fresh();
    const t = 100_000;
    await r.reserve('hpc', () => ({ reservation: one('counted-g0', 1, t, { acceptedAtMs: t }), result: null }));
    await r.reserve('hpc', () => ({ reservation: one('young-g0', 1, t), result: null }));
    await r.reserve('hpc', () => ({ reservation: one('failed-g0', 1, t - UNCONFIRMED_AFTER_MS - 1), result: null }));
    await r.reserve('hpc', () => ({ reservation: one('unknown-g0', 1, t - UNCONFIRMED_AFTER_MS - 1), result: null }));
    await r.reserve('hpc', () => ({ reservation: one('ledger-accepted-g0', 1, t - UNCONFIRMED_AFTER_MS - 1), result: null }));
    const asked: string[] = [];
    const dropped = await r.prune('hpc', t + CLOCK_SKEW_MS + 1, t + 1, async (res) => {
      asked.push(res.cycleCloudRequestId);
      if (res.cycleCloudRequestId === 'failed-g0') return { over: true };
      if (res.cycleCloudRequestId === 'ledger-accepted-g0') return { over: false, acceptedAtMs: t - 5_000 };
      return { over: false };
    });
    expect(dropped).toBe(3);
    expect(asked.sort()).toEqual(['failed-g0', 'ledger-accepted-g0', 'unknown-g0']);
    expect((await r.read('hpc')).items.map((x) => x.cycleCloudRequestId).sort()).toEqual(['unknown-g0', 'young-g0']);
  });

  it('a plan of the same create by a second worker never replaces a reservation already answered', async () => {
    const r = await fresh();
    await r.reserve('hpc', () => ({ reservation: one('race-g0', 1, 1_000), result: null }));
    await r.accepted('hpc', 'race-g0', [1], 2_000);
    // The losing worker planned the same generation (its claim will fail): the answered one stays.
    await r.reserve('hpc', () => ({ reservation: one('race-g0', 1, 3_000), result: null }));
    const [kept] = (await r.read('hpc')).items;
    expect(kept).toMatchObject({ cycleCloudRequestId: 'race-g0', acceptedAtMs: 2_000, reservedAtMs: 1_000 });
    expect(inFlightOf([kept!], 2_000 + CLOCK_SKEW_MS + 1)).toEqual([]);
  });

  it('a plan on a snapshot older than the one the row was pruned with is refused, so it plans again on the newer one', async () => {
    const r = await fresh();
    await r.reserve('hpc', () => ({ reservation: one('old-g0', 1, 1_000, { acceptedAtMs: 1_000 }), result: null }));
    // The timer stores a snapshot started at 10 s and prunes with it: old-g0 is counted by it, dropped.
    expect(await r.prune('hpc', 10_000, 10_000, async () => ({ over: false }))).toBe(1);
    // A worker still holding a snapshot from 2 s would not count old-g0's node, and the row no longer
    // has it: it must not plan on that snapshot.
    await expect(r.reserve('hpc', () => ({ reservation: one('late-g0', 1, 11_000), result: null }), 2_000)).rejects.toMatchObject({ code: 'RESERVATION_SNAPSHOT_BEHIND' });
    expect((await r.read('hpc')).items).toEqual([]);
    // On the snapshot it was pruned with (or newer) the plan goes through.
    await r.reserve('hpc', () => ({ reservation: one('late-g0', 1, 11_000), result: null }), 10_000);
    expect((await r.read('hpc')).items.map((x) => x.cycleCloudRequestId)).toEqual(['late-g0']);
  });

  it('release drops one reservation; reserving again under the same create replaces it', async () => {
    const r = await fresh();
    await r.reserve('hpc', () => ({ reservation: one('x-g0', 2, 1), result: null }));
    await r.reserve('hpc', () => ({ reservation: one('x-g0', 5, 2), result: null }));
    await r.reserve('hpc', () => ({ reservation: one('y-g0', 1, 3), result: null }));
    expect((await r.read('hpc')).items.map((x) => [x.cycleCloudRequestId, x.sets[0]!.count])).toEqual([
      ['x-g0', 5],
      ['y-g0', 1],
    ]);
    await r.release('hpc', 'x-g0');
    expect((await r.read('hpc')).items.map((x) => x.cycleCloudRequestId)).toEqual(['y-g0']);
  });
});
