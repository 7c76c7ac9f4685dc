/**
 * One chaos run: builds the real stack over azurite and a simulator on a virtual clock, submits a
 * scenario's requests, pumps the queues and the snapshot timer with injected crashes, duplicate
 * deliveries and CycleCloud faults until every request is final (or a bound is hit), then reports
 * what the simulator and the ledger say for the properties to check.
 */
import { createServices, type Services } from '../../src/app/services.ts';
import { runSnapshotJob } from '../../src/app/jobs.ts';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { silentLogger, createLogger, type Logger } from '../../src/platform/log.ts';
import { Storage, encodeQueueMessage } from '../../src/platform/storage.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { isFinal } from '../../src/ledger/record.ts';
import { startSimulator, type FaultSpec, type SimulatorHandle } from '../../src/simulator/server.ts';
import type { NodeRecord } from '../../src/cyclecloud/schemas.ts';
import { CREATE_TAG, TENANT_TAG } from '../../src/cyclecloud/tags.ts';
import { startReceiver } from '../tracking/receiver.ts';
import { CrashSwitch, InjectedCrash, VirtualClock, VirtualQueues, chaosCycleCloud, chaosStorage, decodeBody, prng, type VirtualMessage } from './harness.ts';
import { scalerEnv } from '../helpers/scaler-env.ts';

export interface ScenarioDemand {
  nodearray: 'ondemand' | 'mpi';
  count: number;
  machineTypes?: readonly string[];
  colocated?: boolean;
}

export interface Scenario {
  seed: number;
  requests: { demands: ScenarioDemand[]; viaHttp: boolean; duplicate: boolean; callback: boolean }[];
  /** Probability that a handler invocation dies at a random I/O step. */
  crashRate: number;
  /** Probability that a completed message is delivered again (its delete was lost). */
  dupRate: number;
  /** Simulator faults armed when the pump reaches `atStep`. */
  faults: { atStep: number; fault: FaultSpec }[];
  /** The first create placed in the mpi bucket adds only this many nodes (a partial gang). */
  partialGang: number | null;
  /** The next N nodes created fail during boot (a failed node on purpose). */
  failNext: number;
  /** When the pump reaches `atStep`, a booting node (if any) fails, or hangs until its boot deadline. */
  hurt: { atStep: number; kind: 'fail' | 'hold' }[];
  /** Node lists (E1 nodes, E2) lag a create by this long (the reference leaves it open). */
  lagMs: number;
  /** CycleCloud forgets every request id when the pump reaches this step (null: never). */
  forgetAtStep: number | null;
  /** Two workers run two different scale messages at once whenever two are visible (same buckets). */
  pairs: boolean;
  /** The first delivery of request 0 is its last one (dequeueCount = maxDequeueCount) and its create's answer is lost. */
  lastDelivery: boolean;
  /** CREATE_WINDOW_MS: 0 = each request creates alone; more = the pairs' creates may join one batch. */
  createWindowMs: number;
  /** When set, tenant `cfd` may hold this many cores on hpc and every even request is cfd's. */
  tenantCapCores?: number | null;
}

export interface RunOutcome {
  entries: LedgerEntry[];
  /** Every node the simulator still has (Terminated ones are gone). */
  simNodes: NodeRecord[];
  /** CycleCloud's creates, one per member create id (a batch's split by its nodes' ccscale-create tags). */
  creates: { requestId: string | undefined; operationId: string; nodeIds: string[]; batch: string | undefined }[];
  /** Create calls CycleCloud answered, with what each set asked and got. */
  createAnswers: { requestId: string; asked: number[]; added: number[] }[];
  /** The scaler's counters at the end (overAsk, orphan nodes). */
  counters: Record<string, number>;
  /** Capacity failures the scaler remembered. */
  capacityFailures: number;
  poisoned: VirtualMessage[];
  /** Callback POSTs received: request id and the record's state and updatedAt. */
  callbacks: { requestId: string; state: string; updatedAt: string }[];
  /** Nodes hurt on purpose (failed or held). */
  hurtNodes: string[];
  /** The most cores tenant cfd's nodes held in the simulator at any step (0 without a cap). */
  tenantPeakCores: number;
  steps: number;
  crashes: number;
  virtualMs: number;
  log: string[];
}

