/**
 * The Slurm sync's decisions (src/slurm/sync.ts), pure: Slurm's `sinfo` view + what the scaler knows
 * of each node → which nodes slurmctld should set down, hold down or resume, which resume demands
 * Slurm gave up on, and which VMs Slurm no longer wants.
 */
import { describe, expect, it } from 'vitest';
import { newEntry, closeDemand } from '../../src/ledger/record.ts';
import { FINAL_STATES, type ScaleRequest } from '../../src/ledger/schemas.ts';
import { silentLogger } from '../../src/platform/log.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { annotate } from '../../src/requests/batch.ts';
import type { Plan } from '../../src/planning/types.ts';
import { decideSync, fatesOf, noRoomReason, parseReport, slurmReason, syncAnswerText, viewOf, type SyncInput } from '../../src/slurm/sync.ts';
import { seedSnapshot, T0 } from '../planning/fixtures.ts';

const resume = (id: string, names: string[], atMs = T0): LedgerEntry =>
  newEntry(
    {
      kind: 'scale',
      requestId: id,
      cluster: 'hpc',
      demands: [{ nodearray: 'ondemand', count: names.length, names, machineTypes: ['Standard_F32s_v2'] }],
      onNoCapacity: 'fail',
    } as ScaleRequest,
    atMs,
    30 * 60_000,
  );

const views = (lines: [string, string, string][]) => {
  const parsed = parseReport({ cluster: 'hpc', lines: lines.map(([state, reason, nodes]) => ({ state, reason, nodes })) });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.views;
};

const input = (over: Partial<SyncInput>): SyncInput => ({
  views: new Map(),
  fates: new Map(),
  snapshot: seedSnapshot(),
  backoffs: [],
  nowMs: T0 + 60_000,
  observedAtMs: T0 + 60_000,
  ...over,
});

/** One in-memory ledger for the sync's dependencies: open entries, read, read-modify-write. */
const fakeDeps = (entries: Map<string, LedgerEntry>, over: { snapshot?: ReturnType<typeof seedSnapshot>; submitted?: unknown[] } = {}) => ({
  now: () => T0 + 60_000,
  logger: silentLogger,
  listOpen: async () => [...entries.values()].filter((e) => !FINAL_STATES.has(e.record.state)),
  getEntry: async (id: string) => entries.get(id) ?? null,
  updateEntry: async (id: string, mutate: (e: LedgerEntry) => LedgerEntry | undefined) => {
    const next = mutate(structuredClone(entries.get(id)!)) ?? entries.get(id)!;
    entries.set(id, next);
    return next;
  },
  snapshot: async () => over.snapshot ?? seedSnapshot(),
  backoffs: () => [],
  submitRequest: async (m: unknown) => {
    over.submitted?.push(m);
    return { outcome: 'created' as const, record: {} as never };
  },
});

describe("sinfo's states", () => {
  it('reads the power suffixes and the base state of the long form', () => {
    expect(viewOf('a', 'down#', 'scaler: x')).toMatchObject({ down: true, poweringUp: true, poweredDown: false, reason: 'scaler: x' });
    expect(viewOf('a', 'idle~', 'none')).toMatchObject({ down: false, poweredDown: true, reason: '' });
    expect(viewOf('a', 'mixed#', 'none')).toMatchObject({ down: false, poweringUp: true });
    expect(viewOf('a', 'idle%', '')).toMatchObject({ poweringDown: true, poweredDown: false });
    expect(viewOf('a', 'DOWN~', 'ResumeTimeout reached')).toMatchObject({ down: true, poweredDown: true });
  });

  it('names the bad line of a report', () => {
    expect(parseReport({ cluster: 'hpc', lines: [{ state: 'idle~', nodes: 'a-[1-2' }] })).toEqual({ ok: false, errors: [{ path: 'lines.0.nodes', message: expect.any(String) }] });
  });
});

