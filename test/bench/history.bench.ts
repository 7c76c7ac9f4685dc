/**
 * Costs that must stay flat as history grows (issue 10), on real azurite:
 * - `snapshot_tick_history`: one snapshot-timer tick (capture from the simulator over HTTP, then
 *   reconcile, orphans, reservations, the tracker sweep, lost wake-ups and the retention sweep)
 *   with 100,000 final records (each with its list row and tracker row) and 100 open ones, against
 *   the same tick with 100 final records. Goal: ratio ≤ 1.5.
 * - `tracker_calls_per_round_{1,10,100}`: CycleCloud calls per poll round with that many
 *   operations in flight on one cluster (each polled once per round, wake-ups handled 16 at a time
 *   as the Functions host does). Goal ≤ 2.
 *
 * Seeding: each final record's list row (day partitions) and tracker row (cluster partition) go in
 * Table batch transactions of 100. Its entry row (PartitionKey = requestId, RowKey = `r`) is seeded
 * for `BENCH_HISTORY_ENTRY_ROWS` of them (default 2,000): azurite looks every single-entity write and
 * point read up by RowKey first, and every entry row shares RowKey `r`, so each insert scans all of
 * them (100,000 inserts took over 15 minutes). No periodic query reads a final entry row (they are
 * reached only through index rows), so the tick does not depend on how many there are; in Table
 * storage a point operation is by (PartitionKey, RowKey) whatever their number.
 */
import type { TableTransaction } from '@azure/data-tables';
import { startAzurite } from '../../src/local/azurite.ts';
import { startSimulator } from '../../src/simulator/server.ts';
import { Storage } from '../../src/platform/storage.ts';
import { packJson } from '../../src/platform/table-json.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { storageNames } from '../../src/platform/names.ts';
import { createServices, type Services } from '../../src/app/services.ts';
import { runSnapshotJob } from '../../src/app/jobs.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { rowOf } from '../../src/ledger/listing.ts';
import { closeDemand, settle } from '../../src/ledger/record.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { initialState } from '../../src/tracking/machine.ts';
import { createTracker } from '../../src/tracking/tracker.ts';
import { CREATE_TAG, REQUEST_TAG } from '../../src/cyclecloud/tags.ts';
import type { CycleCloudApi } from '../../src/cyclecloud/api.ts';
import type { NodeRecord } from '../../src/cyclecloud/schemas.ts';
import { summarise } from './measure.ts';
import { continuePort, storageQueueSender } from '../../src/requests/queue.ts';
import { scalerEnv } from '../helpers/scaler-env.ts';

const DAY = 86_400_000;
/** `BENCH_HISTORY_RECORDS` shrinks the large world for a quick try. */
const FINALS = Number(process.env.BENCH_HISTORY_RECORDS ?? 100_000);
const ENTRY_ROWS = Number(process.env.BENCH_HISTORY_ENTRY_ROWS ?? 2_000);

