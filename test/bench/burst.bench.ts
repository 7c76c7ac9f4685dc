/**
 * A burst through the real stack: 1,000 one-node requests POSTed over HTTP to `npm start` (its own
 * azurite, the embedded simulator) with capacity for 50 nodes. Reports the intake rate, how long an
 * accept takes, how long from accept to CycleCloud's create call while capacity lasts, and what the
 * burst did to CycleCloud: create calls, nodes asked against nodes free, duplicates, orphans, lost.
 * Goals (issue: group commit): ≥ 400 requests/s intake, accept → create p50 ≤ 300 ms and p99 ≤ 1 s,
 * ≤ 4 storage round trips per request (counted by a proxy in front of azurite's table and queue
 * endpoints), few create calls (batches), 0 over-ask, 0 duplicates, 0 lost.
 */
import { azuriteConnectionString, startAzurite } from '../../src/local/azurite.ts';
import { countingProxy } from './storage-proxy.ts';
import { startScaler, sleep } from '../e2e/harness.ts';
import { postOneNodeRequests, summarise } from './measure.ts';
import { askedFor, createCallsOf, memberCreatesOf, setsOf } from '../helpers/creates.ts';

const REQUESTS = 1_000;
const CONCURRENCY = 32;

/** Two scenarios: capacity for 50 of the 1,000 (most wait with a reason), and for all 1,000 (`BURST_FREE=50` or `=1000` runs one). */
export async function run(): Promise<object[]> {
  const free = (process.env.BURST_FREE ?? '50,1000').split(',').map(Number);
  const out: object[] = [];
  for (const n of free) out.push(...(await scenario(n)));
  return out;
}

