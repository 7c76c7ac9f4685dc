/**
 * Group commit against the real CycleCloud client over HTTP and the simulator, with the ledger,
 * reservations and capacity memory on azurite: requests of one cluster that arrive together are
 * planned, reserved and created as ONE `nodes/create`, and stay exactly-once per request.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { startSimulator } from '../../src/simulator/server.ts';
import { createBatcher, createSender, type CreateSender } from '../../src/requests/submit.ts';
import { publicRecord, type ScaleRequest } from '../../src/ledger/schemas.ts';
import { REQUEST_TAG, CREATE_TAG } from '../../src/cyclecloud/tags.ts';
import { createCallsOf } from '../helpers/creates.ts';
import { simulatorDeps } from './sim-deps.ts';

type Handle = Awaited<ReturnType<typeof startSimulator>>;
let handle: Handle | undefined;
const _seq = 0;

afterEach(async () => {
  await handle?.close();
  handle = undefined;
});

interface WireSet {
  nodearray: string;
  count: number;
  placementGroupId?: string;
  nodeAttributes?: { Tags?: Record<string, string> };
}

async function setup() {
  handle = await startSimulator({ port: 0, stepMs: 20 });
  const h = handle;
  const storage = Storage.fromConnectionString(inject('storageConnectionString'));
  // A window long enough that requests delivered together on a loaded machine meet in it.
  const { deps, ledger, tracker, queue, deliver } = await simulatorDeps(h, storage, { batcher: createBatcher({ windowMs: 500, windowMaxMs: 5_000, maxWeight: 100 }) });
  // Take the snapshot first, so every member plans against the same one.
  await deps.snapshots.getFresh('hpc', 60_000);
  const creates = () => createCallsOf(h.sim.calls);
  const ours = () => h.sim.nodes('hpc').filter((n) => (n.Tags as Record<string, string> | undefined)?.[REQUEST_TAG]);
  return { h, deps, ledger, tracker, queue, deliver, creates, ours };
}

const oneNode = (requestId: string, extra: Partial<ScaleRequest> = {}, machineType = 'Standard_HC44rs'): ScaleRequest => ({
  kind: 'scale',
  requestId,
  cluster: 'hpc',
  demands: [{ nodearray: 'ondemand', count: 1, machineTypes: [machineType] }],
  ...extra,
});

/** Delivers the wake-ups the members queued, each time later (past lookup graces and backoffs), until every one is submitted. */
async function wakeUntilSubmitted(w: Awaited<ReturnType<typeof setup>>, ids: string[]): Promise<void> {
  const realNow = w.deps.now;
  try {
    for (let round = 1; round <= 6; round++) {
      const states = await Promise.all(ids.map(async (id) => (await w.ledger.getRecord(id))!.state));
      if (states.every((x) => x === 'submitted')) return;
      w.deps.now = () => realNow() + 60_000 * round;
      await Promise.all(w.queue.sent.splice(0).map((m) => w.deliver(m.body)));
    }
  } finally {
    w.deps.now = realNow;
  }
}

const sets = (c: { body?: unknown }) => ((c.body as { sets: WireSet[] }).sets ?? []) as WireSet[];
const bodyId = (c: { body?: unknown }) => (c.body as { requestId: string }).requestId;