describe('what the scaler knows of a node', () => {
  it('a demand closed for lack of capacity: its uncreated names failed, with the reason; a Ready one is up', () => {
    let e = resume('slurm-resume-a', ['ondemand-1', 'ondemand-2']);
    e.record.nodes.push({ name: 'ondemand-1', id: 'n1', status: 'Ready', demand: 0 });
    e = closeDemand(e, 0, 'no capacity now (onNoCapacity: fail): no room', T0);
    const fates = fatesOf([e]);
    expect(fates.get('ondemand-1')).toMatchObject({ fate: 'up' });
    expect(fates.get('ondemand-2')).toMatchObject({ fate: 'failed', reason: expect.stringContaining('no room'), open: true });
  });

  it('a node Failed or TimedOut in CycleCloud failed; the newest request naming a node wins', () => {
    const old = resume('slurm-resume-old', ['ondemand-1'], T0);
    old.record.nodes.push({ name: 'ondemand-1', id: 'n1', status: 'Failed', demand: 0 });
    const fresh = resume('slurm-resume-new', ['ondemand-1', 'ondemand-2'], T0 + 1000);
    fresh.record.nodes.push({ name: 'ondemand-2', id: 'n2', status: 'TimedOut', demand: 0 });
    const fates = fatesOf([fresh, old]);
    expect(fates.get('ondemand-1')).toMatchObject({ requestId: 'slurm-resume-new', fate: 'pending' });
    expect(fates.get('ondemand-2')).toMatchObject({ fate: 'failed', reason: 'node timed out in CycleCloud' });
    expect(fatesOf([old]).get('ondemand-1')).toMatchObject({ fate: 'failed', reason: 'node failed in CycleCloud' });
  });
});