const START_MS = Date.parse('2026-11-28T00:00:00.000Z');
const TIMER_EVERY_MS = 60_000;
const MAX_STEPS = 600;
const MAX_VIRTUAL_MS = 3 * 3600_000;
const RETRY_AFTER_THROW_MS = 2_000;
const REDELIVER_AFTER_CRASH_MS = 30_000;
const MAX_DEQUEUE = 5;
const ORPHAN_GRACE_MINUTES = 5;

export async function runScenario(connectionString: string, prefix: string, sc: Scenario): Promise<RunOutcome> {
  const clock = new VirtualClock(START_MS);
  const random = prng(sc.seed);
  const crash = new CrashSwitch();
  const queues = new VirtualQueues(clock);
  const trace: string[] = [];
  const debug = process.env.CHAOS_DEBUG === '1';
  const logger: Logger = debug ? createLogger() : silentLogger;
  const say = (line: string): void => {
    trace.push(`[${((clock.nowMs - START_MS) / 1000).toFixed(1)}s] ${line}`);
  };

  const sim: SimulatorHandle = await startSimulator({ port: 0, stepMs: 3_000, now: clock.now, listLagMs: sc.lagMs });
  const receiver = await startReceiver();
  const hurtNodes: string[] = [];
  // Jitter and retry backoff come from Math.random: seeded so the run repeats.
  const realRandom = Math.random;
  Math.random = random;
  let s: Services | undefined;
  try {
    const client = createCycleCloudClient({
      baseUrl: sim.url,
      credentials: staticCredentialProvider({ username: sim.username, password: sim.password }),
      now: clock.now,
      // GET retries wait in virtual time: nothing real to wait for.
      sleep: async () => {},
      logger,
    });
    const storage = chaosStorage(Storage.fromConnectionString(connectionString), queues, crash);
    s = await createServices(
      scalerEnv(
        sim,
        prefix,
        {
          ORPHAN_GRACE_MINUTES: String(ORPHAN_GRACE_MINUTES),
          LOG_LEVEL: debug ? 'debug' : 'error',
          CREATE_WINDOW_MS: String(sc.createWindowMs),
          CREATE_WINDOW_MAX_MS: String(Math.max(sc.createWindowMs, 200)),
          ...(sc.tenantCapCores ? { TENANTS: JSON.stringify({ tenants: { cfd: { maxCores: { hpc: sc.tenantCapCores } }, default: {} } }) } : {}),
        },
        connectionString,
      ),
      // The pump decides who runs when: no work started behind its back (the HTTP fast path).
      // The governor's slots wait in real time: on a virtual clock a slot left by a crashed worker
      // only expires as the pump advances, so a call that finds none taken waits as a request.
      { mode: 'local', now: clock.now, logger, storage, cyclecloud: chaosCycleCloud(client, crash), fastPathConcurrency: 0, governorWaitMs: 0 },
    );
    const svc = s;
    const names = svc.names;

    if (sc.partialGang !== null) sim.limitNextCreate('hpc', 'mpi', 'Standard_HB120rs_v3', sc.partialGang);
    if (sc.failNext > 0) sim.failNextNodes('hpc', sc.failNext);

    const ids: string[] = [];
    for (const [i, r] of sc.requests.entries()) {
      const requestId = `chaos-${i}`;
      ids.push(requestId);
      const message: ScaleRequest = {
        kind: 'scale',
        requestId,
        cluster: 'hpc',
        demands: r.demands.map((d) => ({ ...d, ...(d.colocated ? { jobId: `job-${i}` } : {}) })),
        ...(r.callback ? { callbackUrl: receiver.url } : {}),
        ...(sc.tenantCapCores && i % 2 === 0 ? { tenant: 'cfd' } : {}),
      } as ScaleRequest;
      if (r.viaHttp) {
        // The HTTP worker may die too, between the ledger write and the enqueue: the caller got no
        // answer and does not retry here, so only the snapshot timer's sweeper can revive it.
        if (random() < sc.crashRate) crash.arm(1 + Math.floor(random() * 3), random() < 0.5);
        try {
          await svc.pipeline.submitRequest(message);
        } catch (error) {
          say(`HTTP submit of ${requestId} died: ${(error as Error).message}`);
        }
        crash.disarm();
      } else queues.send(names.scaleQueue, encodeQueueMessage(message));
      if (r.duplicate) queues.send(names.scaleQueue, encodeQueueMessage(message));
    }

    const handlers: Record<string, (body: unknown, m: VirtualMessage) => Promise<unknown>> = {
      [names.scaleQueue]: (body, m) =>
        svc.pipeline.handle(body, { messageId: `m${m.seq}`, dequeueCount: m.dequeueCount, maxDequeueCount: MAX_DEQUEUE, poisonQueue: names.scalePoisonQueue }, logger),
      [names.trackerQueue]: (body, m) => svc.tracker.handleTrackerMessage(body, { dequeueCount: m.dequeueCount }, logger),
      [names.callbackQueue]: (body, m) => svc.callbacks.handleCallbackMessage(body, { dequeueCount: m.dequeueCount }, logger),
    };

    const allFinal = async (): Promise<boolean> => {
      for (const id of ids) {
        const e = await svc.pipeline.ledger.get(id);
        if (!e || !isFinal(e)) return false;
      }
      // Quiet means no message left either: one still to be redelivered may have work to finish
      // (a callback to queue, a tracker to start) for a request that already looks final.
      if (queues.messages.length > 0) return false;
      return (await svc.tracker.store.listActive('hpc')).length === 0;
    };

    /** Arms a crash for the coming invocation with probability `crashRate`, at most once per message. */
    const crashes = new Map<number, number>();
    let crashCount = 0;
    const armFor = (key: number): void => {
      if ((crashes.get(key) ?? 0) < 1 && random() < sc.crashRate) {
        crash.arm(1 + Math.floor(random() * 20), random() < 0.5);
      } else crash.arm(0, false);
    };

    let nextTimerMs = START_MS + TIMER_EVERY_MS;
    const pendingFaults = [...sc.faults].sort((a, b) => a.atStep - b.atStep);
    const pendingHurt = [...sc.hurt].sort((a, b) => a.atStep - b.atStep);
    const duplicated = new Set<number>();
    let lastDeliveryDone = false;
    let lastDeliverySeq = -1;
    const concurrent = process.env.CHAOS_CONCURRENT === '1';
    let steps = 0;
    // cfd's cores in CycleCloud, sampled at every step: its cap must hold at every moment, not only at the end.
    const vcpus: Record<string, number> = { Standard_F32s_v2: 32, Standard_HC44rs: 44, Standard_HB120rs_v3: 120 };
    let tenantPeakCores = 0;
    const sampleTenant = (): void => {
      if (!sc.tenantCapCores) return;
      const cores = sim
        .nodes('hpc')
        .filter((n) => (n.Tags as Record<string, string> | undefined)?.[TENANT_TAG] === 'cfd')
        .reduce((c, n) => c + (vcpus[n.MachineType ?? ''] ?? 1000), 0);
      tenantPeakCores = Math.max(tenantPeakCores, cores);
    };
    for (; steps < MAX_STEPS && clock.nowMs - START_MS < MAX_VIRTUAL_MS; steps++) {
      sampleTenant();
      while (pendingFaults.length && pendingFaults[0]!.atStep <= steps) {
        const f = pendingFaults.shift()!;
        sim.faults.add(f.fault);
        say(`fault armed ${JSON.stringify(f.fault)}`);
      }
      if (sc.forgetAtStep !== null && steps === sc.forgetAtStep) {
        sim.forgetRequestIds();
        say('CycleCloud forgot every request id');
      }
      while (pendingHurt.length && pendingHurt[0]!.atStep <= steps) {
        const h = pendingHurt.shift()!;
        const booting = sim
          .nodes('hpc')
          .filter((n) => n.Status === 'Acquiring' || n.Status === 'Preparing')
          .sort((a, b) => a.Name.localeCompare(b.Name));
        const victim = booting[Math.floor(random() * booting.length)];
        if (!victim) continue;
        if (h.kind === 'fail') sim.failNode('hpc', victim.Name);
        else sim.holdNode('hpc', victim.Name);
        hurtNodes.push(victim.Name);
        say(`${h.kind} node ${victim.Name}`);
      }
      const visible = queues.visible();
      if (visible.length === 0) {
        if (await allFinal()) break;
        const nextMs = Math.min(queues.nextVisibleAtMs(), nextTimerMs);
        clock.advanceTo(nextMs);
        if (clock.nowMs >= nextTimerMs) {
          nextTimerMs = clock.nowMs + TIMER_EVERY_MS;
          armFor(-1);
          try {
            await runSnapshotJob(svc, { isPastDue: false }, logger);
            say('timer ran');
          } catch (error) {
            say(`timer failed: ${(error as Error).message}`);
          }
          if (crash.dead) crashCount++;
          crash.disarm();
        }
        continue;
      }
      // Any visible message may be next: queues do not promise order.
      const m = visible[Math.floor(random() * visible.length)]!;
      const body = decodeBody(m);
      const lastTry = sc.lastDelivery && !lastDeliveryDone && m.queue === names.scaleQueue && (body as { requestId?: string }).requestId === 'chaos-0';
      if (lastTry) {
        // Earlier deliveries failed (not seen here): this one is the last, and the create's answer is lost.
        // (The host would poison any further delivery unread, so this message is spared crashes and lost deletes.)
        lastDeliveryDone = true;
        lastDeliverySeq = m.seq;
        m.dequeueCount = MAX_DEQUEUE - 1;
        sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'commit-then-fail', status: 500 });
        say('last delivery of chaos-0, its create answer lost');
      }
      m.dequeueCount += 1;
      let threw: unknown;
      let result: unknown;
      // Another worker takes a different scale message at the same time (same buckets, no crash).
      const partner =
        sc.pairs && !lastTry && m.queue === names.scaleQueue
          ? visible.find(
              (x) =>
                x !== m &&
                x.seq !== lastDeliverySeq &&
                x.queue === names.scaleQueue &&
                decodeBody(x) &&
                (decodeBody(x) as { requestId?: string }).requestId !== (body as { requestId?: string }).requestId,
            )
          : undefined;
      if (partner) {
        crash.arm(0, false);
        partner.dequeueCount += 1;
        const both = await Promise.allSettled([handlers[m.queue]!(body, m), handlers[partner.queue]!(decodeBody(partner), partner)]);
        if (both[1].status === 'fulfilled') queues.remove(partner);
        else partner.visibleAtMs = clock.nowMs + RETRY_AFTER_THROW_MS;
        if (both[0].status === 'rejected') threw = both[0].reason;
        else result = both[0].value;
        say(`pair #${m.seq} with #${partner.seq}`);
      } else if (concurrent && random() < 0.25) {
        // Two workers hold the same message at once (its visibility ran out mid-run). Timing
        // decides the interleaving, so this mode is for hunting, not for the committed runs.
        crash.arm(0, false);
        // The same message twice, or it and another one (a poll racing a continue of one request).
        const other = visible.find((x) => x !== m && random() < 0.5);
        const second = other ? () => handlers[other.queue]!(decodeBody(other), other) : () => handlers[m.queue]!(structuredClone(body), m);
        const both = await Promise.allSettled([handlers[m.queue]!(body, m), second()]);
        if (other) {
          // Completed alongside (or left for redelivery when it failed).
          if (both[1].status === 'fulfilled') queues.remove(other);
          else other.visibleAtMs = clock.nowMs + RETRY_AFTER_THROW_MS;
          other.dequeueCount += 1;
        }
        const failed = both.find((b) => b.status === 'rejected');
        if (failed) threw = failed.reason;
        else result = (both[0] as PromiseFulfilledResult<unknown>).value;
        say(`concurrent pair on #${m.seq}`);
      } else {
        if (m.seq === lastDeliverySeq) crash.arm(0, false);
        else armFor(m.seq);
        try {
          result = await handlers[m.queue]!(body, m);
        } catch (error) {
          threw = error;
        }
      }
      const died = crash.dead;
      crash.disarm();
      const label = `${m.queue.replace(prefix, '')} #${m.seq} (try ${m.dequeueCount}) ${JSON.stringify(body).slice(0, 120)}`;
      if (died) {
        crashCount++;
        crashes.set(m.seq, (crashes.get(m.seq) ?? 0) + 1);
        say(`CRASH in ${label}: ${threw instanceof InjectedCrash ? threw.message : `handler swallowed it, then ${threw ? (threw as Error).message : 'returned'}`}`);
        m.visibleAtMs = clock.nowMs + REDELIVER_AFTER_CRASH_MS;
      } else if (threw !== undefined) {
        say(`threw in ${label}: ${(threw as Error).message}`);
        m.visibleAtMs = clock.nowMs + RETRY_AFTER_THROW_MS;
      } else {
        say(`ok ${label} → ${JSON.stringify(result)?.slice(0, 100)}`);
        // A lost delete: the message comes back once more (not again and again, which would end in
        // the poison queue by the test's doing).
        if (!duplicated.has(m.seq) && m.seq !== lastDeliverySeq && random() < sc.dupRate) {
          duplicated.add(m.seq);
          m.visibleAtMs = clock.nowMs + Math.floor(random() * 3000);
        } else queues.remove(m);
        continue;
      }
      if (m.dequeueCount >= MAX_DEQUEUE) {
        queues.remove(m);
        queues.poisoned.push(m);
        say(`POISONED ${label}`);
      }
    }

    // Past the orphan grace period, the snapshot timer has adopted or terminated every node no record
    // accounts for; then let terminating nodes finish, and look.
    for (let i = 0; i < 2; i++) {
      clock.advanceTo(clock.nowMs + ORPHAN_GRACE_MINUTES * 60_000 + TIMER_EVERY_MS);
      try {
        await runSnapshotJob(svc, { isPastDue: false }, logger);
      } catch (error) {
        say(`final timer failed: ${(error as Error).message}`);
      }
    }
    clock.advanceTo(clock.nowMs + 10 * 3_000);
    // A batch create carries several requests' sets: each node's ccscale-create tag says whose it is.
    const memberOf = (nodeId: string, fallback: string | undefined): string | undefined => {
      const cc = sim.sim.tagsAtCreation(nodeId)?.[CREATE_TAG];
      return typeof cc === 'string' ? cc : fallback;
    };
    const answers = sim.calls
      .filter((c) => c.method === 'POST' && c.path.endsWith('/nodes/create') && c.status === 202)
      .map((c) => {
        const b = c.body as { requestId: string; sets: { count: number }[] };
        const op = sim.operations.find((o) => o.requestId === b.requestId);
        return { requestId: b.requestId, asked: b.sets.map((x) => x.count), added: [op?.nodeIds.length ?? 0] };
      });
    const creates = sim.operations
      .filter((o) => o.action === 'create')
      .flatMap((o) => {
        const byMember = new Map<string | undefined, string[]>();
        for (const nid of o.nodeIds) {
          const cc = memberOf(nid, o.requestId);
          byMember.set(cc, [...(byMember.get(cc) ?? []), nid]);
        }
        if (byMember.size === 0) byMember.set(o.requestId, []);
        return [...byMember].map(([requestId, nodeIds]) => ({ requestId, operationId: o.operationId, nodeIds, batch: o.requestId !== requestId ? o.requestId : undefined }));
      });
    const entries: LedgerEntry[] = [];
    for (const id of ids) {
      const e = await svc.pipeline.ledger.get(id);
      if (e) entries.push(e);
    }
    sampleTenant();
    return {
      entries,
      simNodes: sim.nodes('hpc'),
      creates,
      createAnswers: answers,
      counters: await svc.pipeline.state.counters(),
      capacityFailures: (await svc.capacity.active('hpc', START_MS)).length,
      poisoned: queues.poisoned,
      callbacks: receiver.received.map((r) => {
        const body = JSON.parse(r.body) as { requestId: string; state: string; updatedAt: string };
        return { requestId: body.requestId, state: body.state, updatedAt: body.updatedAt };
      }),
      hurtNodes,
      tenantPeakCores,
      steps,
      crashes: crashCount,
      virtualMs: clock.nowMs - START_MS,
      log: [
        ...trace,
        ...sim.calls
          .filter((c) => c.method === 'POST' || c.query.request_id)
          .map(
            (c) =>
              `[${((c.atMs - START_MS) / 1000).toFixed(1)}s] CycleCloud ${c.method} ${c.path}${c.query.request_id ? `?request_id=${c.query.request_id}` : ''} → ${c.status} ${c.method === 'POST' ? JSON.stringify((c.body as { requestId?: string })?.requestId ?? '') : ''}`,
          ),
      ],
    };
  } finally {
    Math.random = realRandom;
    await s?.close();
    await sim.close();
    await receiver.close();
  }
}
