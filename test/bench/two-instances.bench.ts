/**
 * Two `npm start` hosts on ONE storage account (one azurite, one prefix, one scale queue) and ONE
 * CycleCloud (a simulator behind a proxy that counts the creates in flight): 500 one-node requests
 * POSTed into each host at once, with room for 600 nodes. Goals (issue: group commit): at most one
 * batch (create) per cluster in flight across both instances, 0 over-ask, 0 duplicates, 0 orphans,
 * 0 lost, and both instances' requests served from the same batches. `TWO_SETTINGS` (see below)
 * loosens batching and the governor, to show the count is not one by construction.
 */
import { randomBytes } from 'node:crypto';
import { azuriteConnectionString, startAzurite } from '../../src/local/azurite.ts';
import { startSimulator } from '../../src/simulator/server.ts';
import { countingProxy } from './storage-proxy.ts';
import { startScaler, sleep, type RunningScaler, type SimCall } from '../e2e/harness.ts';
import { postOneNodeRequests, summarise } from './measure.ts';
import { askedFor, createCallsOf, memberCreatesOf, setsOf } from '../helpers/creates.ts';

const EACH = 500;
const FREE = 600;
const CONCURRENCY = 16;

export async function run(): Promise<object[]> {
  const azurite = await startAzurite();
  const sim = await startSimulator({ port: 0, stepMs: 100 });
  const proxy = await countingProxy(Number(new URL(sim.url).port), (method, path) => method === 'POST' && path.endsWith('/nodes/create'));
  const basic = `Basic ${Buffer.from(`${sim.username}:${sim.password}`).toString('base64')}`;
  const sim$ = (path: string, init: RequestInit = {}) => fetch(`${sim.url}${path}`, { ...init, headers: { authorization: basic, 'content-type': 'application/json' } });
  const prefix = `two${randomBytes(4).toString('hex')}`;
  const env = {
    STORAGE_PREFIX: prefix,
    SCALE_REQUESTS_QUEUE: `${prefix}-scale`,
    CYCLECLOUD_URL: `http://127.0.0.1:${proxy.port}`,
    CYCLECLOUD_USERNAME: sim.username,
    CYCLECLOUD_PASSWORD: sim.password,
    CYCLECLOUD_CLUSTERS: 'hpc',
    SNAPSHOT_SCHEDULE: '*/2 * * * * *',
    LOG_LEVEL: 'warn',
    // TWO_SETTINGS='CREATE_WINDOW_MS=0,CYCLECLOUD_MAX_CONCURRENT_CREATES=4' loosens batching and the
    // governor, to see the proxy count more than one create in flight.
    ...Object.fromEntries(
      (process.env.TWO_SETTINGS ?? '')
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split('=') as [string, string]),
    ),
  };
  const storageConnectionString = azuriteConnectionString(azurite.ports);
  const hosts: RunningScaler[] = [];
  try {
    const post = (path: string, body: unknown) => sim$(path, { method: 'POST', body: JSON.stringify(body) });
    await post('/__sim/limits', { cluster: 'hpc', maxCount: FREE + 200, maxCoreCount: (FREE + 200) * 120 });
    await post('/__sim/limits', { cluster: 'hpc', nodearray: 'mpi', maxCount: FREE, maxCoreCount: FREE * 120 });
    await post('/__sim/buckets', { cluster: 'hpc', nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', patch: { quotaCoreCount: FREE * 120 } });
    hosts.push(await startScaler({ storageConnectionString, env }), await startScaler({ storageConnectionString, env }));
    type Status = { nodearrays?: Array<{ name: string; buckets: Array<{ machineType: string; availableCount: number }> }> };
    for (const until = Date.now() + 30_000; Date.now() < until; await sleep(200)) {
      const s = (await (await hosts[0]!.api('/clusters/hpc/status')).json()) as Status;
      if (s.nodearrays?.find((n) => n.name === 'mpi')?.buckets.find((x) => x.machineType === 'Standard_HB120rs_v3')?.availableCount === FREE) break;
    }
    proxy.reset();
    const client = { latencies: [] as number[], acceptedAt: new Map<string, number>(), refused: 0 };
    const started = Date.now();
    // Both hosts at once, each with its own clients.
    await Promise.all(
      hosts.map((host, h) =>
        postOneNodeRequests(
          host.api,
          Array.from({ length: EACH }, (_, i) => `two-${h}-${i}`),
          CONCURRENCY,
          client,
        ),
      ),
    );
    const { latencies, acceptedAt, refused } = client;
    const intakeSeconds = (Date.now() - started) / 1000;
    const calls = async () => createCallsOf(((await (await sim$('/__sim/calls')).json()) as { calls: SimCall[] }).calls);
    const askedBy = (cs: Awaited<ReturnType<typeof calls>>) => cs.filter((c) => c.status === 202).reduce((n, c) => n + askedFor(c, 'two-'), 0);
    for (const until = Date.now() + 240_000; Date.now() < until && askedBy(await calls()) < FREE; ) await sleep(500);
    await sleep(5_000);
    const all = await calls();
    const applied = all.filter((c) => c.status === 202);
    const byCc = new Map<string, number>();
    for (const cc of applied.flatMap(memberCreatesOf)) byCc.set(cc, (byCc.get(cc) ?? 0) + 1);
    // A batch that carries requests of both hosts: the instances share batches, not just storage.
    const mixed = applied.filter((c) => new Set(setsOf(c, 'two-').map((s) => String(s.nodeAttributes?.Tags?.['ccscale-request']).split('-')[1])).size > 1).length;
    const state = (await (await sim$('/__sim/state')).json()) as { clusters: { hpc: { nodes: Array<{ Tags?: Record<string, string> }> } } };
    const tagged = state.clusters.hpc.nodes.filter((n) => n.Tags?.['ccscale-request']?.startsWith('two-')).length;
    let lost = 0;
    for (const id of acceptedAt.keys()) if ((await hosts[Number(id.split('-')[1])]!.api(`/scale-requests/${id}`)).status !== 200) lost += 1;
    const asked = askedBy(all);
    const accept = summarise(latencies);
    return [
      {
        bench: 'two_instances_500_requests_each_600_free',
        requests: 2 * EACH,
        accepted: acceptedAt.size,
        refused,
        intake_per_s: Math.round(acceptedAt.size / intakeSeconds),
        accept_p50_ms: accept.median_ms,
        create_calls: all.length,
        create_calls_applied: applied.length,
        creates_in_flight_max: proxy.mostInFlight(),
        goal_creates_in_flight_max: 1,
        batches_with_both_instances: mixed,
        nodes_free: FREE,
        nodes_asked: asked,
        over_ask: Math.max(0, asked - FREE),
        duplicates: [...byCc.values()].filter((n) => n > 1).length,
        orphans: Math.max(0, tagged - asked),
        lost,
      },
    ];
  } finally {
    for (const h of hosts) await h.stop();
    await proxy.close();
    await sim.close();
    await azurite.stop();
  }
}
