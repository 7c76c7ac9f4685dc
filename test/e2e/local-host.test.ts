/**
 * End to end through `npm start` (src/local/main.ts) as a user runs it: the real local host, the
 * real function registrations, azurite and the embedded simulator over HTTP. Requests go in over
 * HTTP and straight onto the queue, and come out `fulfilled` with every node Ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { QueueServiceClient } from '@azure/storage-queue';
import { encodeQueueMessage } from '../../src/platform/storage.ts';
import type { RequestRecord } from '../../src/requests/schemas.ts';
import { freePort } from '../helpers/net.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Running {
  child: ChildProcess;
  base: string;
  key: string;
  sim: { url: string; username: string; password: string };
  output: () => string;
}

const prefix = `e2e${randomBytes(4).toString('hex')}`;
const scaleQueue = `${prefix}-scale`;
let host: Running;

async function startHost(): Promise<Running> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    // The test run's azurite, with names of our own: no clash with other test files.
    AzureWebJobsStorage: inject('storageConnectionString'),
    STORAGE_PREFIX: prefix,
    SCALE_REQUESTS_QUEUE: scaleQueue,
    SIMULATOR_STEP_MS: '150',
    TRACKER_POLL_MIN_SECONDS: '0.5',
    TRACKER_POLL_MAX_SECONDS: '1',
    SNAPSHOT_SCHEDULE: '*/5 * * * * *',
  };
  for (const k of ['CYCLECLOUD_URL', 'CYCLECLOUD_USERNAME', 'CYCLECLOUD_PASSWORD', 'CYCLECLOUD_CLUSTERS', 'FUNCTION_KEY', 'KEY_VAULT_URL']) delete env[k];
  const child = spawn(process.execPath, ['src/local/main.ts'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 45_000;
  while (!/HTTP base URL:\s+(\S+)/.test(out)) {
    if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}\n${out}`);
    if (Date.now() > deadline) throw new Error(`npm start printed no URL\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const base = /HTTP base URL:\s+(\S+)/.exec(out)![1]!;
  const key = /Function key:\s+(\S+)/.exec(out)![1]!;
  const credentialsFile = /password in (\S+)\)/.exec(out)![1]!;
  const sim = JSON.parse(readFileSync(credentialsFile, 'utf8')) as Running['sim'];
  return { child, base, key, sim, output: () => out };
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${host.base}${path}`, { ...init, headers: { 'x-functions-key': host.key, 'content-type': 'application/json', ...init.headers } });
}

async function simCalls(): Promise<{ method: string; path: string; status: number }[]> {
  const auth = Buffer.from(`${host.sim.username}:${host.sim.password}`).toString('base64');
  const res = await fetch(`${host.sim.url}/__sim/calls`, { headers: { authorization: `Basic ${auth}` } });
  return ((await res.json()) as { calls: { method: string; path: string; status: number }[] }).calls;
}

async function waitFinal(requestId: string, timeoutMs = 45_000): Promise<RequestRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api(`/scale-requests/${requestId}`);
    if (res.status === 200) {
      const record = (await res.json()) as RequestRecord;
      if (['fulfilled', 'partially_fulfilled', 'failed', 'rejected'].includes(record.state)) return record;
      if (Date.now() > deadline) throw new Error(`request ${requestId} still ${record.state}: ${JSON.stringify(record)}`);
    } else if (Date.now() > deadline) {
      throw new Error(`request ${requestId}: HTTP ${res.status}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  host = await startHost();
}, 60_000);

afterAll(async () => {
  if (!host || host.child.exitCode !== null) return;
  const exited = new Promise((r) => host.child.once('exit', r));
  process.kill(-host.child.pid!, 'SIGINT');
  await exited;
}, 30_000);

describe('npm start, end to end', () => {
  it('turns an HTTP scale request into ONE create, grouped by placement group, followed to fulfilled', async () => {
    // Prepare: a gang of 4 InfiniBand nodes and 2 loose nodes, in one request
    const body = {
      requestId: 'e2e-http-1',
      cluster: 'hpc',
      demands: [
        { nodearray: 'mpi', count: 4, colocated: true, jobId: '4711' },
        { nodearray: 'ondemand', count: 2, machineTypes: ['Standard_HC44rs'] },
      ],
    };
    const createsBefore = (await simCalls()).filter((c) => c.path.endsWith('/nodes/create')).length;

    // Act
    const accepted = await api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    const again = await api('/scale-requests', { method: 'POST', body: JSON.stringify(body) });
    const record = await waitFinal('e2e-http-1');

    // Assess
    expect(accepted.status).toBe(202);
    const a = (await accepted.json()) as { requestId: string; statusUrl: string };
    expect(a.statusUrl).toBe(`${host.base}/scale-requests/e2e-http-1`);
    expect(again.status).toBe(202);
    expect(record.state).toBe('fulfilled');
    expect(record.demands.map((d) => [d.requested, d.created, d.ready])).toEqual([[4, 4, 4], [2, 2, 2]]);
    expect(record.nodes).toHaveLength(6);
    expect(record.nodes.every((n) => n.status === 'Ready')).toBe(true);
    expect(record.demands[0]!.placementGroupId).toBeTruthy();
    expect(record.demands[1]!.machineType).toBe('Standard_HC44rs');
    const creates = (await simCalls()).filter((c) => c.path.endsWith('/nodes/create')).length - createsBefore;
    expect(creates).toBe(1);
  }, 60_000);

  it('creates nodes from a base64 message put straight on the queue, and counts a broken one', async () => {
    // Prepare
    const viaConnection = QueueServiceClient.fromConnectionString(inject('storageConnectionString')).getQueueClient(scaleQueue);
    const message = { requestId: 'e2e-queue-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_F32s_v2'] }] };

    // Act
    await viaConnection.sendMessage(encodeQueueMessage(message));
    await viaConnection.sendMessage(encodeQueueMessage('this is not json'));
    const record = await waitFinal('e2e-queue-1');
    const healthDeadline = Date.now() + 15_000;
    let health: { rejectedMessages?: number } = {};
    while (Date.now() < healthDeadline) {
      health = (await (await api('/health')).json()) as typeof health;
      if ((health.rejectedMessages ?? 0) >= 1) break;
      await new Promise((r) => setTimeout(r, 250));
    }

    // Assess
    expect(record.state).toBe('fulfilled');
    expect(record.nodes.map((n) => n.status)).toEqual(['Ready']);
    expect(health.rejectedMessages).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('lets `ccscale watch` follow a request to fulfilled and exit 0', async () => {
    // Prepare
    const submitted = await api('/scale-requests', {
      method: 'POST',
      body: JSON.stringify({ requestId: 'e2e-watch-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] }] }),
    });
    expect(submitted.status).toBe(202);

    // Act: the CLI as a user runs it, against the running host
    const cli = spawn(process.execPath, ['bin/ccscale.mjs', 'watch', 'e2e-watch-1', '--url', host.base, '--interval', '300'], {
      cwd: root,
      env: { ...process.env, SCALER_KEY: host.key, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    cli.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    cli.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((r) => cli.once('exit', r));

    // Assess
    expect(code, out).toBe(0);
    expect(out).toMatch(/fulfilled/);
  }, 60_000);

  it('refuses a caller without the function key and keeps secrets out of its output', async () => {
    const res = await fetch(`${host.base}/scale-requests/e2e-http-1`);
    expect(res.status).toBe(401);
    const text = await res.text();
    expect(text).not.toContain(host.key);
    expect(host.output()).not.toContain(host.sim.password);
  });
});