describe('the sync decisions', () => {
  const failed = () => {
    const e = closeDemand(resume('slurm-resume-a', ['ondemand-1', 'ondemand-2']), 0, 'no room in ondemand', T0);
    return fatesOf([e]);
  };

  it('sets down, with the reason, the nodes Slurm is powering up that will not come up', () => {
    const d = decideSync(input({ views: views([['mixed#', 'none', 'ondemand-[1-2]']]), fates: failed() }));
    expect([...d.down]).toEqual([['scaler: no room in ondemand', ['ondemand-1', 'ondemand-2']]]);
    expect(d.hold.size + d.restore.size + d.giveUp.size + d.terminate.length).toBe(0);
  });

  it('tells a failure once: after the sync reported it, a new power-up of the node is not set down by it', () => {
    const e = closeDemand(resume('slurm-resume-a', ['ondemand-1', 'ondemand-2']), 0, 'no room in ondemand', T0);
    e.slurmReported = ['ondemand-1'];
    const d = decideSync(input({ views: views([['mixed#', 'none', 'ondemand-[1-2]']]), fates: fatesOf([e]) }));
    expect([...d.down]).toEqual([['scaler: no room in ondemand', ['ondemand-2']]]);
  });

  it('leaves alone a node still on its way, and one already down', () => {
    const pending = fatesOf([resume('slurm-resume-a', ['ondemand-1'])]);
    expect(decideSync(input({ views: views([['alloc#', 'none', 'ondemand-1']]), fates: pending })).down.size).toBe(0);
    expect(decideSync(input({ views: views([['down#', 'scaler: no room', 'ondemand-1']]), fates: failed(), snapshot: seedSnapshot({ nodearrays: [] }) })).down.size).toBe(0);
  });

  it('holds down a powered-down node of ours while its bucket has no room or backs off, and resumes it once it has room', () => {
    const full = seedSnapshot();
    full.nodearrays[0]!.buckets[0]!.availableCount = 0;
    const v = views([['idle~', 'scaler: no room', 'ondemand-1']]);
    expect([...decideSync(input({ views: v, snapshot: full })).hold]).toEqual([['scaler: no room', ['ondemand-1']]]);
    const backoffs = [{ nodearray: 'ondemand', machineType: 'standard_f32s_v2', untilMs: T0 + 120_000, reason: 'capacity' }];
    expect(decideSync(input({ views: v, backoffs })).hold.size).toBe(1);
    expect(decideSync(input({ views: v, backoffs, nowMs: T0 + 121_000 })).hold.size).toBe(0);
    // Down (held, or still marked powering up) with room again: resume.
    const held = decideSync(input({ views: views([['down~', 'scaler: no room', 'ondemand-[1-2]']]) }));
    expect([...held.restore]).toEqual([['scaler: no room', ['ondemand-1', 'ondemand-2']]]);
    expect(decideSync(input({ views: views([['down~', 'scaler: no room', 'ondemand-1']]), snapshot: full })).restore.size).toBe(0);
    // Still marked powering up: resume would leave it so (and the next sync would set it down again): powered down instead.
    const rising = decideSync(input({ views: views([['down#', 'scaler: no room', 'ondemand-[1-2]']]), fates: failed() }));
    expect([...rising.powerDown]).toEqual([['scaler: no room', ['ondemand-1', 'ondemand-2']]]);
    expect(rising.restore.size + rising.down.size).toBe(0);
    expect(decideSync(input({ views: views([['down#', 'scaler: no room', 'ondemand-1']]), snapshot: full })).powerDown.size).toBe(0);
    // Someone else's reason is not ours to clear.
    expect(decideSync(input({ views: views([['down~', 'disk replaced', 'ondemand-1']]) })).restore.size).toBe(0);
  });

  it('does not resume a name whose VM is still there (failed or terminating)', () => {
    for (const status of ['Failed', 'Terminating', 'Ready']) {
      const snapshot = seedSnapshot({ nodes: [{ name: 'ondemand-1', id: 'n1', status, nodearray: 'ondemand', placementGroupId: null }] });
      expect(decideSync(input({ views: views([['down~', 'scaler: node failed', 'ondemand-1']]), snapshot })).restore.size, status).toBe(0);
    }
    const gone = seedSnapshot({ nodes: [{ name: 'ondemand-1', id: 'n1', status: 'Terminated', nodearray: 'ondemand', placementGroupId: null }] });
    expect(decideSync(input({ views: views([['down~', 'scaler: node failed', 'ondemand-1']]), snapshot: gone })).restore.size).toBe(1);
  });

  it('gives up the demand of a node Slurm powered down or set down, but not one accepted after sinfo ran', () => {
    const fates = fatesOf([resume('slurm-resume-a', ['ondemand-1', 'ondemand-2'], T0)]);
    for (const state of ['down~', 'idle~', 'idle%']) {
      const d = decideSync(input({ views: views([[state, 'ResumeTimeout reached', 'ondemand-1']]), fates }));
      expect([...(d.giveUp.get('slurm-resume-a') ?? [])], state).toEqual([[0, ['ondemand-1']]]);
    }
    const late = decideSync(input({ views: views([['idle~', 'none', 'ondemand-1']]), fates, observedAtMs: T0 + 2000 }));
    expect(late.giveUp.size).toBe(0);
  });

  it('terminates a VM a Slurm resume created that Slurm shows powered down, unless its request still runs', () => {
    const vm = {
      name: 'ondemand-1',
      id: 'n1',
      status: 'Ready',
      nodearray: 'ondemand',
      placementGroupId: null,
      mark: { requestId: 'slurm-resume-a', cycleCloudRequestId: 'slurm-resume-a-g0' },
    };
    const v = views([['idle~', 'none', 'ondemand-1']]);
    expect(decideSync(input({ views: v, snapshot: seedSnapshot({ nodes: [vm] }) })).terminate).toEqual(['ondemand-1']);
    // Its request is open and was accepted after sinfo ran: not judged by this view.
    const open = fatesOf([resume('slurm-resume-a', ['ondemand-1'], T0 + 59_000)]);
    expect(decideSync(input({ views: v, snapshot: seedSnapshot({ nodes: [vm] }), fates: open })).terminate).toEqual([]);
    // Not Slurm's VM, or Slurm is using it: left alone.
    expect(decideSync(input({ views: v, snapshot: seedSnapshot({ nodes: [{ ...vm, mark: { requestId: 'job-7', cycleCloudRequestId: 'job-7-g0' } }] }) })).terminate).toEqual([]);
    expect(decideSync(input({ views: views([['idle', 'none', 'ondemand-1']]), snapshot: seedSnapshot({ nodes: [vm] }) })).terminate).toEqual([]);
  });

  it('keeps reasons one short line without double quotes, and the text answer one action per line', () => {
    expect(slurmReason('a\n"b"\tc')).toBe("scaler: a 'b' c");
    expect(slurmReason('x'.repeat(500)).length).toBe(160);
    expect(
      syncAnswerText({
        down: [{ nodes: 'a-[1-2]', reason: 'scaler: r' }],
        hold: [],
        restore: [{ nodes: 'a-3', reason: 'scaler: q' }],
        powerDown: [{ nodes: 'a-4', reason: 'scaler: p' }],
        closed: [],
        terminated: null,
      }),
    ).toBe('down\ta-[1-2]\tscaler: r\nrestore\ta-3\tscaler: q\npower_down\ta-4\tscaler: p\n');
  });

  it('says why a bucket has no room', () => {
    const full = seedSnapshot();
    full.nodearrays[0]!.buckets[0]!.availableCount = 0;
    expect(noRoomReason('ondemand-1', full, [], T0)).toMatch(/no room in ondemand\/Standard_F32s_v2/);
    expect(noRoomReason('ondemand-1', seedSnapshot(), [], T0)).toBeNull();
    expect(noRoomReason('nope-1', seedSnapshot(), [], T0)).toMatch(/no valid bucket/);
  });
});

