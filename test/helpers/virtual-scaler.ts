/**
 * A scaler and a simulator on one virtual clock, over azurite, with virtual queues (test/chaos/
 * harness.ts): nothing runs unless the test delivers a message or runs the timer, and time moves
 * only when the test moves it. For integration tests of hours of virtual time (cost, fair share).
 */
import { inject } from 'vitest';
import { createServices, type Services } from '../../src/app/services.ts';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { Storage } from '../../src/platform/storage.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { CrashSwitch, VirtualClock, VirtualQueues, chaosCycleCloud, chaosStorage, decodeBody } from '../chaos/harness.ts';
import { freshPrefix, scalerEnv } from './scaler-env.ts';

export interface VirtualScaler {
  sim: SimulatorHandle;
  s: Services;
  clock: VirtualClock;
  queues: VirtualQueues;
  /** Delivers every message visible now, without moving the clock; a handler that throws makes its message visible again 2 s later. */
  deliverVisible(): Promise<void>;
  close(): Promise<void>;
}

export async function virtualScaler(tag: string, startMs: number, env: Record<string, string>): Promise<VirtualScaler> {
  const clock = new VirtualClock(startMs);
  const queues = new VirtualQueues(clock);
  const crash = new CrashSwitch();
  const sim = await startSimulator({ port: 0, stepMs: 2_000, now: clock.now });
  const client = createCycleCloudClient({
    baseUrl: sim.url,
    credentials: staticCredentialProvider({ username: sim.username, password: sim.password }),
    now: clock.now,
    sleep: async () => {},
  });
  const connection = inject('storageConnectionString');
  const s = await createServices(scalerEnv(sim, freshPrefix(tag), { CREATE_WINDOW_MS: '0', LOG_LEVEL: 'error', ...env }, connection), {
    mode: 'local',
    now: clock.now,
    logger: silentLogger,
    storage: chaosStorage(Storage.fromConnectionString(connection), queues, crash),
    cyclecloud: chaosCycleCloud(client, crash),
    fastPathConcurrency: 0,
    governorWaitMs: 0,
  });
  const names = s.names;
  const handlers: Record<string, (body: unknown, n: number, id: string) => Promise<unknown>> = {
    [names.scaleQueue]: (body, n, id) => s.pipeline.handle(body, { messageId: id, dequeueCount: n, maxDequeueCount: 50, poisonQueue: names.scalePoisonQueue }, silentLogger),
    [names.trackerQueue]: (body, n) => s.tracker.handleTrackerMessage(body, { dequeueCount: n }, silentLogger),
    [names.callbackQueue]: async () => undefined,
  };
  return {
    sim,
    s,
    clock,
    queues,
    async deliverVisible() {
      for (let m = queues.visible()[0]; m; m = queues.visible()[0]) {
        m.dequeueCount += 1;
        try {
          await handlers[m.queue]!(decodeBody(m), m.dequeueCount, `m${m.seq}`);
          queues.remove(m);
        } catch {
          m.visibleAtMs = clock.nowMs + 2_000;
        }
      }
    },
    async close() {
      await s.close();
      await sim.close();
    },
  };
}
