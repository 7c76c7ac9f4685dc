/**
 * Leases, renew and release through the composition root (real ledger, tracker and CycleCloud client)
 * over azurite and the simulator, on one virtual clock: expiry, renew racing expiry, release of a
 * request whose create is still in flight, a shutdown whose run dies after its intent, and the
 * shutdowns counted at CycleCloud.
 */
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { createServices, type Services } from '../../src/app/services.ts';
import { runSnapshotJob } from '../../src/app/jobs.ts';
import { createLogger, silentLogger } from '../../src/platform/log.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { enforce } from '../../src/requests/lifecycle.ts';
import type { RequestRecord, ScaleRequest } from '../../src/ledger/schemas.ts';
import { pumpUntil } from '../tracking/pump.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';

let sim: SimulatorHandle;
let clock = Date.parse('2026-12-07T12:00:00.000Z');
const now = () => clock;

// A simulator of its own per test: one test's nodes never take another's room.
beforeEach(async () => {
  sim = await startSimulator({ port: 0, stepMs: 20, now });
});
afterEach(async () => {
  await sim?.close();
});

async function services(extra: Record<string, string> = {}): Promise<Services> {
  return createServices(
    scalerEnv(sim, freshPrefix('lease'), { CREATE_WINDOW_MS: '0', TRACKER_POLL_MIN_SECONDS: '0.05', TRACKER_POLL_MAX_SECONDS: '0.2', ...extra }, inject('storageConnectionString')),
    { mode: 'local', now, logger: traceLogger, fastPathConcurrency: 0 },
  );
}

/** The services' own log lines (not the handlers'), kept to say what happened when a pump times out. */
let trace: string[] = [];
const traceLogger = createLogger((_level, line) => trace.push(line));
beforeEach(() => {
  trace = [];
});

