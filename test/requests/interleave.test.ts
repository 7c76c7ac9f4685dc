/**
 * The double create of incident b-13 (../shared/reference/incidents/): the HTTP fast path and the
 * queue delivery of ONE admitted request both planned it, and each created a node. Here the two
 * are forced through every interleaving at their I/O boundaries: one is paused just before each of
 * its storage, CycleCloud, tracker, capacity and snapshot calls in turn while the other runs, then
 * both finish. Whatever the order, CycleCloud applies the request's nodes once: one node asked, one
 * node added, and the record counts one.
 */
import { describe, expect, it } from 'vitest';
import { encodeQueueMessage } from '../../src/platform/storage.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { RequestLedger } from '../../src/ledger/ledger.ts';
import { createRequestPipeline, type RequestPipeline } from '../../src/requests/pipeline.ts';
import type { ScaleRequest, TerminateRequest } from '../../src/ledger/schemas.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { uniqueNames } from '../helpers/names.ts';
import { Interleaver, runSchedule, type Tail } from '../helpers/interleave.ts';
import { memoryStorage } from '../helpers/memory-storage.ts';
import { FakeCapacity, FakeCycleCloud, FakeTracker, fixedSnapshots } from './fakes.ts';

const T0 = Date.parse('2026-12-06T01:00:00.000Z');

interface World {
  il: Interleaver;
  cc: FakeCycleCloud;
  /** The instance whose HTTP route admitted the request (and runs its fast path). */
  http: RequestPipeline;
  /** The instance the queue delivers the message to (the same one, or another on the same storage). */
  queue: RequestPipeline;
  ledger: RequestLedger;
}

async function world(instances: 1 | 2): Promise<World> {
  const il = new Interleaver();
  const names = uniqueNames();
  const storage = memoryStorage();
  const gated = il.gateStorage(storage);
  const now = () => T0 + 10_000;
  const cc = new FakeCycleCloud();
  const make = (): RequestPipeline => {
    const ledger = new RequestLedger({ storage: gated, names, now });
    const capacity = new FakeCapacity();
    const tracker = new FakeTracker({ cyclecloud: cc, ledger, capacity, now });
    return createRequestPipeline({
      ledger,
      storage: gated,
      names,
      cyclecloud: il.gate(cc, 'cyclecloud'),
      tracker: il.gate(tracker, 'tracker'),
      snapshots: il.gate(
        fixedSnapshots(() => seedSnapshot({ takenAt: new Date(now() - 5_000).toISOString() })),
        'snapshots',
      ),
      capacity: il.gate(capacity, 'capacity'),
      now,
      fastPathConcurrency: 8,
    });
  };
  const http = make();
  const queue = instances === 1 ? http : make();
  return { il, cc, http, queue, ledger: new RequestLedger({ storage, names, now }) };
}

const request = (id: string): ScaleRequest => ({ kind: 'scale', requestId: id, cluster: 'hpc', demands: [{ minVcpus: 16, count: 1 }] });

const terminate = (id: string): TerminateRequest => ({ kind: 'terminate', requestId: id, cluster: 'hpc', ipAddresses: ['10.1.0.7'] });

type Message = ScaleRequest | TerminateRequest;

