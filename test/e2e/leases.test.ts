/**
 * Leases as a caller without a scheduler meets them, through `npm start`: a 60 s lease left alone is
 * released and its nodes shut down within 90 s of expiry; one renewed every 30 s for 3 minutes is kept; a release
 * shuts the nodes down at once and answers the same when repeated; a renew after expiry is a 409.
 * And kill -9 of the host shortly before a lease expires, storage and CycleCloud kept: the next host
 * shuts the expired request's nodes down once and keeps the renewed one's.
 */
import { randomBytes } from 'node:crypto';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { RequestRecord } from '../../src/ledger/schemas.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { sleep, startScaler, type RunningScaler, type SimCall } from './harness.ts';

const hosts: RunningScaler[] = [];
const sims: SimulatorHandle[] = [];
afterAll(async () => {
  for (const h of hosts) await h.stop().catch(() => undefined);
  for (const s of sims) await s.close();
}, 30_000);

const oneNode = (requestId: string, lease?: number) => ({
  requestId,
  cluster: 'hpc',
  demands: [{ nodearray: 'ondemand', count: 1, machineTypes: ['Standard_F32s_v2'] }],
  ...(lease ? { lease: { seconds: lease } } : {}),
});

async function post(host: RunningScaler, path: string, body: unknown): Promise<Response> {
  return host.api(path, { method: 'POST', body: JSON.stringify(body) });
}

async function recordOf(host: RunningScaler, id: string): Promise<RequestRecord> {
  return (await (await host.api(`/scale-requests/${id}`)).json()) as RequestRecord;
}

