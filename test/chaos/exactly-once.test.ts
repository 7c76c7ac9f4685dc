/**
 * Chaos property test of the exactly-once promise (docs/api.md §3, DESIGN "Exactly once"): through
 * the real stack, whatever is delivered twice, whichever handler dies between two steps, whatever
 * CycleCloud answers, every request ends final with a truthful record, no create is sent twice,
 * and no node is left behind that no record accounts for. See `harness.ts` for how.
 *
 * Knobs (environment): CHAOS_RUNS (default 200: every `npm test`, so every CI run), CHAOS_SEED (replay a failure: fast-check prints
 * it; CHAOS_PATH too), CHAOS_SHRINK=1 (shrink the counterexample; slow), CHAOS_TRACE=<file> (full trace, ledger
 * entries and simulator nodes of a failing run), CHAOS_DEBUG=1 (product logs),
 * CHAOS_DEBUG_SUMMARY=1 (one line per run), CHAOS_SCENARIO=<json> (run that one scenario, e.g. a
 * printed counterexample edited by hand).
 */
import fc from 'fast-check';
import { describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { FaultSpec } from '../../src/simulator/server.ts';
import { runScenario, type RunOutcome, type Scenario, type ScenarioDemand } from './run.ts';

const demand: fc.Arbitrary<ScenarioDemand> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ nodearray: fc.constant('ondemand' as const), count: fc.integer({ min: 1, max: 2 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      nodearray: fc.constant('ondemand' as const),
      count: fc.integer({ min: 1, max: 2 }),
      machineTypes: fc.constant(['Standard_HC44rs']),
      colocated: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ nodearray: fc.constant('mpi' as const), count: fc.integer({ min: 2, max: 4 }), colocated: fc.constant(true) }) },
  { weight: 3, arbitrary: fc.record({ nodearray: fc.constant('mpi' as const), count: fc.integer({ min: 1, max: 3 }) }) },
  // Can never be placed (placement groups of mpi hold 4): rejected by the planner, final at once.
  { weight: 1, arbitrary: fc.record({ nodearray: fc.constant('mpi' as const), count: fc.constant(5), colocated: fc.constant(true) }) },
);

const impossible = (d: ScenarioDemand): boolean => d.nodearray === 'mpi' && d.colocated === true && d.count > 4;

