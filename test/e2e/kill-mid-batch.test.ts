/**
 * kill -9 of an instance in the middle of a batch, the way an Azure Functions worker dies: host A
 * records the batch's intents and sends its ONE `nodes/create`, which CycleCloud (the simulator,
 * holding the call for a few seconds) applies after A is gone. Host B, on the same storage and the
 * same CycleCloud, picks the requests up from the queue: each member finds its own nodes by the
 * batch's request id and its tag, and every request ends fulfilled with its one node, created once.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RequestRecord } from '../../src/ledger/schemas.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { sleep, startScaler, type RunningScaler, type SimCall } from './harness.ts';
import { createCallsOf, memberCreatesOf, setsOf } from '../helpers/creates.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';

const N = 6;
let sim: SimulatorHandle;
const hosts: RunningScaler[] = [];

beforeAll(async () => {
  sim = await startSimulator({ port: 0, stepMs: 100 });
}, 30_000);

afterAll(async () => {
  for (const h of hosts) await h.stop().catch(() => undefined);
  await sim?.close();
}, 30_000);

describe('kill -9 of an instance mid-batch', () => {
  it('the batch it sent is applied once, and the next instance records each member its own node', async () => {
    const basic = `Basic ${Buffer.from(`${sim.username}:${sim.password}`).toString('base64')}`;
    const sim$ = (path: string, body?: unknown) =>
      fetch(`${sim.url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: basic, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    const prefix = freshPrefix('kill');
    const env = scalerEnv(sim, prefix, { SNAPSHOT_SCHEDULE: '*/2 * * * * *', CREATE_WINDOW_MS: '300', CREATE_WINDOW_MAX_MS: '1000' });
    const storageConnectionString = inject('storageConnectionString');
    const a = await startScaler({ storageConnectionString, env });
    hosts.push(a);
    for (const until = Date.now() + 30_000; (await a.api('/clusters/hpc/status')).status !== 200; await sleep(200)) if (Date.now() > until) throw new Error('no snapshot');
    // CycleCloud holds the next create 6 s before applying it, whoever is still listening.
    expect((await sim$('/__sim/faults', { method: 'POST', path: 'nodes/create', kind: 'latency', latencyMs: 6_000, times: 1 })).status).toBe(201);

    const ids = Array.from({ length: N }, (_, i) => `kill-${i}`);
    for (const res of await Promise.all(
      ids.map((requestId) => a.api('/scale-requests', { method: 'POST', body: JSON.stringify({ requestId, cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] }) })),
    ))
      expect(res.status).toBe(202);
    // Every intent recorded (and so the batch's create sent): then the worker dies, mid-call.
    const stateOf = async (id: string) => ((await (await a.api(`/scale-requests/${id}`)).json()) as RequestRecord).state;
    for (const until = Date.now() + 20_000; ; await sleep(50)) {
      const states = await Promise.all(ids.map(stateOf));
      if (states.every((s) => s === 'planning')) break;
      if (Date.now() > until) {
        const all = await Promise.all(ids.map(async (id) => JSON.stringify(await (await a.api(`/scale-requests/${id}`)).json())));
        throw new Error(`intents not all recorded: ${states.join(', ')}\n${all.join('\n')}\n${JSON.stringify(await (await sim$('/__sim/faults')).json())}`);
      }
    }
    process.kill(-a.child.pid!, 'SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    expect(a.child.signalCode).toBe('SIGKILL');

    // The held create lands with nobody to hear its answer; B starts on the same storage.
    const b = await startScaler({ storageConnectionString, env: { ...env, ...(process.env.KILL_LOG ? { LOG_LEVEL: 'debug' } : {}) } });
    hosts.push(b);
    const records: RequestRecord[] = [];
    try {
      for (const id of ids) records.push(await b.waitFinal(id, 120_000));
    } catch (error) {
      if (process.env.KILL_LOG) (await import('node:fs')).writeFileSync(process.env.KILL_LOG, `${a.output()}\n=====B\n${b.output()}`);
      throw new Error(
        `${(error as Error).message}\nhost B said:\n${b
          .output()
          .split('\n')
          .filter((l) => /kill-0|warn|error/.test(l) && !/metric/.test(l))
          .slice(-40)
          .join('\n')}`,
      );
    }
    expect(records.map((r) => [r.requestId, r.state, r.demands[0]!.created, r.demands[0]!.ready])).toEqual(ids.map((id) => [id, 'fulfilled', 1, 1]));

    const calls = createCallsOf(((await (await sim$('/__sim/calls')).json()) as { calls: SimCall[] }).calls);
    const applied = calls.filter((c) => c.status === 202);
    // Each member's create applied once, in all (the batch A sent is not sent again).
    const perMember = new Map<string, number>();
    for (const cc of applied.flatMap(memberCreatesOf)) perMember.set(cc, (perMember.get(cc) ?? 0) + 1);
    expect([...perMember.values()].filter((n) => n > 1)).toEqual([]);
    expect(applied.reduce((n, c) => n + setsOf(c, 'kill-').length, 0)).toBe(N);
    // One node per request in CycleCloud, each the one its record names.
    const state = (await (await sim$('/__sim/state')).json()) as { clusters: { hpc: { nodes: Array<{ Name: string; Tags?: Record<string, string> }> } } };
    const nodes = state.clusters.hpc.nodes.filter((n) => n.Tags?.['ccscale-request']?.startsWith('kill-'));
    expect(nodes.map((n) => n.Tags!['ccscale-request']).sort()).toEqual([...ids].sort());
    for (const r of records) expect(r.nodes.map((n) => n.name)).toEqual(nodes.filter((n) => n.Tags!['ccscale-request'] === r.requestId).map((n) => n.Name));
  }, 200_000);
});
