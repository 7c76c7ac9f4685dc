import { describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { setState } from '../../src/ledger/record.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { uniqueNames } from '../helpers/names.ts';

describe('RequestLedger onFinal', () => {
  it('fires once, when an update makes the entry final, whoever makes it so', async () => {
    // Prepare
    const names = uniqueNames();
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    await storage.ensure({ tables: [names.requestsTable] });
    const finals: LedgerEntry[] = [];
    const ledger = new RequestLedger({ storage, names, onFinal: async (e) => void finals.push(e) });
    await ledger.admit({ kind: 'scale', requestId: 'cb-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }], callbackUrl: 'https://s.example.com/h' }, 1_000);

    // Act: a non-final change, the final one, then another change to the final entry
    await ledger.update('cb-1', (e) => setState(e, 'planning', null, 2_000));
    const afterPlanning = finals.length;
    await ledger.update('cb-1', (e) => setState(e, 'failed', 'no capacity', 3_000));
    await ledger.update('cb-1', (e) => setState(e, 'failed', 'no capacity (again)', 4_000));

    // Assess
    expect(afterPlanning).toBe(0);
    expect(finals).toHaveLength(1);
    expect(finals[0]!.record.state).toBe('failed');
    expect(finals[0]!.record.requestId).toBe('cb-1');
  });
});