describe('group commit × simulator', () => {
  it('ten requests arriving together: ONE nodes/create with ten sets, each tagged with its own request, each record its own node', async () => {
    const { h, ledger, tracker, deliver, creates, ours } = await setup();
    const ids = Array.from({ length: 10 }, (_, i) => `batch-ten-${i}`);

    const results = await Promise.all(ids.map((id) => deliver(oneNode(id))));

    expect(results.map((r) => r?.state)).toEqual(ids.map(() => 'submitted'));
    const calls = creates();
    expect(calls).toHaveLength(1);
    const batch = bodyId(calls[0]!);
    expect(batch).toMatch(/^ccb-/);
    expect(
      sets(calls[0]!)
        .map((s) => s.nodeAttributes?.Tags?.[REQUEST_TAG])
        .sort(),
    ).toEqual([...ids].sort());
    expect(new Set(sets(calls[0]!).map((s) => s.nodeAttributes?.Tags?.[CREATE_TAG]))).toEqual(new Set(ids.map((id) => `${id}-g0`)));
    // CycleCloud made ten nodes, one per request, and each record lists only its own
    const nodes = ours();
    expect(nodes).toHaveLength(10);
    for (const id of ids) {
      const mine = nodes.filter((n) => (n.Tags as Record<string, string>)[REQUEST_TAG] === id);
      expect(mine).toHaveLength(1);
      const e = (await ledger.get(id))!;
      expect(e.record.demands[0]).toMatchObject({ requested: 1, created: 1 });
      expect(e.attempts).toEqual([expect.objectContaining({ cycleCloudRequestId: `${id}-g0`, batch, state: 'accepted' })]);
      // The public record names the create by the id CycleCloud knows it by
      expect(publicRecord(e.record).operations).toEqual([{ operationId: e.attempts[0]!.operationId, cycleCloudRequestId: batch, state: 'pending' }]);
    }
    // Each member is tracked on its own (its own tag), one operation between them
    expect(tracker.starts.map((t) => t.cycleCloudRequestId).sort()).toEqual(ids.map((id) => `${id}-g0`).sort());
    expect(new Set(tracker.starts.map((t) => t.operationId)).size).toBe(1);
    expect(h.sim.operations.filter((o) => o.action === 'create')).toHaveLength(1);
  });

  it("a batch create whose answer is lost (commit-then-fail): each member finds its own node by the batch's id and its tag; nothing is created twice", async () => {
    const { h, ledger, queue, deliver, creates, ours, deps } = await setup();
    const ids = Array.from({ length: 6 }, (_, i) => `batch-lost-${i}`);
    h.sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'commit-then-fail', status: 500, times: 1 });

    await Promise.all(ids.map((id) => deliver(oneNode(id))));
    // Whoever had to wait (a lagging list) is woken as the queue would, later
    for (let round = 0; round < 5; round++) {
      const waiting = [];
      for (const id of ids) if ((await ledger.getRecord(id))!.state !== 'submitted') waiting.push(id);
      if (waiting.length === 0) break;
      const realNow = deps.now;
      deps.now = () => realNow() + 20_000 * (round + 1);
      await Promise.all(queue.sent.splice(0).map((m) => deliver(m.body)));
      deps.now = realNow;
    }

    expect(ours()).toHaveLength(6);
    // CycleCloud applied one create (the first: its answer was lost), with all six nodes
    expect(h.sim.operations.filter((o) => o.action === 'create').map((o) => o.nodeIds.length)).toEqual([6]);
    expect(creates()[0]!.status).toBe(500);
    // Every later call was a lookup or a resend under the batch's own id that CycleCloud refused as a repeat
    const batch = bodyId(creates()[0]!);
    for (const c of creates()) expect(bodyId(c)).toBe(batch);
    for (const id of ids) {
      const e = (await ledger.get(id))!;
      expect(e.record.state).toBe('submitted');
      expect(e.record.demands[0]!.created).toBe(1);
      expect(e.attempts.map((a) => a.state)).toEqual(['accepted']);
    }
  });

  for (const kind of ['throttle', 'reset'] as const) {
    it(`a batch create that applied nothing (${kind}): each member is later sent alone under its own id, once, with no capacity backoff`, async () => {
      const w = await setup();
      const { h, ledger, deliver, creates, ours, deps } = w;
      const ids = Array.from({ length: 4 }, (_, i) => `batch-${kind}-${i}`);
      h.sim.faults.add(
        kind === 'throttle'
          ? { method: 'POST', path: 'nodes/create', kind: 'throttle', retryAfterSec: 1, times: 1 }
          : { method: 'POST', path: 'nodes/create', kind: 'reset', times: 1 },
      );

      await Promise.all(ids.map((id) => deliver(oneNode(id))));
      expect(ours()).toHaveLength(0);
      await wakeUntilSubmitted(w, ids);

      // The batch's id went to CycleCloud once (refused or lost); each member then went alone, once
      const calls = creates();
      expect(bodyId(calls[0]!)).toMatch(/^ccb-/);
      expect(calls.filter((c) => bodyId(c) === bodyId(calls[0]!))).toHaveLength(1);
      expect(
        calls
          .slice(1)
          .filter((c) => c.status === 202)
          .map(bodyId)
          .sort(),
      ).toEqual(ids.map((id) => `${id}-g0`).sort());
      expect(ours()).toHaveLength(4);
      for (const id of ids) {
        const e = (await ledger.get(id))!;
        expect(e.record.state).toBe('submitted');
        expect(e.record.demands[0]!.created).toBe(1);
        expect(e.attempts.map((a) => [a.cycleCloudRequestId, a.state, a.batch])).toEqual([[`${id}-g0`, 'accepted', undefined]]);
      }
      expect(await deps.capacity.active('hpc', Date.now())).toEqual([]);
    });
  }

  it('a batch CycleCloud refuses (400) fails no innocent member: each is sent alone under its own id', async () => {
    const { h, ledger, deliver, creates, ours } = await setup();
    const ids = Array.from({ length: 4 }, (_, i) => `batch-refused-${i}`);
    h.sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'status', status: 400, times: 1 });

    await Promise.all(ids.map((id) => deliver(oneNode(id))));

    const calls = creates();
    expect(calls[0]!.status).toBe(400);
    expect(bodyId(calls[0]!)).toMatch(/^ccb-/);
    expect(calls.slice(1).map(bodyId).sort()).toEqual(ids.map((id) => `${id}-g0`).sort());
    expect(calls.slice(1).every((c) => c.status === 202)).toBe(true);
    expect(ours()).toHaveLength(4);
    for (const id of ids) {
      const e = (await ledger.get(id))!;
      expect(e.record.state).toBe('submitted');
      expect(e.attempts).toEqual([expect.not.objectContaining({ batch: expect.anything() })]);
      expect(publicRecord(e.record).operations[0]!.cycleCloudRequestId).toBe(`${id}-g0`);
    }
  });

  it('reaches CycleCloud only through the CreateSender seam: a batch sends once and records each member through it', async () => {
    const seen: string[] = [];
    const sender: CreateSender = {
      ...createSender,
      sendBatch: (ctx, request) => {
        seen.push(`batch ${request.sets.length} sets`);
        return createSender.sendBatch(ctx, request);
      },
      submitAttempt: (ctx, ...rest) => {
        seen.push(`submit ${ctx.requestId}`);
        return createSender.submitAttempt(ctx, ...rest);
      },
      recordAnswer: (ctx, accepted) => {
        seen.push(`answer ${ctx.requestId}`);
        return createSender.recordAnswer(ctx, accepted);
      },
    };
    handle = await startSimulator({ port: 0, stepMs: 20 });
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    const w = await simulatorDeps(handle, storage, { sender, batcher: createBatcher({ windowMs: 500, windowMaxMs: 5_000, maxWeight: 100 }) });
    await w.deps.snapshots.getFresh('hpc', 60_000);
    await Promise.all([w.deliver(oneNode('seam-a')), w.deliver(oneNode('seam-b'))]);
    // One batch create and both members' answers, all through the seam
    expect(seen.sort()).toEqual(['answer seam-a', 'answer seam-b', 'batch 2 sets']);
    // Alone in its window, a request is sent through the seam's submitAttempt
    await w.deliver(oneNode('seam-c'));
    expect(seen).toContain('submit seam-c');
  });

  it('the same request twice in one window (fast path and queue delivery) joins the batch once', async () => {
    const { deliver, creates, ours } = await setup();
    const twice = oneNode('batch-twice');

    await Promise.all([deliver(twice), deliver(twice, 2), deliver(oneNode('batch-other'))]);

    const calls = creates();
    expect(calls).toHaveLength(1);
    expect(
      sets(calls[0]!)
        .map((s) => s.nodeAttributes?.Tags?.[REQUEST_TAG])
        .sort(),
    ).toEqual(['batch-other', 'batch-twice']);
    expect(ours()).toHaveLength(2);
  });

  it('when a batch does not fit, higher priority goes first, then arrival order; the rest wait saying why', async () => {
    // 3 free Standard_F32s_v2 in the simulator's ondemand nodearray
    const { ledger, deliver, creates, ours } = await setup();
    const low = ['batch-low-0', 'batch-low-1', 'batch-low-2'];
    const high = ['batch-high-0', 'batch-high-1'];

    // Accepted one after another (low-0 first), all within one window; the high ones last
    const runs: Promise<unknown>[] = [];
    for (const [id, priority] of [...low.map((id) => [id, 0] as const), ...high.map((id) => [id, 5] as const)]) {
      runs.push(deliver(oneNode(id, { priority }, 'Standard_F32s_v2')));
      await new Promise((r) => setTimeout(r, 40));
    }
    await Promise.all(runs);

    expect(creates()).toHaveLength(1);
    const owners = ours().map((n) => (n.Tags as Record<string, string>)[REQUEST_TAG]);
    expect(owners).toHaveLength(3);
    // Both high ones, then the low one accepted first
    expect([...owners].sort()).toEqual(['batch-high-0', 'batch-high-1', 'batch-low-0']);
    for (const id of low.filter((x) => !owners.includes(x))) {
      const r = (await ledger.getRecord(id))!;
      expect(r.state).toBe('queued');
      expect(r.demands[0]!.reason).toMatch(/Standard_F32s_v2/);
    }
  });

  it("one member's partial gang is compensated and re-planned without touching another member's nodes", async () => {
    const { h, ledger, deliver, ours } = await setup();
    h.sim.limitNextCreate('hpc', 'mpi', 'Standard_HB120rs_v3', 2);

    await Promise.all([
      deliver({ kind: 'scale', requestId: 'batch-gang', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 4, colocated: true }] }),
      deliver(oneNode('batch-loose')),
    ]);

    const loose = (await ledger.get('batch-loose'))!;
    expect(loose.record.demands[0]).toMatchObject({ requested: 1, created: 1 });
    expect(loose.compensations ?? []).toEqual([]);
    const looseNode = ours().filter((n) => (n.Tags as Record<string, string>)[REQUEST_TAG] === 'batch-loose');
    expect(looseNode.map((n) => n.TargetState)).toEqual(['Started']);
    const gang = (await ledger.get('batch-gang'))!;
    expect(gang.compensations).toHaveLength(1);
    expect(gang.record.demands[0]).toMatchObject({ requested: 4, created: 4 });
    expect(gang.attempts.map((a) => a.cycleCloudRequestId)).toEqual(['batch-gang-g0', 'batch-gang-g1']);
  });
});