async function scenario(FREE: number): Promise<object[]> {
  const azurite = await startAzurite();
  // Every table and queue round trip of the host goes through a counting proxy.
  const tables = await countingProxy(azurite.ports.table);
  const queues = await countingProxy(azurite.ports.queue);
  const storageConnectionString = azuriteConnectionString({ ...azurite.ports, table: tables.port, queue: queues.port });
  const host = await startScaler({ storageConnectionString, env: { SNAPSHOT_SCHEDULE: '*/2 * * * * *', LOG_LEVEL: process.env.BURST_LOG_LEVEL ?? 'warn' } });
  try {
    const sim = (path: string, body: unknown) => host.sim$(path, { method: 'POST', body: JSON.stringify(body) });
    // The mpi bucket gets room for exactly FREE nodes (the cluster's and the nodearray's limits too).
    await sim('/__sim/limits', { cluster: 'hpc', maxCount: FREE + 200, maxCoreCount: (FREE + 200) * 120 });
    await sim('/__sim/limits', { cluster: 'hpc', nodearray: 'mpi', maxCount: Math.max(64, FREE), maxCoreCount: Math.max(64, FREE) * 120 });
    await sim('/__sim/buckets', { cluster: 'hpc', nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', patch: { quotaCoreCount: FREE * 120 } });
    // Plans read the stored snapshot: start once one shows the new quota.
    type Status = { nodearrays: Array<{ name: string; buckets: Array<{ machineType: string; availableCount: number }> }> };
    for (const until = Date.now() + 30_000; Date.now() < until; await sleep(200)) {
      const s = (await (await host.api('/clusters/hpc/status')).json()) as Status;
      if (s.nodearrays?.find((n) => n.name === 'mpi')?.buckets.find((x) => x.machineType === 'Standard_HB120rs_v3')?.availableCount === FREE) break;
    }
    const ids = Array.from({ length: REQUESTS }, (_, i) => `burst-${i}`);
    const client = { latencies: [] as number[], acceptedAt: new Map<string, number>(), refused: 0 };
    tables.reset();
    queues.reset();
    const started = performance.now();
    await postOneNodeRequests(host.api, ids, CONCURRENCY, client);
    const { latencies, acceptedAt } = client;
    const failed = client.refused;
    const intakeSeconds = (performance.now() - started) / 1000;

    // Let the queue drain while capacity lasts: every free node asked for, then a quiet while.
    // Creates may be batched: one call carries the sets of several requests, each set tagged with
    // its own request (`ccscale-request`) and member create id (`ccscale-create`).
    const createCalls = async () => createCallsOf(await host.simCalls());
    const askedBy = (cs: Awaited<ReturnType<typeof createCalls>>) => cs.filter((c) => c.status === 202).reduce((n, c) => n + askedFor(c, 'burst-'), 0);
    const until = Date.now() + 180_000;
    while (Date.now() < until && askedBy(await createCalls()) < FREE) await sleep(500);
    // Storage round trips from the first POST until every free node was asked for: all of the
    // host's table and queue traffic in that time (timer and tracker included), per request.
    const storageTable = tables.total();
    const storageQueue = queues.total();
    const storageByTarget = { ...tables.byTarget(), ...queues.byTarget() };
    await sleep(5_000);
    const calls = await createCalls();
    const applied = calls.filter((c) => c.status === 202);
    const asked = askedBy(calls);
    const byCc = new Map<string, number>();
    for (const cc of applied.flatMap(memberCreatesOf)) byCc.set(cc, (byCc.get(cc) ?? 0) + 1);
    const duplicates = [...byCc.values()].filter((n) => n > 1).length;
    const toCreate = applied.flatMap((c) =>
      setsOf(c, 'burst-').flatMap((set) => {
        const at = acceptedAt.get(String(set.nodeAttributes?.Tags?.['ccscale-request']));
        return at === undefined ? [] : [c.atMs - at];
      }),
    );
    const state = (await (await host.sim$('/__sim/state')).json()) as { clusters: { hpc: { nodes: Array<{ Tags?: Record<string, string> }> } } };
    const tagged = state.clusters.hpc.nodes.filter((n) => n.Tags?.['ccscale-request']);
    // Lost: an accepted request the ledger does not know.
    let lost = 0;
    for (const id of ids) if (acceptedAt.has(id) && (await host.api(`/scale-requests/${id}`)).status !== 200) lost += 1;
    const health = (await (await host.api('/health')).json()) as { overAsk: number | null };
    const accept = summarise(latencies);
    // What the host warned about, by message (the five most frequent): why requests waited.
    const warned = new Map<string, number>();
    for (const line of host.output().split('\n')) {
      const m = /"level":"warn","msg":"([^"]+)"/.exec(line) ?? /\bWARN\b\s+(.{0,80})/.exec(line);
      if (m) warned.set(m[1]!, (warned.get(m[1]!) ?? 0) + 1);
    }
    const warnings = Object.fromEntries([...warned].sort((a, b) => b[1] - a[1]).slice(0, 5));
    const create = summarise(toCreate);
    return [
      {
        bench: `burst_1000_one_node_requests_http_${FREE}_free`,
        requests: REQUESTS,
        accepted: acceptedAt.size,
        refused: failed,
        intake_per_s: Math.round(acceptedAt.size / intakeSeconds),
        goal_intake_per_s: 400,
        accept_p50_ms: accept.median_ms,
        accept_p99_ms: summariseAt(latencies, 0.99),
        accept_to_create_p50_ms: create.median_ms,
        accept_to_create_p99_ms: summariseAt(toCreate, 0.99),
        goal_accept_to_create_p50_ms: 300,
        goal_accept_to_create_p99_ms: 1000,
        storage_round_trips: storageTable + storageQueue,
        storage_table_round_trips: storageTable,
        storage_queue_round_trips: storageQueue,
        storage_round_trips_per_request: Math.round(((storageTable + storageQueue) / Math.max(1, acceptedAt.size)) * 10) / 10,
        goal_storage_round_trips_per_request: 4,
        storage_round_trips_by_target: storageByTarget,
        create_calls: calls.length,
        create_calls_applied: applied.length,
        sets_per_applied_create: applied.length > 0 ? Math.round((applied.reduce((n, c) => n + setsOf(c, 'burst-').length, 0) / applied.length) * 10) / 10 : 0,
        nodes_free: FREE,
        nodes_asked: asked,
        over_ask: Math.max(0, asked - FREE),
        over_ask_counter: health.overAsk,
        duplicates,
        orphans: Math.max(0, tagged.length - asked),
        lost,
        warnings,
      },
    ];
  } finally {
    // BURST_LOG=<file> keeps the host's log of the run (with BURST_LOG_LEVEL=info: each batch's phases).
    if (process.env.BURST_LOG) (await import('node:fs')).writeFileSync(`${process.env.BURST_LOG}.${FREE}`, host.output());
    await host.stop();
    await tables.close();
    await queues.close();
    await azurite.stop();
  }
}

function summariseAt(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return Math.round((sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0) * 1000) / 1000;
}