describe('onNoCapacity: fail', () => {
  const plan = (code: string | null, planned: number): Plan =>
    ({
      sets: [],
      demands: [
        {
          index: 0,
          requested: 2,
          planned,
          placements: [],
          status: planned === 2 ? 'placed' : 'waiting',
          reason: code ? 'bucket full' : null,
          code,
          boundBy: null,
          considered: [],
          nodearray: null,
          bucketId: null,
          choice: null,
        },
      ],
    }) as unknown as Plan;

  it('closes a demand the planner could not place for lack of capacity, with the reason; waits otherwise', () => {
    const e = resume('slurm-resume-a', ['ondemand-1', 'ondemand-2']);
    expect(annotate(e, plan('PLAN_NO_CAPACITY', 0), T0).closedDemands?.[0]).toMatch(/no capacity now.*bucket full/);
    expect(annotate(e, plan('PLAN_CAPACITY_BACKOFF', 1), T0).closedDemands?.[0]).toBeDefined();
    expect(annotate(e, plan('PLAN_STALE_SNAPSHOT', 0), T0).closedDemands?.[0]).toBeUndefined();
    expect(annotate(e, plan(null, 2), T0).closedDemands?.[0]).toBeUndefined();
    const waits = { ...e, request: { ...(e.request as ScaleRequest), onNoCapacity: 'wait' as const } };
    expect(annotate(waits, plan('PLAN_NO_CAPACITY', 0), T0).closedDemands?.[0]).toBeUndefined();
  });
});