let seq = 0;
const meta = () => ({ messageId: `m${++seq}`, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' });

/** Runs the scale and tracker queues (the clock moving 1 s per round) until `done`; on a timeout, says where each request stands. */
async function pump(s: Services, done: () => Promise<boolean>, id?: string): Promise<void> {
  await pumpUntil(
    s.storage,
    {
      [s.names.scaleQueue]: async (m) => {
        await s.pipeline.handle(m, meta(), traceLogger);
      },
      [s.names.trackerQueue]: (m, info) => s.tracker.handleTrackerMessage(m, info, traceLogger),
    },
    async () => {
      clock += 1_000;
      return done();
    },
    30_000,
    20,
    async () => {
      const entries = [...(await s.pipeline.ledger.listOpen()), ...(id ? [await s.pipeline.ledger.get(id)] : [])];
      const seen = entries
        .filter((e) => e !== null)
        .map((e) => ({ id: e.record.requestId, state: e.record.state, reason: e.record.reason, nodes: e.record.nodes.map((n) => `${n.name}:${n.status}`), attempts: e.attempts }));
      const calls = sim.sim.calls.map((c) => `${c.method} ${c.path} ${c.method === 'POST' ? JSON.stringify(c.body ?? null) : ''}`).slice(-12);
      return `clock ${new Date(clock).toISOString()}; records: ${JSON.stringify(seen)}; CycleCloud calls: ${calls.join(', ')}; log: ${trace.slice(-80).join('\n')}`;
    },
  );
}

const record = async (s: Services, id: string): Promise<RequestRecord> => (await s.pipeline.ledger.getRecord(id))!;
const shutdownsOf = (id: string) => sim.sim.calls.filter((c) => c.method === 'POST' && c.path.endsWith('/nodes/shutdown') && JSON.stringify(c.body ?? '').includes(`${id}-rel`));
const liveNodesOf = (names: string[]) => sim.sim.nodes('hpc').filter((n) => names.includes(String(n.Name)) && n.TargetState === 'Started');

function scale(requestId: string, over: Partial<ScaleRequest> = {}): ScaleRequest {
  return { kind: 'scale', requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'] }], ...over };
}

async function fulfilledLeased(s: Services, id: string, over: Partial<ScaleRequest> = { lease: { seconds: 60 } }): Promise<RequestRecord> {
  await s.freshSnapshot('hpc', -1);
  await s.pipeline.submitRequest(scale(id, over));
  await pump(s, async () => (await record(s, id)).state === 'fulfilled', id);
  return record(s, id);
}

describe('leases through the composition root', () => {
  it('a lease not renewed: released at the next look after expiry, its nodes shut down once, and a renew after is a 409', async () => {
    // Prepare: a fulfilled request with a 60 s lease
    const s = await services();
    const id = `lease-exp-${seq}`;
    const ready = await fulfilledLeased(s, id);
    const names = ready.nodes.map((n) => n.name);
    expect(names).toHaveLength(2);
    expect(ready.lease?.seconds).toBe(60);

    // Act: a look before expiry does nothing; the snapshot tick after it releases
    const early = await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    expect(early.leases.released).toBe(0);
    expect(shutdownsOf(id)).toHaveLength(0);
    expect(await s.http.leases!.view(clock)).toEqual({ tracked: 1, due: 0, nodesPastLease: 0 });
    clock = Date.parse(ready.lease!.expiresAt) + 1;
    // Health, between expiry and the scaler acting on it: two nodes past their lease
    expect(await s.http.leases!.view(clock)).toEqual({ tracked: 1, due: 1, nodesPastLease: 2 });
    const tick = await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    await pump(s, async () => (await record(s, id)).nodes.every((n) => n.status !== 'Ready'));

    // Assess
    expect(tick.leases).toMatchObject({ looked: 1, released: 1, failed: 0 });
    const after = await record(s, id);
    expect(after.released).toEqual({ at: new Date(Date.parse(ready.lease!.expiresAt) + 1).toISOString(), reason: 'lease expired' });
    expect(after.lease).toBeUndefined();
    expect(after.nodes.filter((n) => n.status === 'Ready')).toEqual([]);
    const calls = shutdownsOf(id);
    expect(calls).toHaveLength(1);
    expect((calls[0]!.body as { ids?: string[] }).ids?.sort()).toEqual(ready.nodes.map((n) => n.id).sort());
    expect(liveNodesOf(names)).toEqual([]);
    // Looked at again (the reminder, the next tick): nothing more is sent
    await enforce(s.pipeline.lifecycle(silentLogger), id);
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    expect(shutdownsOf(id)).toHaveLength(1);
    expect(await s.pipeline.leases.due()).toEqual([]);
    expect(await s.http.leases!.view(clock)).toEqual({ tracked: 0, due: 0, nodesPastLease: 0 });
    const renew = await s.http.renew!(id, undefined);
    expect(renew).toMatchObject({ ok: false, status: 409 });
    expect(renew.ok ? '' : renew.message).toMatch(/was released at .* \(lease expired\)/);
    await s.close();
  }, 60_000);

  it('renewed before expiry: kept past the first expiry, released only after the renewed one', async () => {
    // Prepare
    const s = await services();
    const id = `lease-renew-${seq}`;
    const ready = await fulfilledLeased(s, id);

    // Act: renew 10 s before expiry, then look just after the first expiry
    const other = `${id}-b`;
    await s.pipeline.submitRequest(scale(other, { lease: { seconds: 90 } }));
    clock = Date.parse(ready.lease!.expiresAt) - 10_000;
    const before = (await s.http.leases!.soonest!(10)).map((r) => r.requestId);
    const renewed = await s.http.renew!(id, 120);
    const after = (await s.http.leases!.soonest!(10)).map((r) => [r.requestId, r.leaseExpiresAt]);
    clock = Date.parse(ready.lease!.expiresAt) + 1_000;
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    await enforce(s.pipeline.lifecycle(silentLogger), id);
    const kept = await record(s, id);

    // Assess: kept, with the new lease; released once that passes
    expect(renewed.ok).toBe(true);
    // The leased list, soonest first: the renew moved this one behind the other
    expect(before).toEqual([id, other]);
    expect(after.map(([r]) => r)).toEqual([other, id]);
    expect(kept.released).toBeUndefined();
    expect(kept.lease).toEqual({ seconds: 120, expiresAt: new Date(Date.parse(ready.lease!.expiresAt) - 10_000 + 120_000).toISOString() });
    expect(shutdownsOf(id)).toHaveLength(0);
    expect(liveNodesOf(kept.nodes.map((n) => n.name))).toHaveLength(2);
    clock = Date.parse(kept.lease!.expiresAt);
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    expect((await record(s, id)).released?.reason).toBe('lease expired');
    expect(shutdownsOf(id)).toHaveLength(1);
    await s.close();
  }, 60_000);

  it('max lifetime: released when it passes, whatever the renewals', async () => {
    const s = await services();
    const id = `lease-life-${seq}`;
    const ready = await fulfilledLeased(s, id, { lease: { seconds: 600 }, maxLifetimeSeconds: 120 });
    expect(ready.maxLifetime?.seconds).toBe(120);

    clock = Date.parse(ready.maxLifetime!.endsAt) - 5_000;
    expect((await s.http.renew!(id, 3600)).ok).toBe(true);
    clock = Date.parse(ready.maxLifetime!.endsAt);
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);

    expect((await record(s, id)).released?.reason).toBe('max lifetime');
    expect(shutdownsOf(id)).toHaveLength(1);
    await s.close();
  }, 60_000);

  it('release: nodes shut down at once; a second release answers the same and sends nothing', async () => {
    const s = await services();
    const id = `lease-rel-${seq}`;
    const ready = await fulfilledLeased(s, id, {});
    expect(ready.lease).toBeUndefined();

    const first = await s.http.release!(id);
    const second = await s.http.release!(id);

    expect(first.ok && second.ok).toBe(true);
    if (!first.ok || !second.ok) return;
    expect(second.entry.record.released).toEqual(first.entry.record.released);
    expect(first.entry.record.released?.reason).toBe('released');
    expect(shutdownsOf(id)).toHaveLength(1);
    expect(liveNodesOf(ready.nodes.map((n) => n.name))).toEqual([]);
    await pump(s, async () => (await record(s, id)).nodes.every((n) => n.status !== 'Ready'));
    expect(await s.http.release!('no-such-request')).toMatchObject({ ok: false, status: 404 });
    await s.close();
  }, 60_000);

  it('release while the create is in flight: nothing more is planned, and the nodes that land are shut down on the next look', async () => {
    // Prepare: the create is sent and accepted, its nodes not yet tracked; then the caller releases
    const s = await services();
    const id = `lease-flight-${seq}`;
    await s.freshSnapshot('hpc', -1);
    await s.pipeline.submitRequest(scale(id));
    await s.pipeline.handle(scale(id), meta(), silentLogger);
    expect((await record(s, id)).state).toBe('submitted');
    const created = sim.sim.nodes('hpc').filter((n) => JSON.stringify(n.Tags ?? {}).includes(id));
    expect(created).toHaveLength(2);

    // Act
    const released = await s.http.release!(id);
    await pump(s, async () => {
      await runSnapshotJob(s, { isPastDue: false }, silentLogger);
      return (await s.pipeline.leases.due()).length === 0;
    });

    // Assess: every node the create made is shut down, once; no second create
    expect(released.ok).toBe(true);
    const rec = await record(s, id);
    expect(rec.released?.reason).toBe('released');
    expect(['failed', 'partially_fulfilled', 'fulfilled']).toContain(rec.state);
    expect(sim.sim.calls.filter((c) => c.path.endsWith('/nodes/create') && JSON.stringify(c.body ?? '').includes(id))).toHaveLength(1);
    const shutdownIds = shutdownsOf(id).flatMap((c) => (c.body as { ids?: string[]; names?: string[] }).ids ?? (c.body as { names?: string[] }).names ?? []);
    expect(new Set(shutdownIds).size).toBe(shutdownIds.length);
    expect(liveNodesOf(created.map((n) => String(n.Name)))).toEqual([]);
    await s.close();
  }, 60_000);

  it('a run that dies between the intent and the shutdown: the next look sends it under the same id, and CycleCloud applies it once', async () => {
    // Prepare: the shutdown's answer is lost after CycleCloud applied it, three times (every send of that run)
    const s = await services();
    const id = `lease-crash-${seq}`;
    const ready = await fulfilledLeased(s, id);
    sim.sim.faults.add({ method: 'POST', path: 'nodes/shutdown', kind: 'commit-then-fail', times: 1 });
    sim.sim.faults.add({ method: 'POST', path: 'nodes/shutdown', kind: 'reset', times: 2 });

    // Act: expiry; the run's sends all fail; later looks resend under the same id
    clock = Date.parse(ready.lease!.expiresAt);
    const tick = await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    const intent = (await s.pipeline.ledger.get(id))!.releases;
    clock += 30_000;
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    await pump(s, async () => (await record(s, id)).nodes.every((n) => n.status !== 'Ready'));

    // Assess
    expect(tick.leases.failed).toBe(1);
    expect(intent).toHaveLength(1);
    expect(intent![0]!.state).toBe('intent');
    const entry = (await s.pipeline.ledger.get(id))!;
    expect(entry.releases).toHaveLength(1);
    expect(entry.releases![0]!.state).toBe('sent');
    const calls = shutdownsOf(id);
    // All under one CycleCloud requestId; only the first was applied (a later one is answered 409)
    expect(new Set(calls.map((c) => (c.body as { requestId?: string }).requestId))).toEqual(new Set([`${id}-rel0`]));
    expect(calls.filter((c) => c.status === 202)).toHaveLength(0);
    expect(calls.some((c) => c.status === 409)).toBe(true);
    expect(liveNodesOf(ready.nodes.map((n) => n.name))).toEqual([]);
    await s.close();
  }, 60_000);

  it('the queue forms: renew and release as messages do what the routes do; a bad or refused one is recorded, never retried', async () => {
    const s = await services();
    const id = `lease-queue-${seq}`;
    const ready = await fulfilledLeased(s, id);

    clock = Date.parse(ready.lease!.expiresAt) - 5_000;
    const renewed = await s.pipeline.handle({ kind: 'renew', requestId: id, seconds: 300 }, meta(), silentLogger);
    const leaseAfter = (await record(s, id)).lease;
    const bad = await s.pipeline.handle({ kind: 'renew', requestId: id, seconds: 5 }, meta(), silentLogger);
    const unknown = await s.pipeline.handle({ kind: 'release', requestId: 'nobody' }, meta(), silentLogger);
    const released = await s.pipeline.handle({ kind: 'release', requestId: id }, meta(), silentLogger);
    const late = await s.pipeline.handle({ kind: 'renew', requestId: id }, meta(), silentLogger);

    expect(renewed.action).toBe('tracking');
    expect(leaseAfter).toEqual({ seconds: 300, expiresAt: new Date(clock + 300_000).toISOString() });
    expect(bad.action).toBe('rejected');
    expect((await record(s, bad.requestId)).reason).toBe('invalid request: seconds: must be at least 60 seconds');
    expect(unknown.action).toBe('rejected');
    expect((await record(s, unknown.requestId)).reason).toBe('release nobody: no request with requestId "nobody"');
    expect(released.action).toBe('tracking');
    expect((await record(s, id)).released?.reason).toBe('released');
    expect(shutdownsOf(id)).toHaveLength(1);
    expect(late.action).toBe('rejected');
    expect((await record(s, late.requestId)).reason).toMatch(/^renew .*: request ".*" was released at/);
    expect((await s.pipeline.state.counters()).rejectedMessages).toBe(3);
    await s.close();
  }, 60_000);

  it("a terminate by names (or a Slurm suspend) leaves the owner's record true: the node is no longer Ready there", async () => {
    // Prepare: a fulfilled request of two nodes, seen by a snapshot (their tags name it)
    const s = await services();
    const id = `owner-${seq}`;
    const ready = await fulfilledLeased(s, id, {});
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    const [first, second] = ready.nodes;

    // Act: another caller terminates one of them by name, another shuts the other down by id (as Slurm's suspend does)
    for (const message of [
      { kind: 'terminate' as const, requestId: `drain-${seq}`, cluster: 'hpc', names: [first!.name] },
      { kind: 'terminate' as const, requestId: `suspend-${seq}`, cluster: 'hpc', ids: [second!.id!], action: 'shutdown' as const },
    ]) {
      await s.pipeline.submitRequest(message);
      await s.pipeline.handle(message, meta(), silentLogger);
    }

    // Assess
    const owner = await record(s, id);
    expect(owner.state).toBe('fulfilled');
    expect(owner.nodes.map((n) => [n.name, n.status])).toEqual([
      [first!.name, 'Terminating'],
      [second!.name, 'Terminating'],
    ]);
    expect(owner.demands[0]!.ready).toBe(0);
    await s.close();
  }, 60_000);

  it('3 evictions of a 6-node replaceEvicted spot request: exactly 3 replacements, the record shows 3 Evicted and 6 Ready, the evicted VMs go', async () => {
    // Prepare: six spot nodes, fulfilled
    const s = await services();
    const id = `evict-${seq}`;
    const demand = { count: 6, capacity: 'spot' as const, replaceEvicted: true, minVcpus: 16 };
    const ready = await fulfilledLeased(s, id, { demands: [demand] });
    expect(ready.nodes).toHaveLength(6);
    expect(ready.nodes.every((n) => n.spot === true)).toBe(true);

    // Act: Azure evicts three; the snapshot tick finds them and the request is opened again
    sim.sim.evictNext('hpc', 3);
    const tick = await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    // The replacement plans what the snapshot shows room for; the evicted VMs' room shows in the next
    // snapshots (the timer's ticks, here every 10 s of the clock), as their terminates complete.
    let rounds = 0;
    await pump(s, async () => {
      if (++rounds % 10 === 0) await runSnapshotJob(s, { isPastDue: false }, silentLogger);
      return (await record(s, id)).state === 'fulfilled';
    });
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);

    // Assess
    expect(tick.evictions).toEqual([{ cluster: 'hpc', evicted: 3, replaced: 3 }]);
    const after = await record(s, id);
    expect(after.nodes.filter((n) => n.status === 'Evicted')).toHaveLength(3);
    expect(after.nodes.filter((n) => n.status === 'Ready')).toHaveLength(6);
    expect(after.demands[0]).toMatchObject({ requested: 6, created: 6, ready: 6 });
    const tagged = [
      ...new Set(sim.sim.calls.filter((c) => c.path.endsWith('/nodes/create') && c.status === 202 && JSON.stringify(c.body).includes(id)).map((c) => JSON.stringify(c.body))),
    ];
    const asked = tagged.reduce((n, b) => n + (JSON.parse(b) as { sets: { count: number }[] }).sets.reduce((m, x) => m + x.count, 0), 0);
    expect(asked).toBe(9);
    // Each evicted VM terminated; no orphans
    const evictedIds = after.nodes.filter((n) => n.status === 'Evicted').map((n) => n.id);
    expect(sim.sim.nodes('hpc').filter((n) => evictedIds.includes(String(n.NodeId)) && n.TargetState === 'Started')).toEqual([]);
    expect((await s.pipeline.state.counters()).orphanNodesTerminated ?? 0).toBe(0);
    // Looking again changes nothing
    expect((await runSnapshotJob(s, { isPastDue: false }, silentLogger)).evictions).toEqual([]);
    await s.close();
  }, 60_000);

  it('without replaceEvicted an eviction is recorded and not replaced; spot-first falls back to regular when spot is full and says why', async () => {
    const s = await services();
    const full = `spotfull-${seq}`;
    await fulfilledLeased(s, full, { demands: [{ count: 8, nodearray: 'spot' }] });
    const id = `spotfirst-${seq}`;
    const ready = await fulfilledLeased(s, id, { demands: [{ count: 2, capacity: 'spot-first', minVcpus: 32, machineTypes: ['Standard_F32s_v2'] }] });

    expect(ready.nodes.some((n) => n.spot)).toBe(false);
    expect(ready.demands[0]!.spotFallback).toMatch(/^spot\/Standard_F32s_v2 has room for 0/);

    sim.sim.evictNext('hpc', 1);
    await runSnapshotJob(s, { isPastDue: false }, silentLogger);
    const spotRecord = await record(s, full);
    expect(spotRecord.state).toBe('fulfilled');
    expect(spotRecord.nodes.filter((n) => n.status === 'Evicted')).toHaveLength(1);
    expect(spotRecord.reason).toMatch(/^1 node\(s\) evicted: spot-\d+$/);
    expect(sim.sim.calls.filter((c) => c.path.endsWith('/nodes/create') && JSON.stringify(c.body).includes(full))).toHaveLength(1);
    await s.close();
  }, 60_000);

  it('spot-first whose spot nodes are not Ready within spotFallbackSeconds: they are given up and the demand is placed on regular buckets, saying why', async () => {
    // Prepare: the create lands in the spot bucket; CycleCloud never brings those nodes up
    const s = await services();
    const id = `spotslow-${seq}`;
    await s.freshSnapshot('hpc', -1);
    const message = scale(id, { demands: [{ count: 2, capacity: 'spot-first', spotFallbackSeconds: 60, minVcpus: 32, machineTypes: ['Standard_F32s_v2'] }] });
    await s.pipeline.submitRequest(message);
    await s.pipeline.handle(message, meta(), silentLogger);
    const spotNodes = sim.sim.nodes('hpc').filter((n) => JSON.stringify(n.Tags ?? {}).includes(id));
    expect(spotNodes.map((n) => n.Template)).toEqual(['spot', 'spot']);
    for (const n of spotNodes) sim.sim.holdNode('hpc', String(n.Name));

    // Act
    await pump(s, async () => (await record(s, id)).state === 'fulfilled');

    // Assess
    const rec = await record(s, id);
    expect(rec.demands[0]).toMatchObject({ requested: 2, created: 2, ready: 2 });
    expect(rec.demands[0]!.spotFallback).toBe('spot nodes not Ready within 60 s (spotFallbackSeconds); given up for regular buckets');
    const ready = rec.nodes.filter((n) => n.status === 'Ready');
    expect(ready).toHaveLength(2);
    expect(ready.every((n) => n.spot === undefined)).toBe(true);
    expect(rec.nodes.filter((n) => n.spot).map((n) => n.status)).toEqual(['TimedOut', 'TimedOut']);
    expect(sim.sim.nodes('hpc').filter((n) => spotNodes.some((x) => x.NodeId === n.NodeId) && n.TargetState === 'Started')).toEqual([]);
    await s.close();
  }, 60_000);
});