const fastPath = (w: World, m: Message) => async () => {
  await w.http.submitRequest(m);
  await w.http.drain();
};
const queueDelivery = (w: World, m: Message) => () =>
  w.queue.handle(encodeQueueMessage(m), { messageId: 'm-1', dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);

async function expectOnce(w: World, id: string, label: string): Promise<void> {
  const nodes = w.cc.nodes.filter((n) => (n.Tags as Record<string, string> | undefined)?.['ccscale-request'] === id);
  const record = await w.ledger.getRecord(id);
  const what = `${label}: ${nodes.length} node(s) created, creates applied ${w.cc.appliedCreates}; trace:\n${w.il.trace.join('\n')}`;
  expect(nodes.length, what).toBe(1);
  expect(w.cc.appliedCreates, what).toBe(1);
  expect(record?.demands[0]?.created, what).toBe(1);
}

/**
 * A terminate of one Ready node, sent by one worker while the other (which read the entry after the
 * first recorded its intent) sends it too and gets 409: CycleCloud has already removed the node, so
 * the second finds nothing under the request id. The record must still say what the first learnt:
 * the node, terminating (CI once saw `failed`, "no node matched", for a node that was terminated).
 */
function seedNode(w: World): void {
  w.cc.removeOnTerminate = true;
  w.cc.nodes.push({ Name: 'hpc-7', NodeId: 'id-hpc-7', Template: 'hpc', MachineType: 'Standard_HC44rs', Status: 'Ready', TargetState: 'Started', PrivateIp: '10.1.0.7' });
}

async function expectTerminated(w: World, id: string, label: string): Promise<void> {
  const record = await w.ledger.getRecord(id);
  const terminates = w.cc.calls.filter((c) => c.method === 'terminateNodes').length;
  const what = `${label}: record ${JSON.stringify({ state: record?.state, reason: record?.reason, nodes: record?.nodes })}, ${terminates} terminate call(s); trace:\n${w.il.trace.join('\n')}`;
  expect(record?.state, what).not.toBe('failed');
  expect(
    record?.nodes.map((n) => n.name),
    what,
  ).toEqual(['hpc-7']);
  expect(w.cc.ops.size, what).toBe(1);
}

/**
 * Every pair of pause points, in strict turns from there: `first` held before its call k, `second`
 * then run until before its call j, then one call each in turn. And every single pause point:
 * `first` held before its call k while `second` runs to its end, then `first` goes on (the other
 * test of the pair swaps the roles). k (and j) stop at the first value the worker no longer reaches.
 */
async function everyPause(instances: 1 | 2, firstIs: 'fast' | 'queue', kind: 'scale' | 'terminate' = 'scale'): Promise<number> {
  let schedules = 0;
  const one = async (k: number, j: number, tail: Tail): Promise<{ aReached: boolean; bReached: boolean }> => {
    const w = await world(instances);
    const id = `il-${kind}-${instances}-${firstIs}-${tail}-${k}-${j}`;
    if (kind === 'terminate') seedNode(w);
    const m = kind === 'scale' ? request(id) : terminate(id);
    const fast = { name: 'fast', run: fastPath(w, m) };
    const queue = { name: 'queue', run: queueDelivery(w, m) };
    const [first, second] = firstIs === 'fast' ? [fast, queue] : [queue, fast];
    const { aReached, bReached, results } = await runSchedule(w.il, first, second, k, j, tail);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    const label = `${first.name} held before its call ${k}, ${second.name} before its call ${j}, then ${tail}`;
    await (kind === 'scale' ? expectOnce(w, id, label) : expectTerminated(w, id, label));
    schedules++;
    return { aReached, bReached };
  };
  for (let k = 1; k < 200; k++) {
    let firstReached = false;
    for (let j = 1; j < 200; j++) {
      const { aReached, bReached } = await one(k, j, 'alternate');
      firstReached = aReached;
      if (!aReached || !bReached) break;
    }
    if (!firstReached) break;
  }
  for (let k = 1; k < 200; k++) {
    const { aReached } = await one(k, Number.POSITIVE_INFINITY, 'second-then-first');
    if (!aReached) break;
  }
  return schedules;
}

describe('the fast path and the queue delivery of one request, paused at every await in turn', () => {
  it('one instance: the fast path held before each of its calls, the queue delivery before each of its own', async () => {
    expect(await everyPause(1, 'fast')).toBeGreaterThan(100);
  }, 300_000);

  it('one instance: the queue delivery held before each of its calls, the fast path before each of its own', async () => {
    expect(await everyPause(1, 'queue')).toBeGreaterThan(100);
  }, 300_000);

  it('two instances on one storage: the fast path held before each of its calls, the other instance delivering', async () => {
    expect(await everyPause(2, 'fast')).toBeGreaterThan(100);
  }, 300_000);
});

describe('the fast path and the queue delivery of one terminate, paused at every await in turn', () => {
  it('one instance, the fast path held first: the record keeps the node CycleCloud terminated', async () => {
    expect(await everyPause(1, 'fast', 'terminate')).toBeGreaterThan(20);
  }, 300_000);

  it('one instance, the queue delivery held first', async () => {
    expect(await everyPause(1, 'queue', 'terminate')).toBeGreaterThan(20);
  }, 300_000);

  it('two instances on one storage', async () => {
    expect(await everyPause(2, 'fast', 'terminate')).toBeGreaterThan(20);
  }, 300_000);
});