const fault: fc.Arbitrary<FaultSpec> = fc.oneof(
  fc.record({
    method: fc.constant('POST'),
    path: fc.constant('nodes/create'),
    kind: fc.constant('status' as const),
    status: fc.constantFrom(500, 503),
    times: fc.integer({ min: 1, max: 2 }),
  }),
  fc.record({
    method: fc.constant('POST'),
    path: fc.constant('nodes/create'),
    kind: fc.constantFrom('reset' as const, 'commit-then-fail' as const),
    times: fc.integer({ min: 1, max: 2 }),
  }),
  fc.record({ method: fc.constant('POST'), path: fc.constant('nodes/create'), kind: fc.constant('commit-then-fail' as const), status: fc.constant(500) }),
  fc.record({ method: fc.constant('POST'), path: fc.constant('nodes/terminate'), kind: fc.constantFrom('reset' as const, 'commit-then-fail' as const, 'status' as const) }),
  fc.record({
    method: fc.constant('POST'),
    path: fc.constantFrom('nodes/create', 'nodes/terminate'),
    kind: fc.constant('throttle' as const),
    retryAfterSec: fc.constantFrom(1, 30),
    times: fc.integer({ min: 1, max: 2 }),
  }),
  // A 429 storm: every call throttled for a while.
  fc.record({ kind: fc.constant('throttle' as const), retryAfterSec: fc.constantFrom(1, 10), times: fc.integer({ min: 5, max: 15 }) }),
  fc.record({
    method: fc.constant('GET'),
    path: fc.constant('/nodes'),
    kind: fc.constant('throttle' as const),
    retryAfterSec: fc.constant(1),
    times: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({ method: fc.constant('GET'), path: fc.constant('/nodes'), kind: fc.constant('status' as const), status: fc.constant(503), times: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ method: fc.constant('GET'), path: fc.constant('/status'), kind: fc.constant('status' as const), status: fc.constant(500), times: fc.integer({ min: 1, max: 6 }) }),
);

const ondemandNodes = (sc: Scenario): number =>
  sc.requests
    .flatMap((r) => r.demands)
    .filter((d) => d.nodearray === 'ondemand')
    .reduce((n, d) => n + d.count, 0);

const scenario: fc.Arbitrary<Scenario> = fc
  .record({
    seed: fc.integer(),
    requests: fc.array(fc.record({ demands: fc.array(demand, { minLength: 1, maxLength: 2 }), viaHttp: fc.boolean(), duplicate: fc.boolean(), callback: fc.boolean() }), {
      minLength: 1,
      maxLength: 4,
    }),
    crashRate: fc.constantFrom(0, 0.15, 0.3),
    dupRate: fc.constantFrom(0, 0.2),
    faults: fc.array(fc.record({ atStep: fc.integer({ min: 0, max: 12 }), fault }), { maxLength: 4 }),
    partialGang: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
    failNext: fc.constantFrom(0, 0, 1),
    hurt: fc.oneof(
      { weight: 3, arbitrary: fc.constant<Scenario['hurt']>([]) },
      {
        weight: 1,
        arbitrary: fc.array(fc.record({ atStep: fc.integer({ min: 0, max: 10 }), kind: fc.constantFrom('fail' as const, 'hold' as const) }), { minLength: 1, maxLength: 2 }),
      },
    ),
    lagMs: fc.constantFrom(0, 0, 3_000),
    forgetAtStep: fc.option(fc.integer({ min: 0, max: 15 }), { nil: null, freq: 3 }),
    pairs: fc.boolean(),
    // With a window the two runs of a pair join one batch create (real time: the window is short).
    createWindowMs: fc.constantFrom(0, 25, 25),
    lastDelivery: fc.boolean(),
    // Half the runs cap tenant cfd (every even request) at 2 HC44rs' or 2 HB120rs' worth of cores
    tenantCapCores: fc.option(fc.constantFrom(88, 100, 240), { nil: null }),
  })
  // Within capacity: ondemand takes 3 F32s_v2 and 11 HC44rs but at most 500 cores together.
  // CycleCloud faults make a request wait, never fail a delivery, so any number may be armed; a
  // delivery fails at most once by an injected crash, so the test never poisons a message by itself.
  .filter((sc) => ondemandNodes(sc) <= 8);

const ALIVE_AFTER_FINAL = new Set(['Ready', 'Failed']);

/** Every property of the promise; returns the first broken one in words (with the run's trace for context). */
function check(sc: Scenario, out: RunOutcome): string | null {
  if (sc.tenantCapCores && out.tenantPeakCores > sc.tenantCapCores) return `tenant cfd held ${out.tenantPeakCores} cores on hpc, over its cap of ${sc.tenantCapCores}`;
  const nodesById = new Map(out.simNodes.map((n) => [n.NodeId, n]));
  const creates = out.creates;
  for (const e of out.entries) {
    const r = e.record;
    const id = r.requestId;
    if (!['fulfilled', 'partially_fulfilled', 'failed', 'rejected'].includes(r.state)) return `${id} is ${r.state}, not final`;
    // Never final while a create of its may exist untracked.
    const unresolved = e.attempts.find((a) => a.state === 'intent' || a.state === 'unknown');
    if (unresolved) return `${id} is ${r.state} while its create ${unresolved.cycleCloudRequestId} is still ${unresolved.state}`;
    // One create per CycleCloud request id, and every create in CycleCloud is one the ledger accepted.
    const mine = creates.filter((c) => c.requestId?.startsWith(`${id}-g`));
    for (const c of mine) {
      const a = e.attempts.find((x) => x.cycleCloudRequestId === c.requestId);
      if (!a) return `${id}: CycleCloud has create ${c.requestId} the ledger never attempted`;
      // The operation id is known only from the create's own answer; after a lost answer it is null
      // and the operation is followed by its request id.
      if (a.state !== 'accepted' || (a.operationId !== null && c.nodeIds.length > 0 && a.operationId !== c.operationId))
        return `${id}: create ${c.requestId} is ${a.state}/${a.operationId} in the ledger, ${c.operationId} in CycleCloud`;
    }
    // No two creates that made nodes under one request id. (A create that added nothing, whose id
    // CycleCloud then forgot, is rightly sent again: nodes exist once either way.)
    const byCc = new Map<string, number>();
    for (const c of mine) if (c.nodeIds.length > 0) byCc.set(c.requestId!, (byCc.get(c.requestId!) ?? 0) + 1);
    for (const [cc, n] of byCc) if (n > 1) return `${id}: ${n} creates under ${cc}`;
    // The record tells the truth about every node CycleCloud still has for the request.
    const simMine = mine
      .flatMap((c) => c.nodeIds)
      .map((nid) => nodesById.get(nid))
      .filter((n) => n !== undefined);
    for (const n of simMine) {
      if (!ALIVE_AFTER_FINAL.has(n.Status ?? '')) return `${id}: node ${n.Name} is ${n.Status} in CycleCloud after the request ended`;
      // By id: CycleCloud gives a removed node's name to the next node it creates.
      const inRecord = r.nodes.find((x) => x.id === n.NodeId) ?? r.nodes.find((x) => x.name === n.Name && !x.id);
      if (!inRecord) return `${id}: orphan node ${n.Name} (${n.Status}) is not in the record`;
      if (n.Status === 'Ready' && inRecord.status !== 'Ready') return `${id}: node ${n.Name} is Ready in CycleCloud but ${inRecord.status} in the record`;
    }
    for (const x of r.nodes) {
      if (x.status !== 'Ready') continue;
      const n = simMine.find((y) => (x.id ? y.NodeId === x.id : y.Name === x.name));
      if (n?.Status !== 'Ready') return `${id}: the record says ${x.name} is Ready, CycleCloud says ${n?.Status ?? 'gone'}`;
    }
    const request = sc.requests[Number(id.slice('chaos-'.length))]!;
    for (const d of r.demands) {
      const readyNodes = simMine.filter((n) => n.Status === 'Ready' && r.nodes.find((x) => x.id === n.NodeId)?.demand === d.index);
      if (d.ready !== readyNodes.length) return `${id}: demand ${d.index} says ready ${d.ready}, CycleCloud has ${readyNodes.length}`;
      if (r.state === 'fulfilled' && d.ready !== d.requested) return `${id} fulfilled with demand ${d.index} ready ${d.ready} of ${d.requested}`;
      const colocated = request.demands[d.index]?.colocated === true;
      const groups = new Set(readyNodes.map((n) => n.PlacementGroupId ?? null));
      if (colocated && groups.size > 1) return `${id}: colocated demand ${d.index} spans placement groups ${[...groups].join(', ')}`;
      if (colocated && readyNodes.length > 0 && readyNodes.length < d.requested) return `${id}: colocated demand ${d.index} keeps a partial gang of ${readyNodes.length}`;
      if (colocated && groups.has(null) && readyNodes.length > 0) return `${id}: colocated demand ${d.index} has nodes outside any placement group`;
    }
    // Every final request with a callbackUrl was called back with its final record.
    if (request.callback) {
      const last = out.callbacks.filter((c) => c.requestId === id).at(-1);
      if (!last) return `${id} ended ${r.state} but its callback never came`;
      // (Node statuses may still change after the callback, e.g. compensated nodes finishing their terminate.)
      if (last.state !== r.state) return `${id}: the last callback said ${last.state}, the record ${r.state}`;
    }
    // A demand that cannot be placed never is; otherwise, unless a node was hurt on purpose,
    // capacity is there and every request is fulfilled.
    // Under a cap, cfd's requests (the even ones) may wait until their deadline or be rejected, and
    // say so; every other request is served as if cfd had no cap (another tenant is unaffected).
    const capped = !!sc.tenantCapCores && Number(id.slice('chaos-'.length)) % 2 === 0;
    const words = `${r.reason ?? ''} ${r.demands.map((d) => d.reason ?? '').join(' ')}`;
    if (request.demands.some(impossible)) {
      if (r.state === 'fulfilled') return `${id} fulfilled a demand that cannot be placed`;
    } else if (capped) {
      if (r.state === 'rejected' && !/tenant cfd may use at most/.test(words)) return `${id} (cfd) ended rejected (${words.trim()}) but not for its cap`;
    } else if (sc.failNext === 0 && out.hurtNodes.length === 0 && r.state !== 'fulfilled')
      return `${id} ended ${r.state} (${r.reason ?? r.demands.map((d) => d.reason).join('; ')}) although capacity was there`;
  }
  // No over-ask: with the scaler the only actor, every create got all it asked for (except the
  // partial add the scenario forces), and no bucket went into capacity backoff by the scaler's own doing.
  if (sc.partialGang === null) {
    for (const a of out.createAnswers) {
      const asked = a.asked.reduce((x, y) => x + y, 0);
      const added = a.added.reduce((x, y) => x + y, 0);
      if (added < asked) return `over-ask: create ${a.requestId} asked ${asked}, CycleCloud had room for ${added}`;
    }
    if ((out.counters.overAsk ?? 0) > 0) return `over-ask counter is ${out.counters.overAsk}`;
    if (sc.failNext === 0 && out.hurtNodes.length === 0 && out.capacityFailures > 0) return `${out.capacityFailures} bucket(s) put into capacity backoff with capacity to spare`;
  }
  // No node the simulator holds belongs to nobody.
  const known = new Set(out.entries.flatMap((e) => e.record.nodes.map((n) => n.id)));
  for (const n of out.simNodes) if (!known.has(n.NodeId ?? null)) return `orphan node ${n.Name} (${n.Status}) in no record`;
  if (out.poisoned.length) return `${out.poisoned.length} message(s) poisoned`;
  return null;
}

/** Counterexamples chaos found, kept as fixed cases (each with what broke and how it was fixed). */
const regressions = JSON.parse(readFileSync(new URL('./regressions.json', import.meta.url), 'utf8')) as { why: string; scenario: Scenario }[];

describe('chaos counterexamples found earlier stay fixed', () => {
  it.each(regressions.map((r) => [r.why, r.scenario] as const))(
    '%s',
    async (_why, sc) => {
      const out = await runScenario(inject('storageConnectionString'), `c${randomBytes(5).toString('hex')}`, sc);
      const broken = check(sc, out);
      expect(broken, broken ? out.log.slice(-40).join('\n') : '').toBeNull();
    },
    120_000,
  );
});

describe('exactly once through the real stack, under chaos', () => {
  it('every request ends final and truthful; no duplicate create; no orphan node; nothing poisoned', async () => {
    const conn = inject('storageConnectionString');
    const totals = { runs: 0, crashes: 0, steps: 0, batches: 0, capped: 0, capBound: 0, atCap: 0 };
    await fc.assert(
      fc.asyncProperty(process.env.CHAOS_SCENARIO ? fc.constant(JSON.parse(process.env.CHAOS_SCENARIO) as Scenario) : scenario, async (sc) => {
        // Prepare
        const prefix = `c${randomBytes(5).toString('hex')}`;
        // Act
        const out = await runScenario(conn, prefix, sc);
        totals.runs += 1;
        totals.crashes += out.crashes;
        totals.steps += out.steps;
        totals.batches += new Set(out.creates.flatMap((c) => (c.batch && c.nodeIds.length > 0 ? [c.batch] : []))).size;
        if (sc.tenantCapCores) {
          totals.capped += 1;
          // The cap bound something: a cfd request waited or was refused for it at some point
          if (out.entries.some((e) => JSON.stringify(e).includes('tenant cfd'))) totals.capBound += 1;
          if (out.tenantPeakCores === sc.tenantCapCores) totals.atCap += 1;
        }
        // Assess
        const broken = check(sc, out);
        if (broken) {
          // The timer's quiet ticks say nothing; the rest of the trace is the story of the run.
          const tail = out.log
            .filter((l) => !l.endsWith('timer ran'))
            .slice(-80)
            .join('\n');
          if (process.env.CHAOS_TRACE)
            writeFileSync(process.env.CHAOS_TRACE, `${JSON.stringify(sc)}\n${out.log.join('\n')}\n${JSON.stringify(out.entries, null, 1)}\n${JSON.stringify(out.simNodes)}\n`);
          throw new Error(`${broken}\n(steps ${out.steps}, crashes ${out.crashes}, virtual ${Math.round(out.virtualMs / 1000)} s)\n${tail}`);
        }
        if (process.env.CHAOS_DEBUG_SUMMARY === '1')
          console.log(
            JSON.stringify({
              steps: out.steps,
              crashes: out.crashes,
              virtualS: Math.round(out.virtualMs / 1000),
              states: out.entries.map((e) => e.record.state),
              hurt: out.hurtNodes,
              callbacks: out.callbacks.length,
              nodes: out.simNodes.length,
              faults: sc.faults.length,
              partialGang: sc.partialGang,
              failNext: sc.failNext,
            }),
          );
        expect(broken).toBeNull();
      }),
      {
        numRuns: Number(process.env.CHAOS_RUNS ?? 200),
        ...(process.env.CHAOS_SEED ? { seed: Number(process.env.CHAOS_SEED) } : {}),
        ...(process.env.CHAOS_PATH ? { path: process.env.CHAOS_PATH } : {}),
        endOnFailure: process.env.CHAOS_SHRINK !== '1',
      },
    );
    // The chaos really happened: workers died between steps and the pump did real work.
    expect(totals.crashes).toBeGreaterThan(0);
    expect(totals.steps).toBeGreaterThan(totals.runs * 3);
    // And creates were batched: some CycleCloud creates carried the sets of two requests.
    if (totals.runs >= 50) expect(totals.batches).toBeGreaterThan(0);
    // And tenant caps were tried where they bind: runs in which cfd was held back, and ran up to its cap exactly
    if (totals.runs >= 50) expect(Math.min(totals.capBound, totals.atCap)).toBeGreaterThan(0);
    console.log(
      `chaos: ${totals.runs} runs, ${totals.crashes} crashes, ${totals.batches} batch creates; tenant cap in ${totals.capped} runs, bound in ${totals.capBound}, reached exactly in ${totals.atCap}`,
    );
  }, 900_000);
});