/** Shutdowns CycleCloud applied (202) naming any of `ids`. */
function appliedShutdowns(calls: SimCall[], ids: string[]): SimCall[] {
  return calls.filter((c) => c.method === 'POST' && c.path.endsWith('/nodes/shutdown') && c.status === 202 && ids.some((id) => JSON.stringify(c.body ?? '').includes(id)));
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

describe('leases through npm start', () => {
  it.concurrent('expiry, renew every 30 s for 3 minutes, release and a renew after expiry', async () => {
    // Prepare: three one-node requests, two of them leased for 60 s
    const host = await startScaler({ storageConnectionString: inject('storageConnectionString') });
    hosts.push(host);
    const [left, renewed, released] = ['left', 'renewed', 'released'].map((n) => `lease-${n}-${randomBytes(3).toString('hex')}`) as [string, string, string];
    for (const [id, lease] of [
      [left, 60],
      [renewed, 60],
      [released, undefined],
    ] as const)
      expect((await post(host, '/scale-requests', oneNode(id, lease))).status).toBe(202);
    const ready = await Promise.all([left, renewed, released].map((id) => host.waitFinal(id, 60_000)));
    expect(ready.map((r) => r.state)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const expiresAt = Date.parse(ready[0]!.lease!.expiresAt);

    // Act 1: release one now, twice
    const r1 = await post(host, `/scale-requests/${released}/release`, {});
    const r2 = await post(host, `/scale-requests/${released}/release`, {});
    // Act 2: renew one every 30 s for 3 minutes (its 60 s lease would have passed three times over)
    const renewals: number[] = [];
    for (const until = Date.now() + 180_000; Date.now() < until; await sleep(30_000)) {
      renewals.push((await post(host, `/scale-requests/${renewed}/renew`, {})).status);
    }

    // Assess: released at once, the same answer twice
    expect([r1.status, r2.status]).toEqual([202, 202]);
    const [b1, b2] = [(await r1.json()) as { released: unknown }, (await r2.json()) as { released: unknown }];
    expect(b1.released).toEqual(b2.released);
    const calls = await host.simCalls();
    const releaseShutdowns = appliedShutdowns(calls, [ready[2]!.nodes[0]!.id!]);
    expect(releaseShutdowns).toHaveLength(1);
    // The expired one: released, its node shut down within 90 s of expiry, once
    const expired = await waitFor('the expired lease released', 30_000, async () => {
      const r = await recordOf(host, left);
      return r.released ? r : undefined;
    });
    expect(expired.released?.reason).toBe('lease expired');
    const leftShutdowns = appliedShutdowns(await host.simCalls(), [ready[0]!.nodes[0]!.id!]);
    expect(leftShutdowns).toHaveLength(1);
    expect(leftShutdowns[0]!.atMs - expiresAt).toBeLessThanOrEqual(90_000);
    expect(leftShutdowns[0]!.atMs).toBeGreaterThanOrEqual(expiresAt);
    // Renewed: every renew answered 200, the node still Ready, no shutdown
    expect(renewals).toEqual([200, 200, 200, 200, 200, 200]);
    const kept = await recordOf(host, renewed);
    expect(kept.released).toBeUndefined();
    expect(kept.nodes.map((n) => n.status)).toEqual(['Ready']);
    expect(appliedShutdowns(await host.simCalls(), [ready[1]!.nodes[0]!.id!])).toHaveLength(0);
    // A renew after expiry: 409 naming it
    const late = await post(host, `/scale-requests/${left}/renew`, { seconds: 120 });
    expect(late.status).toBe(409);
    expect(((await late.json()) as { detail: string }).detail).toMatch(/released at .* \(lease expired\)/);
    // The records no longer show the shut-down nodes as Ready
    await waitFor('records without Ready nodes', 30_000, async () => {
      const [a, c] = await Promise.all([recordOf(host, left), recordOf(host, released)]);
      return a.nodes.every((n) => n.status !== 'Ready') && c.nodes.every((n) => n.status !== 'Ready') ? true : undefined;
    });
  }, 300_000);

  it.concurrent('kill -9 shortly before expiry: the next host shuts the expired lease down once and keeps the renewed one', async () => {
    // Prepare: one CycleCloud outside the hosts; host A with two 60 s leases
    const sim = await startSimulator({ port: 0, stepMs: 100 });
    sims.push(sim);
    const prefix = freshPrefix('lk');
    const env = scalerEnv(sim, prefix);
    const storageConnectionString = inject('storageConnectionString');
    const a = await startScaler({ storageConnectionString, env });
    hosts.push(a);
    const [expiring, renewed] = [`kill-exp-${prefix}`, `kill-ren-${prefix}`];
    for (const id of [expiring, renewed]) expect((await post(a, '/scale-requests', oneNode(id, 60))).status).toBe(202);
    const ready = await Promise.all([expiring, renewed].map((id) => a.waitFinal(id, 60_000)));
    const expiresAt = Date.parse(ready[0]!.lease!.expiresAt);

    // Act: renew one for 10 minutes, then kill -9 A 10 s before the other expires; B starts on the same storage
    expect((await post(a, `/scale-requests/${renewed}/renew`, { seconds: 600 })).status).toBe(200);
    await sleep(Math.max(0, expiresAt - 10_000 - Date.now()));
    process.kill(-a.child.pid!, 'SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    const b = await startScaler({ storageConnectionString, env });
    hosts.push(b);
    const released = await waitFor('the expired lease released by B', 100_000, async () => {
      const r = await recordOf(b, expiring);
      return r.released ? r : undefined;
    });
    await sleep(10_000);

    // Assess: once, within 90 s of expiry; the renewed one kept
    const calls = sim.sim.calls;
    const shut = appliedShutdowns(calls, [ready[0]!.nodes[0]!.id!]);
    expect(released.released?.reason).toBe('lease expired');
    expect(shut).toHaveLength(1);
    expect(shut[0]!.atMs - expiresAt).toBeLessThanOrEqual(90_000);
    expect(appliedShutdowns(calls, [ready[1]!.nodes[0]!.id!])).toHaveLength(0);
    const kept = await recordOf(b, renewed);
    expect(kept.released).toBeUndefined();
    expect(kept.lease?.seconds).toBe(600);
    expect(sim.sim.nodes('hpc').find((n) => n.NodeId === ready[1]!.nodes[0]!.id)?.Status).toBe('Ready');
  }, 240_000);
});
