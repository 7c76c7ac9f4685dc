import { describe, expect, it } from 'vitest';
import { getHealth } from '../../src/http/routes.ts';
import { Health } from '../../src/http/schemas.ts';
import { fakeDeps, httpRequest, T0 } from './fakes.ts';

const healthOf = (res: { jsonBody?: unknown }) => Health.strict().parse(res.jsonBody);

describe('GET /api/health', () => {
  it('answers 200 ok with storage, snapshot ages, queue depth, poison and rejected counts', async () => {
    // Prepare
    const { deps, world } = fakeDeps({ configuredClusters: () => ['hpc', 'gpu'] });
    world.depths.set('scale-requests', 7);
    world.depths.set('scale-requests-poison', 2);
    world.counters = { rejectedMessages: 3, poisonedMessages: 2, orphanNodesAdopted: 1, orphanNodesTerminated: 4, overAsk: 5 };
    world.paused = true;
    // Act
    const res = await getHealth(deps, httpRequest('GET', '/api/health'));
    // Assess
    expect(res.status).toBe(200);
    expect(healthOf(res)).toEqual({
      status: 'ok',
      storage: { reachable: true },
      clusters: [
        // A configured cluster never snapshotted is listed and is not stale.
        { cluster: 'gpu', takenAt: null, ageSeconds: null, stale: false, consecutiveFailures: 0 },
        { cluster: 'hpc', takenAt: new Date(T0).toISOString(), ageSeconds: 30, stale: false, consecutiveFailures: 0 },
      ],
      queue: { name: 'scale-requests', depth: 7 },
      poison: { name: 'scale-requests-poison', count: 2 },
      rejectedMessages: 3,
      orphans: { adopted: 1, terminated: 4 },
      overAsk: 5,
      paused: true,
    });
  });

  it('shows the fleet-wide governor: paused until, creates and batches in flight, calls per minute', async () => {
    const view = {
      maxConcurrentCreates: 1,
      pausedUntil: '2026-12-07T02:00:30.000Z',
      pauseReason: 'CycleCloud answered 429 with Retry-After',
      clusters: [{ cluster: 'hpc', createsInFlight: 1, batchesInFlight: 1, createsPerMinute: 12 }],
      callsPerMinute: 40,
    };
    const asked: (readonly string[])[] = [];
    const governor = {
      view: async (clusters: readonly string[]) => {
        asked.push(clusters);
        return view;
      },
    };
    const { deps } = fakeDeps({ governor });
    const res = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(res.status).toBe(200);
    expect(healthOf(res).governor).toEqual(view);
    expect(asked).toEqual([['hpc']]);
    // An unreadable governor row shows as null
    const down = fakeDeps({ governor: { view: async () => Promise.reject(new Error('table down')) } });
    const body = healthOf(await getHealth(down.deps, httpRequest('GET', '/api/health')));
    expect(body.governor).toBeNull();
  });

  it('answers 503 degraded when a cluster snapshot is stale', async () => {
    const { deps, world } = fakeDeps();
    world.healths.set('hpc', { takenAt: new Date(T0).toISOString(), ageSeconds: 600, consecutiveFailures: 4, stale: true });
    const res = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(res.status).toBe(503);
    const body = healthOf(res);
    expect(body.status).toBe('degraded');
    expect(body.storage.reachable).toBe(true);
    expect(body.clusters).toEqual([expect.objectContaining({ cluster: 'hpc', stale: true, consecutiveFailures: 4 })]);
  });

  it('counts age beyond staleAfterMs as stale even without failures', async () => {
    const { deps, world } = fakeDeps({ staleAfterMs: 120_000 });
    world.nowMs = T0 + 121_000;
    const res = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(res.status).toBe(503);
    expect(healthOf(res).clusters[0]).toMatchObject({ ageSeconds: 121, stale: true });
  });

  it('answers 503 with storage unreachable when a storage call fails', async () => {
    const { deps } = fakeDeps({
      queueDepth: async () => {
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
    });
    const res = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(res.status).toBe(503);
    const body = healthOf(res);
    expect(body).toMatchObject({ status: 'degraded', storage: { reachable: false }, queue: { depth: null }, poison: { count: null } });
    expect(JSON.stringify(body)).not.toContain('ECONNREFUSED');
  });

  it('answers 503 within its timeout when storage hangs', async () => {
    const never = new Promise<never>(() => {});
    const { deps } = fakeDeps({ healthTimeoutMs: 50, state: { isPaused: () => never, setPaused: () => never, counters: () => never } });
    const res = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(res.status).toBe(503);
    expect(healthOf(res)).toMatchObject({ storage: { reachable: false }, paused: null, rejectedMessages: null, queue: { depth: 0 } });
  });

  it('reads an absent rejected counter as 0', async () => {
    const { deps } = fakeDeps();
    const res = await getHealth(deps, httpRequest('GET', '/api/health'));
    expect(healthOf(res).rejectedMessages).toBe(0);
  });
});
