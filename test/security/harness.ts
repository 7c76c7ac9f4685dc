/**
 * Drives the HTTP handlers and the scale-queue handler the way the hostile-input tests need: the
 * HTTP side over the handler fakes, the queue side over an in-memory ledger with the Functions
 * host's retry rule (an attempt that throws is retried; the fifth failure goes to the poison queue).
 */
import type { HttpResponseInit } from '@azure/functions';
import { explainPlan, pauseScaleOut, submitScaleRequest, submitTerminate, getScaleRequest } from '../../src/http/routes.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { handleScaleQueueMessage, type IntakeDeps } from '../../src/requests/intake.ts';
import { seedSnapshot } from '../planning/fixtures.ts';
import { MemoryLedger } from '../ledger/memory-ledger.ts';
import { FakeCapacity, FakeCycleCloud, FakeQueue, FakeState, FakeTracker, MemoryReservations, fixedSnapshots } from '../requests/fakes.ts';
import { fakeDeps, httpRequest } from '../http/fakes.ts';

export const POST_ROUTES = {
  'scale-requests': { handler: submitScaleRequest, path: '/api/scale-requests' },
  terminate: { handler: submitTerminate, path: '/api/terminate' },
  plan: { handler: explainPlan, path: '/api/plan' },
  pause: { handler: pauseScaleOut, path: '/api/scale-out/pause' },
} as const;
export type PostRoute = keyof typeof POST_ROUTES;

export interface HttpAnswer {
  status: number;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

function answerOf(res: HttpResponseInit): HttpAnswer {
  const h = (res.headers ?? {}) as Record<string, string>;
  return { status: res.status ?? 200, contentType: h['content-type'], body: (res.jsonBody ?? {}) as Record<string, unknown> };
}

/** One POST through a route's handler, with fresh fake deps unless some are given. */
export async function post(
  route: PostRoute,
  raw: string | Uint8Array | undefined,
  headers: Record<string, string> = {},
  world = fakeDeps(),
): Promise<HttpAnswer & { world: ReturnType<typeof fakeDeps>['world'] }> {
  const { handler, path } = POST_ROUTES[route];
  // httpRequest sends a body as application/json unless the case sets its own content-type.
  const request = httpRequest('POST', path, { ...(raw === undefined ? {} : { raw }), headers });
  return { ...answerOf(await handler(world.deps, request)), world: world.world };
}

/** GET /api/scale-requests/{requestId} with a raw id param. */
export async function getStatus(requestId: string): Promise<HttpAnswer> {
  const { deps } = fakeDeps();
  return answerOf(await getScaleRequest(deps, httpRequest('GET', `/api/scale-requests/${encodeURIComponent(requestId)}`, { params: { requestId } })));
}

export const T0 = Date.parse('2026-11-28T01:00:00.000Z');

export interface QueueOutcome {
  /** What the handler answered on the attempt that settled the message; undefined when poisoned. */
  result: { action: string; requestId: string; state: string | null } | undefined;
  attempts: number;
  poisoned: boolean;
  errors: unknown[];
}

/** The scale-queue handler over an in-memory ledger and fake CycleCloud; `deliver` retries like the host. */
export function queueHarness() {
  const clock = { now: T0 + 10_000 };
  const ledger = new MemoryLedger();
  const state = new FakeState();
  const cyclecloud = new FakeCycleCloud();
  const deps: IntakeDeps = {
    cyclecloud,
    ledger,
    reservations: new MemoryReservations(),
    snapshots: fixedSnapshots(() => seedSnapshot({ takenAt: new Date(clock.now - 5_000).toISOString() })),
    capacity: new FakeCapacity(),
    tracker: new FakeTracker(),
    queue: new FakeQueue(),
    state,
    now: () => clock.now,
    config: { maxReplanAttempts: 1 },
  };
  let seq = 0;
  async function deliver(message: unknown, maxDequeueCount = 5): Promise<QueueOutcome> {
    const messageId = `qm-${++seq}`;
    const errors: unknown[] = [];
    for (let dequeueCount = 1; dequeueCount <= maxDequeueCount; dequeueCount++) {
      try {
        const result = await handleScaleQueueMessage(deps, message, { messageId, dequeueCount, maxDequeueCount, poisonQueue: 'scale-requests-poison' }, silentLogger);
        return { result: result as QueueOutcome['result'], attempts: dequeueCount, poisoned: false, errors };
      } catch (error) {
        errors.push(error);
      }
    }
    return { result: undefined, attempts: maxDequeueCount, poisoned: true, errors };
  }
  return { deps, ledger, state, cyclecloud, clock, deliver, lastMessageId: () => `qm-${seq}` };
}

/** `{"a":{"a":…1…}}` nested `depth` objects deep, as text (building it as an object would need recursion to print). */
export function nestedObjectText(depth: number, key = 'a'): string {
  return `${`{"${key}":`.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** `[[[…]]]` nested `depth` arrays deep, as text. */
export function nestedArrayText(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** A valid scale request (as text) whose first demand carries `attrs` (raw JSON text) as nodeAttributes. */
export function withNodeAttributes(attrsText: string, requestId = 'attrs-1'): string {
  return `{"requestId":"${requestId}","cluster":"hpc","demands":[{"nodearray":"ondemand","count":1,"nodeAttributes":${attrsText}}]}`;
}