async function inBatches(storage: Storage, table: string, rows: { partitionKey: string; rowKey: string }[]): Promise<void> {
  const byPk = new Map<string, { partitionKey: string; rowKey: string }[]>();
  for (const r of rows) (byPk.get(r.partitionKey) ?? byPk.set(r.partitionKey, []).get(r.partitionKey)!).push(r);
  const batches: (typeof rows)[] = [];
  for (const list of byPk.values()) for (let i = 0; i < list.length; i += 100) batches.push(list.slice(i, i + 100));
  const client = storage.table(table);
  for (let i = 0; i < batches.length; i += 8) {
    await Promise.all(batches.slice(i, i + 8).map((b) => client.submitTransaction(b.map((e) => ['upsert', e, 'Replace']) as TableTransaction['actions'])));
  }
}

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A services stack with `finals` final records (spread over the last 10 days) and `open` open ones. */
async function world(connectionString: string, sim: { url: string; username: string; password: string }, prefix: string, finals: number, open: number): Promise<Services> {
  const storage = Storage.fromConnectionString(connectionString);
  const s = await createServices(scalerEnv(sim, prefix, { LOG_LEVEL: 'error' }, connectionString), { mode: 'local', logger: silentLogger, storage });
  const ledger = s.pipeline.ledger;
  const now = Date.now();
  // A template final entry written by the real ledger, then copied under other ids and times.
  await ledger.admit({ kind: 'scale', requestId: `${prefix}-template`, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2 }] }, now - DAY);
  const template = await ledger.update(`${prefix}-template`, (e) => settle(closeDemand(e, 0, 'gave up', now - DAY), now - DAY));
  const entries: LedgerEntry[] = Array.from({ length: finals }, (_, i) => {
    const at = now - 10 * DAY + Math.floor((i / finals) * 9 * DAY);
    const e = structuredClone(template);
    delete e.etag;
    e.record.requestId = `f-${i}`;
    e.record.createdAt = new Date(at).toISOString();
    e.record.updatedAt = new Date(at + 60_000).toISOString();
    e.record.operations = [{ operationId: `op-${i}`, cycleCloudRequestId: `f-${i}-g0`, state: 'done', action: 'create' }];
    return e;
  });
  const requests = storage.table(s.names.requestsTable);
  await pool(entries.slice(0, ENTRY_ROWS), 16, (e) =>
    requests.upsertEntity({ partitionKey: e.record.requestId, rowKey: 'r', state: e.record.state, cluster: 'hpc', kind: 'scale', ...packJson(e) }, 'Replace'),
  );
  await inBatches(
    storage,
    s.names.requestsTable,
    entries.map((e) => rowOf(e)),
  );
  await inBatches(
    storage,
    s.names.operationsTable,
    entries.map((e) => {
      const state = initialState(
        {
          cluster: 'hpc',
          operationId: `op-${e.record.requestId}`,
          cycleCloudRequestId: `${e.record.requestId}-g0`,
          requestId: e.record.requestId,
          action: 'create',
          generation: 0,
          sets: [],
        },
        now - DAY,
      );
      state.final = true;
      return { partitionKey: 'hpc', rowKey: encodeURIComponent(`${e.record.requestId}-g0`), final: true, ...packJson({ state, outbox: [], wakeToken: 'w', leaseUntilMs: 0 }) };
    }),
  );
  for (let i = 0; i < open; i++) await ledger.admit({ kind: 'scale', requestId: `o-${i}`, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] }, now);
  return s;
}

async function tick(s: Services, runs: number): Promise<ReturnType<typeof summarise>> {
  await runSnapshotJob(s, { isPastDue: false }, silentLogger); // warm-up: the retention marker catches up here
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    samples.push(performance.now() - t0);
  }
  return summarise(samples);
}

/** A CycleCloud whose cluster holds two Acquiring nodes per operation, tagged as the scaler's creates are; counts calls. */
function countingCycleCloud(ops: string[]): { api: CycleCloudApi; calls: () => number } {
  let calls = 0;
  const nodes: NodeRecord[] = ops.flatMap((cc, i) =>
    [0, 1].map(
      (k) =>
        ({
          Name: `ondemand-${i * 2 + k}`,
          NodeId: `id-${i}-${k}`,
          Template: 'ondemand',
          MachineType: 'Standard_F2s_v2',
          Status: 'Acquiring',
          Tags: { [REQUEST_TAG]: cc, [CREATE_TAG]: cc },
        }) as NodeRecord,
    ),
  );
  const counted = async (): Promise<never> => {
    calls += 1;
    throw new Error('not expected in a poll round');
  };
  const api = {
    listNodes: async () => {
      calls += 1;
      return { nodes: structuredClone(nodes) };
    },
    getClusterStatus: counted,
    createNodes: counted,
    terminateNodes: counted,
    deallocateNodes: counted,
    shutdownNodes: counted,
    startNodes: counted,
    removeNodes: counted,
    scaleNodearray: counted,
    getOperation: counted,
    findOperationByRequestId: counted,
  } as unknown as CycleCloudApi;
  return { api, calls: () => calls };
}

