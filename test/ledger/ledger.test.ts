import { beforeAll, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { ScalerState } from '../../src/requests/state.ts';
import { applySubmission, setState, settle, closeDemand } from '../../src/ledger/record.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { uniqueNames } from '../helpers/names.ts';

const T0 = Date.UTC(2026, 0, 1);

function request(requestId: string, cluster = 'hpc', count = 2): ScaleRequest {
  return { kind: 'scale', requestId, cluster, demands: [{ nodearray: 'ondemand', count }] };
}

describe('RequestLedger on azurite', () => {
  const names = uniqueNames();
  let storage: Storage;
  const now = T0;
  let ledger: RequestLedger;

  beforeAll(async () => {
    storage = Storage.fromConnectionString(inject('storageConnectionString'));
    await storage.ensure({ tables: [names.requestsTable, names.stateTable] });
    ledger = new RequestLedger({ storage, names, now: () => now });
  });

  it('admits once: same content is a duplicate, different content a conflict', async () => {
    // Act
    const first = await ledger.admit(request('job-a'), now);
    const again = await ledger.admit({ ...request('job-a'), demands: [{ count: 2, nodearray: 'ondemand' }] }, now + 5);
    const other = await ledger.admit(request('job-a', 'hpc', 3), now + 6);
    // Assess
    expect(first.outcome).toBe('created');
    expect(first.entry.record.state).toBe('queued');
    expect(again.outcome).toBe('duplicate');
    expect(other.outcome).toBe('conflict');
    expect((await ledger.getRecord('job-a'))!.demands[0]!.requested).toBe(2);
    expect(await ledger.getRecord('nope')).toBeNull();
  });

  it('writes the open-index row at admission and deletes it when final; no other update touches it', async () => {
    await ledger.admit(request('job-idx'), now);
    const table = storage.table(names.requestsTable);
    const indexEtag = async () => (await table.getEntity('~open~hpc', 'job-idx').catch(() => null))?.etag ?? null;
    const before = await indexEtag();
    expect(before).not.toBeNull();
    // A wait, a claim (intent) and an answer leave the row alone: no index round trip on the create path
    await ledger.update('job-idx', (e) => {
      e.record.reason = 'waiting for capacity';
      e.waits = 3;
    });
    const attempt = (state: 'intent' | 'accepted') => ({
      generation: 0,
      cycleCloudRequestId: 'job-idx-g0',
      state,
      operationId: state === 'accepted' ? 'op-1' : null,
      submittedAtMs: now,
      sets: [
        { nodearray: 'ondemand', machineType: 'HC', placementGroupId: null, count: 2, added: state === 'accepted' ? 2 : null, message: null, demands: [{ index: 0, count: 2 }] },
      ],
    });
    await ledger.update('job-idx', (e) => applySubmission(e, attempt('intent'), now));
    await ledger.update('job-idx', (e) => applySubmission(e, attempt('accepted'), now));
    expect(await indexEtag()).toBe(before);
    expect((await ledger.listOpen('hpc')).map((e) => e.record.requestId)).toContain('job-idx');
    // Final: the row goes, and the entry is no longer listed as open
    await ledger.update('job-idx', (e) => setState(e, 'failed', 'given up', now));
    expect(await indexEtag()).toBeNull();
    expect((await ledger.listOpen('hpc')).map((e) => e.record.requestId)).not.toContain('job-idx');
  });

  it('heals an index row a crash left behind for a final entry, and drops rows an older version kept', async () => {
    await ledger.admit(request('job-heal'), now);
    await ledger.update('job-heal', (e) => setState(e, 'failed', 'given up', now));
    const table = storage.table(names.requestsTable);
    await table.upsertEntity({ partitionKey: '~open~hpc', rowKey: 'job-heal', final: false }, 'Replace');
    await table.upsertEntity({ partitionKey: '~open~hpc', rowKey: 'job-old', final: true, allocations: '[]' }, 'Replace');
    expect((await ledger.listOpen('hpc')).map((e) => e.record.requestId)).not.toContain('job-heal');
    expect(await table.getEntity('~open~hpc', 'job-heal').catch(() => null)).toBeNull();
    expect(await table.getEntity('~open~hpc', 'job-old').catch(() => null)).toBeNull();
  });

  it('serialises concurrent updates with ETags (no lost writes)', async () => {
    await ledger.admit(request('job-b'), now);
    // Act: 8 writers each append an operation
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        ledger.update('job-b', (e) => {
          e.record.operations.push({ operationId: `op-${i}`, cycleCloudRequestId: `x-${i}`, state: 'pending' });
        }),
      ),
    );
    // Assess
    const rec = await ledger.getRecord('job-b');
    expect(rec!.operations.map((o) => o.operationId).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `op-${i}`).sort());
  });

  it('keeps records with thousands of nodes', async () => {
    await ledger.admit(request('job-big', 'hpc', 5000), now);
    const nodes = Array.from({ length: 5000 }, (_, i) => ({ name: `ondemand-${i}`, id: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`, status: 'Ready', demand: 0 }));
    await ledger.update('job-big', (e) => {
      e.record.nodes = nodes;
    });
    expect((await ledger.getRecord('job-big'))!.nodes).toHaveLength(5000);
  });

  it('records a rejected message once, without overwriting a valid entry', async () => {
    const r = await ledger.reject('msg-123', null, 'not JSON', [], now);
    expect(r.record.state).toBe('rejected');
    const again = await ledger.reject('job-a', 'hpc', 'demands.0.count: too small', [{ path: 'demands.0.count', message: 'too small' }], now);
    expect(again.record.state).toBe('queued');
  });

  it('an entry admitted by a worker that died right after writing it is still listed open (the sweeper can revive it)', async () => {
    // Prepare: the worker dies at its first write after the entry itself was created (its index
    // row and the entry are the first two creates)
    let creates = 0;
    const crashing = new Proxy(storage, {
      get(target, prop) {
        if (prop !== 'table') return (Reflect.get(target, prop) as (...a: unknown[]) => unknown).bind(target);
        return (name: string) => {
          const table = target.table(name);
          return new Proxy(table, {
            get(t, p) {
              if (p === 'upsertEntity' || p === 'updateEntity' || (p === 'createEntity' && creates >= 2)) return () => Promise.reject(new Error('worker died'));
              if (p === 'createEntity') creates++;
              return (Reflect.get(t, p) as (...a: unknown[]) => unknown).bind(t);
            },
          });
        };
      },
    });
    const dying = new RequestLedger({ storage: crashing, names, now: () => now });
    // Act
    await dying.admit(request('job-died', 'hpc-died'), now).catch(() => undefined);
    expect(creates).toBe(2);
    // Assess
    expect((await ledger.get('job-died'))?.record.state).toBe('queued');
    expect((await ledger.listOpen('hpc-died')).map((e) => e.record.requestId)).toEqual(['job-died']);
  });

  it('reports in-flight creates per cluster since a time and lists open entries', async () => {
    // Prepare: a request on another cluster with an accepted create, one still at intent
    const cluster = 'c-inflight/1';
    await ledger.admit(request('if-1', cluster, 4), now);
    await ledger.admit(request('if-2', cluster, 3), now);
    await ledger.update('if-1', (e) =>
      applySubmission(
        e,
        {
          generation: 0,
          cycleCloudRequestId: 'if-1-g0',
          state: 'accepted',
          operationId: 'op',
          submittedAtMs: now + 10,
          sets: [{ nodearray: 'ondemand', machineType: 'F32', placementGroupId: null, count: 4, added: 3, message: null, demands: [{ index: 0, count: 4 }] }],
        },
        now,
      ),
    );
    await ledger.update('if-2', (e) =>
      applySubmission(
        e,
        {
          generation: 0,
          cycleCloudRequestId: 'if-2-g0',
          state: 'intent',
          operationId: null,
          submittedAtMs: now + 20,
          sets: [{ nodearray: 'ondemand', machineType: 'HC', placementGroupId: 'pg1', count: 3, added: null, message: null, demands: [{ index: 0, count: 3 }] }],
        },
        now,
      ),
    );
    // Act, assess
    expect((await ledger.listOpen(cluster)).map((e) => e.record.requestId).sort()).toEqual(['if-1', 'if-2']);

    // an entry whose create may exist (still at intent) never settles: it stays open and counted
    await ledger.update('if-2', (e) => settle(closeDemand(e, 0, 'gave up', now), now));
    expect((await ledger.listOpen(cluster)).map((e) => e.record.requestId).sort()).toEqual(['if-1', 'if-2']);
    expect((await ledger.listOpen()).map((e) => e.record.requestId)).toContain('if-1');

    // once CycleCloud says it never had it, the entry settles and leaves listOpen
    await ledger.update('if-2', (e) => settle(applySubmission(e, { ...e.attempts[0]!, state: 'failed' }, now), now));
    expect((await ledger.listOpen(cluster)).map((e) => e.record.requestId)).toEqual(['if-1']);
  });
});

describe('ScalerState on azurite', () => {
  const names = uniqueNames();
  let storage: Storage;

  beforeAll(async () => {
    storage = Storage.fromConnectionString(inject('storageConnectionString'));
    await storage.ensure({ tables: [names.stateTable] });
  });

  it('pauses by switch or by setting', async () => {
    const state = new ScalerState({ storage, names });
    expect(await state.isPaused()).toBe(false);
    await state.setPaused(true, 'ops');
    expect(await state.isPaused()).toBe(true);
    await state.setPaused(false);
    expect(await state.isPaused()).toBe(false);
    expect(await new ScalerState({ storage, names, pausedBySetting: true }).isPaused()).toBe(true);
  });

  it('counts concurrently without losing increments', async () => {
    const state = new ScalerState({ storage, names });
    await Promise.all(Array.from({ length: 10 }, () => state.increment('rejectedMessages')));
    await state.increment('poisonedMessages');
    expect(await state.counters()).toEqual({ rejectedMessages: 10, poisonedMessages: 1 });
  });

  describe('an update on the entry the caller last saw (known)', () => {
    const names = uniqueNames();
    const now = T0;
    beforeAll(async () => {
      await Storage.fromConnectionString(inject('storageConnectionString')).ensure({ tables: [names.requestsTable, names.stateTable] });
    });
    /** A ledger of its own whose table counts its reads. */
    function counted() {
      const own = Storage.fromConnectionString(inject('storageConnectionString'));
      const table = own.table(names.requestsTable);
      const reads = { n: 0 };
      const getEntity = table.getEntity.bind(table);
      table.getEntity = ((...args: Parameters<typeof table.getEntity>) => {
        reads.n += 1;
        return getEntity(...args);
      }) as typeof table.getEntity;
      return { ledger: new RequestLedger({ storage: own, names, now: () => now }), reads };
    }

    it('writes without a read when nobody wrote since, and each next update chains on the last', async () => {
      const { ledger: l, reads } = counted();
      let known = (await l.admit(request('known-1'), now)).entry;
      reads.n = 0;
      for (const reason of ['a', 'b', 'c']) known = await l.update('known-1', (e) => void (e.record.reason = reason), known);
      expect(reads.n).toBe(0);
      expect((await l.get('known-1'))!.record.reason).toBe('c');
    });

    it('an old known entry loses nothing: the update reads and applies the change to what is stored', async () => {
      const { ledger: l, reads } = counted();
      const stale = (await l.admit(request('known-2'), now)).entry;
      await l.update('known-2', (e) => void (e.record.demands[0]!.reason = 'written by another worker'));
      reads.n = 0;
      const next = await l.update('known-2', (e) => void (e.record.reason = 'mine'), stale);
      expect(reads.n).toBe(1);
      expect(next.record.reason).toBe('mine');
      expect(next.record.demands[0]!.reason).toBe('written by another worker');
      expect((await l.get('known-2'))!.record.demands[0]!.reason).toBe('written by another worker');
    });

    it('a mutation that refuses the old entry, or changes nothing on it, is decided again on the stored one', async () => {
      const { ledger: l } = counted();
      const stale = (await l.admit(request('known-3'), now)).entry;
      await l.update('known-3', (e) => void (e.record.reason = 'moved on'));
      // Refuses what it thinks is current ('queued' without a reason): on the stored entry it proceeds.
      const seen: (string | null)[] = [];
      const next = await l.update(
        'known-3',
        (e) => {
          seen.push(e.record.reason);
          if (e.record.reason !== 'moved on') throw new Error('not on this one');
          e.record.reason = 'after';
        },
        stale,
      );
      expect(seen).toEqual([null, 'moved on']);
      expect(next.record.reason).toBe('after');
      // Changes nothing on the old entry (it already says 'queued'): the stored one is returned, not the old.
      const same = await l.update('known-3', () => undefined, stale);
      expect(same.record.reason).toBe('after');
    });
  });
});
