import { tenantsOf } from '../../src/platform/tenants.ts';
import { pricesOf } from '../../src/platform/prices.ts';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RequestRecord, RequestState, ScaleRequest } from '../../src/ledger/schemas.ts';
import { painter, useColour } from '../../src/cli/render.ts';
import { generateRequestId } from '../../src/cli/main.ts';
import { fakeDeps, recordFor, scaleBody, type FakeWorld } from '../http/fakes.ts';
import { startFakeApi, TEST_KEY, type FakeApi } from './api-server.ts';

const BIN = resolve(import.meta.dirname, '../../bin/ccscale.mjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/ccscale.mjs …` as a child process (asynchronously: the fake API lives in this process). */
function runCli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

/** Like {@link runCli} with `input` on stdin. */
function runCliWithStdin(args: string[], input: string): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += String(c)));
    child.stderr.on('data', (c) => (stderr += String(c)));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** A record of `requested` nodes with `ready` of them Ready and the rest Acquiring. */
function progressRecord(state: RequestState, requested: number, ready: number, reason: string | null = null): RequestRecord {
  const base = recordFor({ kind: 'scale', requestId: 'job-7', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: requested }] }, Date.parse('2026-11-28T01:00:00Z'));
  const created = state === 'queued' ? 0 : requested;
  return {
    ...base,
    state,
    reason,
    demands: [{ ...base.demands[0]!, created, ready, machineType: 'Standard_HC44rs', placementGroupId: 'pg-7', reason }],
    operations: state === 'queued' ? [] : [{ operationId: 'op-1', cycleCloudRequestId: 'job-7-g0', state: FINAL(state) ? 'done' : 'pending' }],
    nodes: Array.from({ length: created }, (_, i) => ({
      name: `ondemand-${i + 1}`,
      id: `n${i}`,
      status: i < ready ? 'Ready' : state === 'failed' ? 'Failed' : 'Acquiring',
      demand: 0,
    })),
  };
}
const FINAL = (s: RequestState) => ['fulfilled', 'failed', 'rejected', 'partially_fulfilled'].includes(s);

/** Each GET of the record returns the next step; the last one repeats. */
function scripted(world: FakeWorld, steps: RequestRecord[]): (id: string) => Promise<RequestRecord | null> {
  let i = 0;
  return async (id) => {
    if (id !== 'job-7') return world.records.get(id)?.record ?? null;
    return steps[Math.min(i++, steps.length - 1)]!;
  };
}

let api: FakeApi | undefined;
let dir: string;
const auth = () => ['--url', api!.url, '--key', TEST_KEY];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ccscale-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function serve(over: Parameters<typeof fakeDeps>[0] = {}, setup?: (world: FakeWorld) => void): Promise<FakeWorld> {
  const { deps, world } = fakeDeps(over);
  setup?.(world);
  api = await startFakeApi(deps);
  return world;
}