async function callsPerRound(connectionString: string, n: number, rounds: number): Promise<{ max: number; mean: number }> {
  const names = storageNames({ prefix: `bench${n}r${Date.now() % 100_000}` });
  const storage = Storage.fromConnectionString(connectionString);
  await storage.ensure({ tables: [names.requestsTable, names.operationsTable], queues: [names.scaleQueue, names.trackerQueue, names.callbackQueue] });
  let clock = Date.now();
  const ledger = new RequestLedger({ storage, names, now: () => clock });
  const ops = Array.from({ length: n }, (_, i) => `req-${i}-g0`);
  const cc = countingCycleCloud(ops);
  const tracker = createTracker({
    cyclecloud: cc.api,
    storage,
    names,
    ledger,
    pipeline: continuePort(storageQueueSender(storage, names.scaleQueue)),
    now: () => clock,
    logger: silentLogger,
  });
  for (const [i, op] of ops.entries()) {
    await ledger.admit({ kind: 'scale', requestId: `req-${i}`, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2 }] }, clock);
    await tracker.start({
      cluster: 'hpc',
      operationId: `op-${i}`,
      cycleCloudRequestId: op,
      requestId: `req-${i}`,
      action: 'create',
      generation: 0,
      sets: [{ nodearray: 'ondemand', machineType: 'Standard_F2s_v2', placementGroupId: null, count: 2, added: 2, colocated: false, demands: [{ index: 0, count: 2 }] }],
    });
  }
  const perRound: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const records = await Promise.all(ops.map((op) => tracker.store.get('hpc', op)));
    const due = records.map((rec) => rec!).sort((a, b) => a.state.nextPollAtMs - b.state.nextPollAtMs);
    const before = cc.calls();
    // Wake-ups arrive when due, 16 at a time (the host's batch), each with its record's wake token.
    for (let i = 0; i < due.length; i += 16) {
      const batch = due.slice(i, i + 16);
      clock = Math.max(clock, batch.at(-1)!.state.nextPollAtMs);
      await Promise.all(
        batch.map((rec) =>
          tracker.handleTrackerMessage(
            { $tracker: 'poll', cluster: 'hpc', cycleCloudRequestId: rec.state.cycleCloudRequestId, token: rec.wakeToken },
            { dequeueCount: 1 },
            silentLogger,
          ),
        ),
      );
    }
    perRound.push(cc.calls() - before);
  }
  return { max: Math.max(...perRound), mean: perRound.reduce((a, b) => a + b, 0) / perRound.length };
}

export async function run(): Promise<object[]> {
  const az = await startAzurite();
  const sim = await startSimulator({ port: 0 });
  const out: object[] = [];
  try {
    for (const n of [1, 10, 100]) {
      const r = await callsPerRound(az.connectionString, n, 4);
      out.push({ bench: `tracker_calls_per_round_${n}`, operations: n, max_calls_per_round: r.max, mean_calls_per_round: r.mean, rounds: 4, goal_calls: 2 });
    }
    const t0 = performance.now();
    const small = await world(az.connectionString, sim, 'benchsmall', 100, 100);
    const large = await world(az.connectionString, sim, 'benchlarge', FINALS, 100);
    const seedSeconds = Math.round((performance.now() - t0) / 1000);
    const a = await tick(small, 7);
    const b = await tick(large, 7);
    out.push({
      bench: 'snapshot_tick_history',
      ...b,
      small_median_ms: a.median_ms,
      final_records: FINALS,
      final_entry_rows: Math.min(FINALS, ENTRY_ROWS),
      small_final_records: 100,
      open_records: 100,
      ratio: Math.round((b.median_ms / a.median_ms) * 100) / 100,
      goal_ratio: 1.5,
      seed_seconds: seedSeconds,
    });
  } finally {
    await sim.close();
    await az.stop();
  }
  return out;
}