describe('runSlurmSync', () => {
  it('closes the demand Slurm gave up on and terminates the VM a late create left, once per snapshot', async () => {
    const { runSlurmSync } = await import('../../src/slurm/sync.ts');
    const entries = new Map<string, LedgerEntry>();
    const waiting = resume('slurm-resume-w', ['ondemand-1'], T0);
    entries.set(waiting.record.requestId, waiting);
    const submitted: unknown[] = [];
    const snapshot = seedSnapshot({
      nodes: [
        {
          name: 'ondemand-2',
          id: 'n2',
          status: 'Ready',
          nodearray: 'ondemand',
          placementGroupId: null,
          mark: { requestId: 'slurm-resume-old', cycleCloudRequestId: 'slurm-resume-old-g0' },
        },
      ],
    });
    const deps = fakeDeps(entries, { snapshot, submitted });
    const report = { cluster: 'hpc', observedAt: (T0 + 59_000) / 1000, lines: [{ state: 'idle~', reason: 'none', nodes: 'ondemand-[1-2]' }] };
    const result = await runSlurmSync(deps, report);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.answer.closed).toEqual([{ requestId: 'slurm-resume-w', nodes: 'ondemand-1' }]);
    expect(entries.get('slurm-resume-w')!.closedDemands?.[0]).toMatch(/Slurm gave up on the resume of ondemand-1/);
    expect(entries.get('slurm-resume-w')!.record.state).toBe('failed');
    expect(result.answer.terminated).toEqual({ requestId: expect.stringMatching(/^slurm-sync-/), nodes: 'ondemand-2' });
    expect(submitted).toEqual([{ kind: 'terminate', requestId: result.answer.terminated!.requestId, cluster: 'hpc', names: ['ondemand-2'] }]);
    // The same report again: nothing more to close; the terminate has the same id (a duplicate, not a second one).
    const again = await runSlurmSync(deps, report);
    if (!again.ok) throw new Error('refused');
    expect(again.answer.closed).toEqual([]);
    expect(again.answer.terminated?.requestId).toBe(result.answer.terminated!.requestId);
    // A bad hostlist is named.
    expect(await runSlurmSync(deps, { cluster: 'hpc', lines: [{ state: 'idle', nodes: 'x-[' }] })).toMatchObject({ ok: false, errors: [{ path: 'lines.0.nodes' }] });
  });
});

describe('runSlurmSync, a node failed in CycleCloud', () => {
  it('answers down once, noting it on the request; the next sync of the same view answers nothing', async () => {
    const { runSlurmSync } = await import('../../src/slurm/sync.ts');
    const e = resume('slurm-resume-f', ['ondemand-1', 'ondemand-2'], T0);
    e.record.nodes.push({ name: 'ondemand-1', id: 'n1', status: 'Failed', demand: 0 });
    const entries = new Map([[e.record.requestId, e]]);
    const deps = fakeDeps(entries);
    const report = { cluster: 'hpc', lines: [{ state: 'mixed#', reason: 'none', nodes: 'ondemand-[1-2]' }] };
    const first = await runSlurmSync(deps, report);
    if (!first.ok) throw new Error('refused');
    expect(first.answer.down).toEqual([{ nodes: 'ondemand-1', reason: 'scaler: node failed in CycleCloud' }]);
    expect(entries.get('slurm-resume-f')!.slurmReported).toEqual(['ondemand-1']);
    const second = await runSlurmSync(deps, report);
    if (!second.ok) throw new Error('refused');
    expect(second.answer.down).toEqual([]);
  });
});

describe('closeGivenUp (ResumeFailProgram)', () => {
  it('closes the waiting demands of the named nodes only, and leaves a created or other node alone', async () => {
    const { closeGivenUp } = await import('../../src/slurm/sync.ts');
    const a = resume('slurm-resume-a', ['ondemand-1', 'ondemand-2'], T0);
    const b = resume('slurm-resume-b', ['ondemand-3'], T0);
    const entries = new Map([a, b].map((e) => [e.record.requestId, e]));
    const deps = fakeDeps(entries);
    expect(await closeGivenUp(deps, 'hpc', ['ondemand-2', 'ondemand-9'])).toEqual(['slurm-resume-a']);
    expect(entries.get('slurm-resume-a')!.closedDemands?.[0]).toMatch(/Slurm gave up on the resume of ondemand-2 \(ResumeFailProgram\)/);
    expect(entries.get('slurm-resume-b')!.closedDemands?.[0]).toBeUndefined();
  });
});
