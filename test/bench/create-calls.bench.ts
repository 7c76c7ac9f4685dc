/**
 * Create calls per request against the simulator over HTTP, for multi-demand requests delivered
 * under trouble: a third delivered twice, a third hit by commit-then-fail on the create, a third by
 * a connection reset before CycleCloud applied it. Goal: exactly 1 applied create per request
 * generation, and exactly the requested nodes.
 */
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { handleScaleQueueMessage, type IntakeDeps } from '../../src/requests/intake.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { startSimulator } from '../../src/simulator/server.ts';
import { toSnapshot } from '../../src/snapshots/snapshot.ts';
import { MemoryReservations, FakeCapacity, FakeQueue, FakeState, FakeTracker } from '../requests/fakes.ts';
import { MemoryLedger } from '../ledger/memory-ledger.ts';

// 9 × (3 mpi + 1 HC44rs) fits the default cluster (HC44rs holds 11), so every node can be created now.
const REQUESTS = 9;

export async function run(): Promise<object[]> {
  const handle = await startSimulator({ port: 0, stepMs: 50 });
  const cyclecloud = createCycleCloudClient({
    baseUrl: handle.url,
    credentials: staticCredentialProvider({ username: handle.username, password: handle.password }),
    retry: { maxRetries: 0 },
  });
  try {
    // A virtual offset: a request that waits (a reset answered by nothing yet) is woken as if its
    // delay had passed, without the bench sleeping.
    let skewMs = 0;
    const now = () => Date.now() + skewMs;
    const queue = new FakeQueue();
    const ledger = new MemoryLedger();
    const capacity = new FakeCapacity();
    const deps: IntakeDeps = {
      cyclecloud,
      ledger,
      reservations: new MemoryReservations(),
      snapshots: { getFresh: async (cluster) => toSnapshot(cluster, await cyclecloud.getClusterStatus(cluster), now()) },
      capacity,
      // Compensates a partial gang like the real tracker (it sends the terminate).
      tracker: new FakeTracker({ cyclecloud, ledger, capacity, now }),
      queue,
      state: new FakeState(),
      now,
    };
    let messageSeq = 0;
    let deliveries = 0;
    const deliver = async (m: unknown, dequeueCount = 1): Promise<void> => {
      deliveries++;
      try {
        await handleScaleQueueMessage(deps, m, { messageId: `bench-${++messageSeq}`, dequeueCount, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);
      } catch {
        await deliver(m, dequeueCount + 1); // the queue's redelivery
      }
      // The request's own wake-ups (it waited), delivered once their delay has passed.
      while (queue.sent.length > 0) {
        const next = queue.sent.shift()!;
        skewMs += next.visibilityDelayMs ?? 0;
        await deliver(next.body);
      }
    };

    let requested = 0;
    const startedAtMs = performance.now();
    for (let i = 0; i < REQUESTS; i++) {
      const m: ScaleRequest = {
        kind: 'scale',
        requestId: `bench-${i}`,
        cluster: 'hpc',
        demands: [
          { nodearray: 'mpi', count: 2, colocated: true },
          { nodearray: 'mpi', count: 1 },
          { nodearray: 'ondemand', count: 1, machineTypes: ['Standard_HC44rs'] },
        ],
      };
      requested += 4;
      if (i % 3 === 1) handle.sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'commit-then-fail' });
      if (i % 3 === 2) handle.sim.faults.add({ method: 'POST', path: 'nodes/create', kind: 'reset' });
      await deliver(m);
      if (i % 3 === 0) await deliver(m); // duplicate delivery
    }
    const elapsedMs = performance.now() - startedAtMs;

    const creates = handle.sim.calls.filter((c) => c.method === 'POST' && c.path.endsWith('/nodes/create'));
    const generations = new Set(creates.map((c) => (c.body as { requestId?: string }).requestId ?? ''));
    const applied = [...generations].map((id) => handle.sim.findOperations(id).filter((o) => o.action === 'create').length);
    // Requests 0, 3, 6 met no fault (only a duplicate delivery): their calls are the everyday number.
    const clean = [0, 3, 6].map((i) => creates.filter((c) => ((c.body as { requestId?: string }).requestId ?? '').startsWith(`bench-${i}-`)).length);
    const created = handle.sim.nodes('hpc').filter((n) => n.TargetState === 'Started').length;
    return [
      {
        bench: 'create_calls_per_request',
        requests: clean.length,
        note: 'multi-demand requests delivered twice, no CycleCloud fault',
        create_calls_per_request: Math.max(...clean),
        goal: 1,
      },
      {
        bench: 'create_calls_per_request_under_faults',
        requests: REQUESTS,
        demands_per_request: 3,
        deliveries,
        create_calls: creates.length,
        create_calls_per_request: Math.round((creates.length / REQUESTS) * 100) / 100,
        generations: generations.size,
        applied_creates_per_generation_min: Math.min(...applied),
        applied_creates_per_generation_max: Math.max(...applied),
        goal_applied_creates_per_generation: 1,
        nodes_requested: requested,
        nodes_created: created,
        mean_ms_per_request: Math.round((elapsedMs / REQUESTS) * 10) / 10,
      },
    ];
  } finally {
    await cyclecloud.close?.();
    await handle.close();
  }
}
