/**
 * The request pipeline's dependencies over a running simulator (the real CycleCloud client over
 * HTTP) and azurite (ledger, reservations, snapshots, capacity memory), with fake tracker, queue and
 * state: what the pipeline tests against the simulator share.
 */
import type { Storage } from '../../src/platform/storage.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import type { startSimulator } from '../../src/simulator/server.ts';
import { SnapshotStore } from '../../src/snapshots/store.ts';
import { getFreshSnapshot } from '../../src/snapshots/capture.ts';
import { CapacityMemory } from '../../src/snapshots/capacity-store.ts';
import { handleScaleQueueMessage, type IntakeDeps } from '../../src/requests/intake.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { CapacityReservations } from '../../src/requests/reservations.ts';
import { uniqueNames } from '../helpers/names.ts';
import { FakeQueue, FakeState, FakeTracker } from './fakes.ts';

type Handle = Awaited<ReturnType<typeof startSimulator>>;
let seq = 0;

export async function simulatorDeps(handle: Handle, storage: Storage, extra: Partial<IntakeDeps> = {}) {
  const names = uniqueNames();
  await storage.ensure({ tables: [names.requestsTable, names.snapshotsTable, names.capacityTable, names.stateTable] });
  const now = () => Date.now();
  const cyclecloud = createCycleCloudClient({
    baseUrl: handle.url,
    credentials: staticCredentialProvider({ username: handle.username, password: handle.password }),
    retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 50 },
    headersTimeoutMs: 2000,
    bodyTimeoutMs: 2000,
  });
  const store = new SnapshotStore(storage, names, { now });
  const queue = new FakeQueue();
  const ledger = new RequestLedger({ storage, names, now });
  const capacity = new CapacityMemory(storage, names);
  const tracker = new FakeTracker({ cyclecloud, ledger, capacity, now });
  const deps: IntakeDeps = {
    cyclecloud,
    ledger,
    reservations: new CapacityReservations({ storage, names }),
    snapshots: { getFresh: (cluster, maxAgeMs) => getFreshSnapshot({ cyclecloud, store, logger: silentLogger, now }, cluster, maxAgeMs) },
    capacity,
    tracker,
    queue,
    state: new FakeState(),
    now,
    ...extra,
  };
  const deliver = (message: unknown, dequeueCount = 1) =>
    handleScaleQueueMessage(deps, message, { messageId: `sim-${++seq}`, dequeueCount, maxDequeueCount: 5, poisonQueue: names.scalePoisonQueue }, silentLogger);
  return { deps, ledger, tracker, queue, deliver, names };
}
