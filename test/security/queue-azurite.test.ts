/**
 * The hostile queue messages again, through the real Table ledger on azurite: keys, properties and
 * index partitions built from hostile text must never turn a permanent problem into a "transient"
 * throw (five retries, then poison). Plus a short fuzz run (fast-check) on the same real storage.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/platform/log.ts';
import { Storage } from '../../src/platform/storage.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { handleScaleQueueMessage, type IntakeDeps } from '../../src/requests/intake.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { FakeCapacity, FakeCycleCloud, FakeQueue, FakeState, FakeTracker, MemoryReservations, fixedSnapshots } from '../requests/fakes.ts';
import { uniqueNames } from '../helpers/names.ts';
import { nestedObjectText, post, withNodeAttributes } from './harness.ts';
import { createRequestPipeline } from '../../src/requests/pipeline.ts';
import { fakeDeps } from '../http/fakes.ts';

/** Runs of the fuzz property against real storage (each message costs a few table calls). */
const AZURITE_RUNS = 150;

let storage: Storage;
beforeAll(() => {
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
});

async function world() {
  const names = uniqueNames();
  await storage.ensure({ tables: [names.requestsTable] });
  const now = Date.parse('2026-11-28T01:00:00.000Z');
  const ledger = new RequestLedger({ storage, names, now: () => now });
  const state = new FakeState();
  const deps: IntakeDeps = {
    cyclecloud: new FakeCycleCloud(),
    ledger,
    reservations: new MemoryReservations(),
    snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(now - 5_000).toISOString() })),
    capacity: new FakeCapacity(),
    tracker: new FakeTracker(),
    queue: new FakeQueue(),
    state,
    now: () => now,
    config: { maxReplanAttempts: 1 },
  };
  let seq = 0;
  /** One delivery; a throw is what the host would retry into the poison queue. */
  const deliver = async (message: unknown) => {
    const messageId = `00000000-0000-4000-8000-${String(++seq).padStart(12, '0')}`;
    const result = await handleScaleQueueMessage(deps, message, { messageId, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);
    return { result, messageId };
  };
  return { ledger, state, deliver };
}

const scale = (over: Record<string, unknown>) => ({ requestId: 'az-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }], ...over });

describe('hostile queue messages on the real Table ledger', () => {
  it.each([
    ['a cluster with a lone surrogate', scale({ requestId: 'az-sur', cluster: 'hpc\ud800' }), 'az-sur', 'rejected'],
    ['a cluster with control characters', scale({ requestId: 'az-ctl', cluster: 'hpc\u0000\u0007' }), 'az-ctl', 'rejected'],
    ['a terminate whose cluster has a lone surrogate', { kind: 'terminate', requestId: 'az-tsur', cluster: '\ud83d', names: ['n1'] }, 'az-tsur', 'rejected'],
    ['a cluster with / # ? % \\ ~', scale({ requestId: 'az-odd', cluster: 'a/b#c?d%e\\f~g' }), 'az-odd', 'queued|planning|submitted|failed|rejected'],
    ['a callbackUrl that is not a URL', scale({ requestId: 'az-cb', callbackUrl: 'not a url' }), 'az-cb', 'rejected'],
    ['nodeAttributes 3,000 deep', JSON.parse(withNodeAttributes(nestedObjectText(3_000), 'az-deep')), 'az-deep', 'rejected'],
    ['requestId ".."', scale({ requestId: '..' }), 'msg', 'rejected'],
    ['a continue message for a/b#c?d', { $scaler: 'continue', requestId: 'a/b#c?d' }, 'msg', 'rejected'],
    ['a continue message for an unknown valid id', { $scaler: 'continue', requestId: 'never-seen' }, null, null],
    ['a lone surrogate where the cluster of an invalid message goes', { requestId: 'az-inv', cluster: '\udfff', demands: [] }, 'az-inv', 'rejected'],
  ] as const)('%s: settled on the first delivery', async (_name, message, key, states) => {
    const w = await world();
    const { result, messageId } = await w.deliver(message);
    expect(result).toBeDefined();
    if (key === null) return;
    const entry = await w.ledger.get(key === 'msg' ? `msg-${messageId}` : key);
    expect(entry).not.toBeNull();
    expect(entry!.record.state).toMatch(new RegExp(`^(${states})$`));
    // What an invalid message leaves on its record is well-formed text.
    expect(entry!.record.cluster).not.toMatch(/[\p{Cc}\p{Cs}]/u);
  });

  it(`fuzz: ${AZURITE_RUNS} mutated messages never throw on real storage`, async () => {
    const w = await world();
    const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('hpc', '', '..', 'a/b', '\ud800', '~open~x', 'x'.repeat(300)));
    await fc.assert(
      fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9._:-]{1,12}$/), text, text, fc.jsonValue({ maxDepth: 3 }), async (requestId, cluster, nodearray, attrs) => {
        const message = { requestId, cluster, demands: [{ nodearray, count: 1, nodeAttributes: attrs }] };
        await expect(w.deliver(message)).resolves.toBeDefined();
      }),
      { numRuns: AZURITE_RUNS },
    );
  }, 120_000);
});

describe('HTTP admission on real storage', () => {
  it(`fuzz: ${AZURITE_RUNS} bodies with hostile strings in every field answer below 500`, async () => {
    const names = uniqueNames();
    await storage.ensure({ tables: [names.requestsTable, names.stateTable], queues: [names.scaleQueue] });
    const pipeline = createRequestPipeline({
      storage,
      names,
      cyclecloud: new FakeCycleCloud(),
      tracker: new FakeTracker(),
      snapshots: fixedSnapshots(() => null),
      capacity: new FakeCapacity(),
    });
    const http = fakeDeps({ submitRequest: (m) => pipeline.submitRequest(m) });
    const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('hpc', '..', 'a/b#?', '\ud800', '~open~', "it's", '"quoted"', 'x'.repeat(300)));
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[A-Za-z0-9._:-]{1,16}$/),
        text,
        fc.record({ nodearray: text, jobId: text, placementGroupId: text, machineTypes: fc.array(text, { minLength: 1, maxLength: 2 }) }, { requiredKeys: [] }),
        fc.option(fc.constantFrom('terminate')),
        async (requestId, cluster, extra, kind) => {
          const body = kind
            ? { kind, requestId, cluster, names: [extra.nodearray ?? 'n'], ...(extra.jobId !== undefined ? { filter: extra.jobId } : {}) }
            : { requestId, cluster, demands: [{ nodearray: 'ondemand', count: 1, ...extra }] };
          const answer = await post('scale-requests', JSON.stringify(body), {}, http);
          statuses.add(answer.status);
          expect(answer.status).toBeLessThan(500);
        },
      ),
      { numRuns: AZURITE_RUNS },
    );
    expect(statuses.has(202)).toBe(true);
  }, 120_000);
});