describe('ccscale watch', () => {
  it('prints progress and exits 0 when the request is fulfilled', async () => {
    // Prepare
    const { deps, world } = fakeDeps();
    deps.ledger.getRecord = scripted(world, [
      progressRecord('queued', 4, 0),
      progressRecord('submitted', 4, 0),
      progressRecord('submitted', 4, 2),
      progressRecord('fulfilled', 4, 4),
    ]);
    api = await startFakeApi(deps);
    // Act
    const run = await runCli(['watch', 'job-7', '--interval', '20', ...auth()]);
    // Assess
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toEqual([
      'job-7 queued  ready 0/4  nodes: no nodes yet',
      'job-7 submitted  ready 0/4  nodes: Acquiring 4',
      'job-7 submitted  ready 2/4  nodes: Acquiring 2, Ready 2',
      'job-7 fulfilled  ready 4/4  nodes: Ready 4',
      'job-7 ended fulfilled: 4/4 nodes ready',
    ]);
    // Not a TTY: no colour codes, no progress-bar control sequences.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the ANSI colour codes this matches, on purpose
    expect(run.stdout).not.toMatch(/\u001b\[/);
  });

  it('exits 1 and says why when the request fails', async () => {
    const { deps, world } = fakeDeps();
    deps.ledger.getRecord = scripted(world, [progressRecord('submitted', 4, 1), progressRecord('failed', 4, 0, 'Standard_HC44rs has no capacity in westeurope')]);
    api = await startFakeApi(deps);
    const run = await runCli(['watch', 'job-7', '--interval', '20', ...auth()]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('job-7 ended failed: 0/4 nodes ready (Standard_HC44rs has no capacity in westeurope)');
  });

  it('prints only the final record with --json', async () => {
    const { deps, world } = fakeDeps();
    deps.ledger.getRecord = scripted(world, [progressRecord('submitted', 2, 0), progressRecord('partially_fulfilled', 2, 1, 'one node failed')]);
    api = await startFakeApi(deps);
    const run = await runCli(['watch', 'job-7', '--interval', '20', '--json', ...auth()]);
    expect(run.code).toBe(1);
    const record = JSON.parse(run.stdout) as RequestRecord;
    expect(record).toMatchObject({ requestId: 'job-7', state: 'partially_fulfilled' });
  });

  it('stops after --timeout with exit 1', async () => {
    const { deps, world } = fakeDeps();
    deps.ledger.getRecord = scripted(world, [progressRecord('submitted', 2, 0)]);
    api = await startFakeApi(deps);
    const run = await runCli(['watch', 'job-7', '--interval', '200', '--timeout', '1', ...auth()]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('job-7 still submitted after 1 s; stopped watching');
  });
});

describe('ccscale status', () => {
  it('prints a readable table of the record', async () => {
    const { deps, world } = fakeDeps();
    deps.ledger.getRecord = scripted(world, [progressRecord('submitted', 4, 2)]);
    api = await startFakeApi(deps);
    const run = await runCli(['status', 'job-7', ...auth()]);
    expect(run.code).toBe(0);
    for (const text of ['request', 'job-7', 'submitted', 'demand', 'requested', 'Standard_HC44rs', 'pg-7', 'op-1', 'job-7-g0', 'nodes: Acquiring 2, Ready 2']) {
      expect(run.stdout).toContain(text);
    }
    expect(run.stdout).toMatch(/┌|\+-/); // a drawn table, not a JSON dump
  });

  it("prints the record's cost with a price table, and --json keeps the API's cost", async () => {
    const { deps, world } = fakeDeps({ prices: () => pricesOf({ currency: 'USD', prices: { '*': { Standard_HC44rs: { regular: 3.6 } } } }) });
    const base = progressRecord('fulfilled', 2, 2);
    const startedAt = new Date(world.nowMs - 1800_000).toISOString();
    const record: RequestRecord = {
      ...base,
      nodes: [
        { ...base.nodes[0]!, machineType: 'Standard_HC44rs', region: 'westeurope', startedAt },
        { ...base.nodes[1]!, machineType: 'Standard_Unknown', region: 'westeurope', startedAt, endedAt: new Date(world.nowMs - 900_000).toISOString() },
      ],
    };
    world.records.set('job-8', { record, hash: 'h' });
    api = await startFakeApi(deps);
    const run = await runCli(['status', 'job-8', ...auth()]);
    expect(run.code).toBe(0);
    // Half an hour of a 3.60/h node, and a quarter hour of one the table cannot price
    expect(run.stdout).toContain(`cost: 1.8000 USD for 0.75 node-hours, as of ${new Date(world.nowMs).toISOString()}`);
    expect(run.stdout).toContain('no price for westeurope/Standard_Unknown: their node-hours are not in the amount');
    // --json prints the API's record: §5 exactly, and the cost only with --cost
    expect((JSON.parse((await runCli(['status', 'job-8', '--json', ...auth()])).stdout) as RequestRecord).cost).toBeUndefined();
    const json = JSON.parse((await runCli(['status', 'job-8', '--json', '--cost', ...auth()])).stdout) as RequestRecord;
    expect(json.cost).toEqual({ currency: 'USD', amount: 1.8, nodeSeconds: 2700, asOf: new Date(world.nowMs).toISOString(), unpriced: ['westeurope/Standard_Unknown'] });
    // No price table: no cost line
    await api.close();
    await serve({}, (w) => w.records.set('job-8', { record, hash: 'h' }));
    expect((await runCli(['status', 'job-8', ...auth()])).stdout).not.toContain('cost:');
  });

  it('--json prints the record as JSON', async () => {
    await serve({}, (world) => world.records.set('job-9', { record: progressRecord('fulfilled', 1, 1), hash: 'h' }));
    const run = await runCli(['status', 'job-9', '--json', ...auth()]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ state: 'fulfilled' });
  });

  it('says what is not found (404, exit 3)', async () => {
    await serve();
    const run = await runCli(['status', 'nope', ...auth()]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('not found: no request with requestId "nope"');
  });

  it('explains a refused key (401, exit 3) without printing the key', async () => {
    await serve();
    const run = await runCli(['status', 'job-7', '--url', api!.url, '--key', 'wrong-key-0000']);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('the function key was refused: pass --key or set SCALER_KEY');
    expect(run.stderr + run.stdout).not.toContain('wrong-key-0000');
  });

  it('takes the key from SCALER_KEY and the URL from SCALER_URL', async () => {
    await serve({}, (world) => world.records.set('job-9', { record: progressRecord('queued', 1, 0), hash: 'h' }));
    const run = await runCli(['status', 'job-9', '--json'], { SCALER_KEY: TEST_KEY, SCALER_URL: api!.url });
    expect(run.code).toBe(0);
    expect(api!.calls.at(-1)).toMatchObject({ path: '/api/scale-requests/job-9', keyed: true });
  });

  it('reports an unreachable API (exit 3) as JSON with --json', async () => {
    const run = await runCli(['status', 'x', '--json', '--url', 'http://127.0.0.1:9', '--key', 'k']);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stderr)).toMatchObject({ error: { code: 'CLI_NETWORK' } });
  });
});

describe('ccscale submit', () => {
  it('submits one demand from flags with a generated requestId', async () => {
    const world = await serve();
    const run = await runCli([
      'submit',
      '--cluster',
      'hpc',
      '--nodearray',
      'ondemand',
      '--count',
      '4',
      '-m',
      'Standard_HC44rs',
      '-m',
      'Standard_F32s_v2',
      '--colocated',
      '--json',
      ...auth(),
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const accepted = JSON.parse(run.stdout) as { requestId: string; state: string; statusUrl: string };
    expect(accepted.requestId).toMatch(/^cli-\d{8}T\d{6}-[0-9a-f]{6}$/);
    expect(accepted.statusUrl).toBe(`${api!.url}/api/scale-requests/${accepted.requestId}`);
    expect(world.submitted).toEqual([
      {
        kind: 'scale',
        requestId: accepted.requestId,
        cluster: 'hpc',
        demands: [{ nodearray: 'ondemand', count: 4, machineTypes: ['Standard_HC44rs', 'Standard_F32s_v2'], colocated: true }],
      },
    ]);
  });

  it('submits a demand by resources: ccscale submit --min-vcpus 44 --count 4 --colocated', async () => {
    const world = await serve();
    const run = await runCli(['submit', '--cluster', 'hpc', '--min-vcpus', '44', '--count', '4', '--colocated', '--json', ...auth()]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(world.submitted[0]).toMatchObject({ demands: [{ count: 4, minVcpus: 44, colocated: true }] });
    expect((world.submitted[0] as ScaleRequest).demands[0]).not.toHaveProperty('nodearray');
    const all = await runCli([
      'submit',
      '--cluster',
      'hpc',
      '--count',
      '2',
      '--nodearrays',
      'mpi, ondemand',
      '--min-memory-gb',
      '64.5',
      '--min-gpus',
      '0',
      '--infiniband',
      '--all-or-nothing',
      '--pick',
      'smallest',
      '--json',
      ...auth(),
    ]);
    expect(all.code).toBe(0);
    expect((world.submitted[1] as ScaleRequest).demands).toEqual([
      { count: 2, nodearrays: ['mpi', 'ondemand'], minMemoryGB: 64.5, minGpus: 0, infiniband: true, allOrNothing: true, pick: 'smallest' },
    ]);
  });

  it('submits a JSON file and follows it with --watch', async () => {
    const { deps, world } = fakeDeps();
    deps.ledger.getRecord = scripted(world, [progressRecord('submitted', 4, 3), progressRecord('fulfilled', 4, 4)]);
    api = await startFakeApi(deps);
    const file = join(dir, 'request.json');
    await writeFile(file, JSON.stringify(scaleBody({ requestId: 'job-7' })));
    const run = await runCli(['submit', '--file', file, '--watch', '--interval', '20', ...auth()]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('accepted job-7 (queued)');
    expect(run.stdout).toContain('job-7 ended fulfilled: 4/4 nodes ready');
    expect(world.submitted[0]).toMatchObject({ requestId: 'job-7', demands: [{ count: 4 }, { count: 2 }] });
  });

  it('reads the request from stdin with --file -', async () => {
    const world = await serve();
    const run = await runCliWithStdin(['submit', '--file', '-', '--json', ...auth()], JSON.stringify(scaleBody({ requestId: 'from-stdin' })));
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ requestId: 'from-stdin', state: 'queued' });
    expect(world.submitted[0]).toMatchObject({ requestId: 'from-stdin' });
  });

  it('refuses bad flags locally with exit 2 naming the field', async () => {
    const world = await serve();
    const missing = await runCli(['submit', '--cluster', 'hpc', ...auth()]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('submit needs --file <request.json>, or --cluster, --count and a selector (--nodearray, --nodearrays, --machine-type, --min-vcpus');
    const noSelector = await runCli(['submit', '--cluster', 'hpc', '--count', '2', '--colocated', ...auth()]);
    expect(noSelector.code).toBe(2);
    expect(noSelector.stderr).toContain('demands.0: needs at least one selector');
    const badMin = await runCli(['submit', '--cluster', 'hpc', '--count', '2', '--min-vcpus', 'lots', ...auth()]);
    expect(badMin.code).toBe(2);
    expect(badMin.stderr).toContain('--min-vcpus must be a whole number');
    const badPick = await runCli(['submit', '--cluster', 'hpc', '--count', '2', '--min-vcpus', '4', '--pick', 'cheapest', ...auth()]);
    expect(badPick.code).toBe(2);
    const badId = await runCli(['submit', '--cluster', 'hpc', '--nodearray', 'x', '--count', '1', '--request-id', 'a b', ...auth()]);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('requestId: may contain only letters');
    const badCount = await runCli(['submit', '--cluster', 'hpc', '--nodearray', 'x', '--count', 'many', ...auth()]);
    expect(badCount.code).toBe(2);
    expect(world.submitted).toHaveLength(0);
  });

  it('names a conflict (409, exit 3)', async () => {
    await serve();
    const args = ['submit', '--cluster', 'hpc', '--nodearray', 'ondemand', '--request-id', 'dup-1', ...auth()];
    expect((await runCli([...args, '--count', '1'])).code).toBe(0);
    const again = await runCli([...args, '--count', '2']);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain('conflict: requestId "dup-1" already exists with a different body');
  });
});

describe('ccscale terminate', () => {
  it("sends a terminate request and shows the API's 400 naming the field", async () => {
    const world = await serve();
    const ok = await runCli(['terminate', '--cluster', 'hpc', '--name', 'ondemand-3', '--name', 'ondemand-4', '--request-id', 'drain-1', '--json', ...auth()]);
    expect(ok.code).toBe(0);
    expect(world.submitted).toEqual([{ kind: 'terminate', requestId: 'drain-1', cluster: 'hpc', names: ['ondemand-3', 'ondemand-4'] }]);
    // A scale body in a terminate file passes the shared schema locally; the API's route refuses it.
    const file = join(dir, 'scale-as-terminate.json');
    await writeFile(file, JSON.stringify({ ...scaleBody(), kind: 'scale' }));
    const refused = await runCli(['terminate', '--file', file, ...auth()]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('the scaler refused the request as invalid:\n  kind: must be "terminate"');
  });
});

describe('ccscale renew, release and submit --lease', () => {
  it('submits a lease, renews it, is told when renew is refused, and releases', async () => {
    // Prepare: the API's renew and release over one stored lease
    const T = Date.parse('2026-12-07T12:00:00Z');
    const renewed: (number | undefined)[] = [];
    let releasedAt: string | null = null;
    const world = await serve({
      renew: async (id, seconds) => {
        renewed.push(seconds);
        if (releasedAt) return { ok: false, status: 409, message: `request "${id}" was released at ${releasedAt} (released); its lease cannot be renewed` };
        const record = { ...recordFor(scaleBody({ requestId: id }) as ScaleRequest, T), lease: { seconds: seconds ?? 60, expiresAt: '2026-12-07T12:05:00.000Z' } };
        return { ok: true, entry: { record } as never };
      },
      release: async (id) => {
        releasedAt ??= '2026-12-07T12:01:00.000Z';
        return { ok: true, entry: { record: { ...recordFor(scaleBody({ requestId: id }) as ScaleRequest, T), released: { at: releasedAt, reason: 'released' } } } as never };
      },
    });

    // Act
    const submit = await runCli([
      'submit',
      '--cluster',
      'hpc',
      '--nodearray',
      'ondemand',
      '--count',
      '1',
      '--lease',
      '300',
      '--max-lifetime',
      '3600',
      '--capacity',
      'spot-first',
      '--request-id',
      'l-1',
      '--json',
      ...auth(),
    ]);
    const renew = await runCli(['renew', 'l-1', '--seconds', '600', ...auth()]);
    const release = await runCli(['release', 'l-1', '--json', ...auth()]);
    const late = await runCli(['renew', 'l-1', ...auth()]);
    const badCapacity = await runCli(['submit', '--cluster', 'hpc', '--nodearray', 'ondemand', '--count', '1', '--capacity', 'cheap', ...auth()]);

    // Assess
    expect(submit.code).toBe(0);
    expect(world.submitted[0]).toMatchObject({ requestId: 'l-1', lease: { seconds: 300 }, maxLifetimeSeconds: 3600, demands: [{ capacity: 'spot-first' }] });
    expect(renew.code).toBe(0);
    expect(renew.stdout).toBe('l-1: lease 600 s, expires 2026-12-07T12:05:00.000Z\n');
    expect(release.code).toBe(0);
    expect(JSON.parse(release.stdout)).toMatchObject({ requestId: 'l-1', released: { at: '2026-12-07T12:01:00.000Z', reason: 'released' } });
    expect(late.code).toBe(3);
    expect(late.stderr).toContain('conflict: request "l-1" was released at 2026-12-07T12:01:00.000Z');
    expect(renewed).toEqual([600, undefined]);
    expect(badCapacity.code).toBe(2);
  });
});

describe('ccscale plan, clusters, health', () => {
  it('explains a plan as tables and as JSON', async () => {
    await serve();
    const args = ['plan', '--cluster', 'hpc', '--nodearray', 'mpi', '--count', '6', '--colocated', ...auth()];
    const human = await runCli(args);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('nothing would be created now');
    expect(human.stdout).toContain('rejected');
    expect(human.stdout).toMatch(/maxPlacementGroupSize/i);
    const json = await runCli([...args, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ cluster: 'hpc', demands: [{ status: 'rejected', code: 'PLAN_EXCEEDS_PLACEMENT_GROUP' }] });
    const byResources = await runCli(['plan', '--cluster', 'hpc', '--min-vcpus', '100', '--count', '2', '--colocated', ...auth()]);
    expect(byResources.code).toBe(0);
    expect(byResources.stdout).toContain('mpi/Standard_HB120rs_v3 (bucket e0a1)');
    // (the table wraps the long explanation to the terminal's width)
    expect(byResources.stdout.replace(/[│\s]+/g, ' ')).toContain('did not meet the selectors');
  });

  it("says when the plan's cluster has no snapshot (404)", async () => {
    await serve();
    const run = await runCli(['plan', '--cluster', 'other', '--nodearray', 'x', '--count', '1', ...auth()]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('not found: cluster "other" has no snapshot yet');
  });

  it('shows buckets with available/active/max and placement groups', async () => {
    await serve();
    const run = await runCli(['clusters', ...auth()]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('available/active/max');
    expect(run.stdout).toContain('60/4/64');
    expect(run.stdout).toContain('pg-a:4');
    const json = await runCli(['clusters', 'hpc', '--json', ...auth()]);
    expect(JSON.parse(json.stdout)).toEqual([expect.objectContaining({ cluster: 'hpc', stale: false })]);
  });

  it('health exits 0 when ok and 1 when degraded', async () => {
    const world = await serve();
    const ok = await runCli(['health', '--url', api!.url]); // anonymous: no key needed
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('status: ok');
    world.healths.set('hpc', { takenAt: '2026-11-28T01:00:00.000Z', ageSeconds: 900, consecutiveFailures: 5, stale: true });
    const degraded = await runCli(['health', '--json', '--url', api!.url]);
    expect(degraded.code).toBe(1);
    expect(JSON.parse(degraded.stdout)).toMatchObject({ status: 'degraded' });
  });

  it('lists tenants with caps, usage, share, cost and budget, and submits with --tenant', async () => {
    const world = await serve({
      tenants: tenantsOf({
        tenants: { cfd: { weight: 2, maxCores: { hpc: 512 }, budget: { monthly: 15 } }, ml: { weight: 1, budget: { monthly: 1000 } }, default: { weight: 1 } },
      }),
      configuredClusters: () => ['hpc'],
      tenantUsage: async () => ({ holdings: new Map([['cfd', { nodes: 3, cores: 132 }]]), size: { nodes: 100, cores: 1000 } }),
      prices: () => pricesOf({ currency: 'USD', prices: { '*': { Standard_HC44rs: { regular: 3.168 } } } }),
      tenantCosts: async () =>
        new Map([
          ['cfd', { today: 1.2345, month: 15.8391 }],
          ['ml', { today: 0, month: 12.5 }],
        ]),
    });
    const human = await runCli(['tenants', ...auth()]);
    expect(human.code).toBe(0);
    const lines = human.stdout.split('\n');
    // Per tenant: cost today and this month (2 decimals, the table's currency) and its budget, marked once spent
    expect(lines).toContain('  cfd  weight 2  caps: 512 cores on hpc  cost today 1.23 USD  this month 15.84 USD  budget 15 USD (past)');
    expect(lines).toContain('  ml  weight 1  cost today 0.00 USD  this month 12.50 USD  budget 1000 USD');
    expect(lines).toContain('  default  weight 1  cost today 0.00 USD  this month 0.00 USD  budget -');
    expect(human.stdout).toContain('hpc: 3 nodes, 132 of 512 cores, share 13.2 %');
    const json = JSON.parse((await runCli(['tenants', '--json', ...auth()])).stdout);
    // --json is the API's answer as it is
    expect(json).toMatchObject({
      declared: true,
      currency: 'USD',
      tenants: [
        {
          name: 'cfd',
          usage: { hpc: { nodes: 3, cores: 132 } },
          share: { hpc: 0.132 },
          costToday: 1.2345,
          costMonth: 15.8391,
          budget: { monthly: 15, spent: 15.8391, past: true },
        },
        { name: 'default', costToday: 0, costMonth: 0, budget: null },
        { name: 'ml', costMonth: 12.5, budget: { monthly: 1000, spent: 12.5, past: false } },
      ],
    });
    const submit = await runCli(['submit', '--cluster', 'hpc', '--nodearray', 'ondemand', '--count', '1', '--tenant', 'cfd', '--request-id', 'tn-1', ...auth()]);
    expect(submit.code).toBe(0);
    expect(world.submitted.at(-1)).toMatchObject({ requestId: 'tn-1', tenant: 'cfd' });
    const bad = await runCli(['submit', '--cluster', 'hpc', '--nodearray', 'ondemand', '--count', '1', '--tenant', 'Bad Name', ...auth()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('tenant');
    // Without a price table: no cost figures, a declared budget still shown
    await api!.close();
    await serve({ tenants: tenantsOf({ tenants: { cfd: { weight: 1, budget: { monthly: 15 } }, default: { weight: 1 } } }), configuredClusters: () => ['hpc'] });
    const unpriced = (await runCli(['tenants', ...auth()])).stdout.split('\n');
    expect(unpriced).toContain('  cfd  weight 1  budget 15');
    expect(unpriced).toContain('  default  weight 1');
  });

  it('pauses and resumes scale-out', async () => {
    const world = await serve();
    expect((await runCli(['pause', ...auth()])).stdout).toContain('scale-out is paused');
    expect(world.paused).toBe(true);
    expect((await runCli(['resume', '--json', ...auth()])).stdout.trim()).toBe('{"paused":false}');
  });
});

describe('the ccscale binary', () => {
  it('runs through npx from the repository', async () => {
    // npx from PATH, with this Node first so the bin's `#!/usr/bin/env node` finds Node 22.
    const npx = 'npx';
    const run = await new Promise<Run>((done) => {
      execFile(
        npx,
        ['--no-install', 'ccscale', '--help'],
        { cwd: resolve(import.meta.dirname, '../..'), env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` }, timeout: 30_000 },
        (error, stdout, stderr) => done({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
      );
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: ccscale');
  });

  const oldNode = '/usr/bin/node';
  it.skipIf(!existsSync(oldNode) || process.execPath === oldNode)('says which Node it needs on an older Node', async () => {
    const run = await new Promise<Run>((done) => {
      execFile(oldNode, [BIN, '--help'], { timeout: 20_000 }, (error, stdout, stderr) => done({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }));
    });
    const version = await new Promise<string>((done) => execFile(oldNode, ['-v'], (_e, out) => done(out.trim())));
    if (Number(version.slice(1).split('.')[0]) >= 23) return; // a newer system Node runs it fine: nothing to check
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('ccscale needs Node.js 22.19 or newer');
  });
});

describe('colours and ids', () => {
  it('colours only on a TTY and never with NO_COLOR', () => {
    expect(useColour(true, {})).toBe(true);
    expect(useColour(true, { NO_COLOR: '1' })).toBe(false);
    expect(useColour(false, {})).toBe(false);
    expect(useColour(undefined, {})).toBe(false);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the ANSI colour codes this matches, on purpose
    expect(painter(true)('red', 'x')).toMatch(/\u001b\[31mx/);
    expect(painter(false)('red', 'x')).toBe('x');
  });

  it('generates readable, distinct request ids that pass the schema', () => {
    const a = generateRequestId(Date.parse('2026-11-28T01:35:00Z'));
    expect(a).toMatch(/^cli-20261128T013500-[0-9a-f]{6}$/);
    expect(generateRequestId()).not.toBe(generateRequestId());
  });
});
