/**
 * Retention on azurite: final records older than the cutoff are deleted with their list and index
 * rows and leave a tombstone; open ones stay (and are looked at again once final); a sweep after
 * the marker caught up reads one row.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { closeDemand, settle } from '../../src/ledger/record.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { uniqueNames } from '../helpers/names.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1, 12);
const request = (requestId: string): ScaleRequest => ({ kind: 'scale', requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] });

describe('RequestLedger.expire on azurite', () => {
  const names = uniqueNames();
  let storage: Storage;
  let now = T0;
  let ledger: RequestLedger;
  const close = (id: string) => ledger.update(id, (e) => settle(closeDemand(e, 0, 'gave up', now), now));

  beforeAll(async () => {
    storage = Storage.fromConnectionString(inject('storageConnectionString'));
    await storage.ensure({ tables: [names.requestsTable] });
    ledger = new RequestLedger({ storage, names, now: () => now });
  });

  it('deletes old final records, keeps open and recent ones, and tells an expired id from an unknown one', async () => {
    // Prepare: two old requests (one final, one open) on day 0, one final on day 20.
    await ledger.admit(request('old-final'), now);
    await close('old-final');
    await ledger.admit(request('old-open'), now);
    now = T0 + 20 * DAY;
    await ledger.admit(request('recent'), now);
    await close('recent');
    const seen: string[] = [];
    // Act: 31 days after day 0, retention 30 days.
    now = T0 + 31 * DAY;
    const first = await ledger.expire(now - 30 * DAY, async (e: LedgerEntry) => void seen.push(e.record.requestId));
    // Assess
    expect(first.expired).toBe(1);
    expect(seen).toEqual(['old-final']);
    expect(await ledger.get('old-final')).toBeNull();
    expect(await ledger.tombstone('old-final')).toMatchObject({ requestId: 'old-final', state: 'failed' });
    expect(await ledger.tombstone('never')).toBeNull();
    expect(await ledger.get('old-open')).not.toBeNull();
    expect(await ledger.get('recent')).not.toBeNull();
    const listed = await ledger.listing.list({ sinceMs: T0 - DAY, limit: 200 });
    expect(listed.items.map((i) => i.requestId).sort()).toEqual(['old-open', 'recent']);
    expect((await ledger.listOpen('hpc')).map((e) => e.record.requestId)).toEqual(['old-open']);

    // The open one ends later: the next sweep deletes it without reading its day again.
    await close('old-open');
    const second = await ledger.expire(now - 30 * DAY);
    expect(second.expired).toBe(1);
    expect(await ledger.get('old-open')).toBeNull();
    expect(await ledger.get('recent')).not.toBeNull();
    // Caught up: nothing to do until another day passes the cutoff.
    expect(await ledger.expire(now - 30 * DAY)).toEqual({ expired: 0, throughDay: second.throughDay });
    now = T0 + 51 * DAY;
    expect((await ledger.expire(now - 30 * DAY)).expired).toBe(1);
    expect(await ledger.tombstone('recent')).not.toBeNull();
  });
});
