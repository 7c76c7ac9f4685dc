/**
 * One trace per request (src/platform/tracing.ts) through the composition root over azurite and the
 * simulator: the caller's traceparent → the HTTP accept → the queue hop (through the ledger) → each
 * tracker poll → the callback, which carries traceparent to the receiver. Spans are caught by an
 * in-memory exporter; parent ids are checked link by link.
 */
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createServices } from '../../src/app/services.ts';
import { submitScaleRequest } from '../../src/http/routes.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { parseTraceparent } from '../../src/platform/tracing.ts';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.ts';
import { httpRequest } from '../http/fakes.ts';
import { pumpUntil } from '../tracking/pump.ts';
import { startReceiver, type Receiver } from '../tracking/receiver.ts';
import { freshPrefix, scalerEnv } from '../helpers/scaler-env.ts';

let sim: SimulatorHandle;
let receiver: Receiver;
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

beforeAll(async () => {
  sim = await startSimulator({ port: 0, stepMs: 20 });
  receiver = await startReceiver();
  trace.setGlobalTracerProvider(provider);
});
afterAll(async () => {
  trace.disable();
  await provider.shutdown();
  await receiver?.close();
  await sim?.close();
});

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

describe('tracing', () => {
  it('one trace from the caller through accept, the queue hop, each poll and the callback, parents linked', async () => {
    // Prepare
    const prefix = freshPrefix('trace');
    const s = await createServices(
      scalerEnv(sim, prefix, { CREATE_WINDOW_MS: '0', TRACKER_POLL_MIN_SECONDS: '0.05', TRACKER_POLL_MAX_SECONDS: '0.2' }, inject('storageConnectionString')),
      { mode: 'local', logger: silentLogger, fastPathConcurrency: 0 },
    );
    const id = `trace-${prefix}`;
    const body = { requestId: id, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2 }], callbackUrl: receiver.url };

    // Act: the caller posts with its own traceparent; then the queues run until the callback lands
    const res = await submitScaleRequest(s.http, httpRequest('POST', '/scale-requests', { body, headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } }));
    expect(res.status).toBe(202);
    let delivery = 0;
    await pumpUntil(
      s.storage,
      {
        [s.names.scaleQueue]: (m) =>
          s.pipeline.handle(m, { messageId: `m${++delivery}`, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger).then(() => undefined),
        [s.names.trackerQueue]: (m, info) => s.tracker.handleTrackerMessage(m, info, silentLogger),
        [s.names.callbackQueue]: (m, info) => s.callbacks.handleCallbackMessage(m, info, silentLogger),
      },
      () => receiver.received.some((r) => r.body.includes(`"requestId":"${id}"`) && r.body.includes('"fulfilled"')),
      30_000,
      20,
    );
    await s.close();

    // Assess: every span is in the caller's trace
    const spans = exporter.getFinishedSpans();
    const byName = (name: string) => spans.filter((x) => x.name === name);
    const parentOf = (x: ReadableSpan) => x.parentSpanContext?.spanId;
    expect(new Set(spans.map((x) => x.spanContext().traceId))).toEqual(new Set([CALLER_TRACE]));
    const [accept] = byName('POST /api/scale-requests');
    expect(accept).toBeDefined();
    expect(parentOf(accept!)).toBe(CALLER_SPAN);
    const acceptId = accept!.spanContext().spanId;
    // The queue hop: each delivery's span is a child of the accept span (its traceparent went through the ledger)
    const processed = byName('scale-requests process');
    expect(processed.length).toBeGreaterThanOrEqual(1);
    for (const x of processed) expect(parentOf(x)).toBe(acceptId);
    // Plan and create: children of a delivery's span
    const deliveries = new Set(processed.map((x) => x.spanContext().spanId));
    const plans = byName('plan');
    const creates = byName('POST nodes/create');
    expect(plans.length).toBeGreaterThanOrEqual(1);
    expect(creates).toHaveLength(1);
    for (const x of [...plans, ...creates]) expect(deliveries).toContain(parentOf(x));
    // Each poll, until the nodes were Ready
    const polls = byName('tracker poll');
    expect(polls.length).toBeGreaterThanOrEqual(1);
    for (const x of polls) expect(parentOf(x)).toBe(acceptId);
    // The callback: a client span, and the receiver got its traceparent
    const callbacks = byName('callback');
    expect(callbacks.length).toBeGreaterThanOrEqual(1);
    for (const x of callbacks) expect(parentOf(x)).toBe(acceptId);
    const got = receiver.received.filter((r) => r.body.includes(`"requestId":"${id}"`)).map((r) => parseTraceparent(String(r.headers.traceparent)));
    expect(got.length).toBeGreaterThanOrEqual(1);
    for (const sc of got) {
      expect(sc?.traceId).toBe(CALLER_TRACE);
      expect(callbacks.map((x) => x.spanContext().spanId)).toContain(sc?.spanId);
    }
  }, 60_000);

  it("a batch's one create is in its newest member's trace and linked from every other member's", async () => {
    // Prepare: a window long enough for both deliveries to join one batch
    const prefix = freshPrefix('traceb');
    const s = await createServices(scalerEnv(sim, prefix, { CREATE_WINDOW_MS: '400', CREATE_WINDOW_MAX_MS: '1000' }, inject('storageConnectionString')), {
      mode: 'local',
      logger: silentLogger,
      fastPathConcurrency: 0,
    });
    exporter.reset();
    const ids = ['a', 'b', 'c'].map((n) => `b${n}-${prefix}`);
    // Act
    await Promise.all(
      ids.map((requestId, i) =>
        s.pipeline.handle(
          { requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] },
          { messageId: `b${i}`, dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' },
          silentLogger,
        ),
      ),
    );
    const traces = await Promise.all(ids.map(async (id) => parseTraceparent((await s.pipeline.ledger.get(id))?.traceparent)!.traceId));
    await s.close();
    // Assess: one create for the three; its own trace is a member's, its links reach the others'
    const creates = exporter.getFinishedSpans().filter((x) => x.name === 'POST nodes/create');
    expect(creates).toHaveLength(1);
    const create = creates[0]!;
    expect(create.attributes['scaler.batch.members']).toBe(3);
    const deliveries = exporter.getFinishedSpans().filter((x) => x.name === 'scale-requests process');
    expect(deliveries.map((x) => x.spanContext().spanId)).toContain(create.parentSpanContext?.spanId);
    const reached = new Set([create.spanContext().traceId, ...create.links.map((l) => l.context.traceId)]);
    expect(reached).toEqual(new Set(traces));
    expect(create.links).toHaveLength(2);
    for (const l of create.links) expect(deliveries.map((x) => x.spanContext().spanId)).toContain(l.context.spanId);
  }, 60_000);

  it('a request that came by the queue alone: every delivery is in one trace, kept by its entry', async () => {
    const prefix = freshPrefix('traceq');
    const s = await createServices(scalerEnv(sim, prefix, {}, inject('storageConnectionString')), { mode: 'local', logger: silentLogger, fastPathConcurrency: 0 });
    exporter.reset();
    const message = { requestId: `q-${prefix}`, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
    await s.pipeline.handle(message, { messageId: 'q1', dequeueCount: 1, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);
    await s.pipeline.handle(message, { messageId: 'q1', dequeueCount: 2, maxDequeueCount: 5, poisonQueue: 'p' }, silentLogger);
    const stored = parseTraceparent((await s.pipeline.ledger.get(message.requestId))?.traceparent);
    // Admitted without a traceparent (Slurm's routes, the pipeline's own callers): a trace all the same
    const scheduler = { kind: 'scale' as const, requestId: `s-${prefix}`, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] };
    await s.pipeline.submitRequest(scheduler, { scheduler: true });
    expect(parseTraceparent((await s.pipeline.ledger.get(scheduler.requestId))?.traceparent)).not.toBeNull();
    await s.close();

    const deliveries = exporter.getFinishedSpans().filter((x) => x.name === 'scale-requests process');
    expect(deliveries).toHaveLength(2);
    expect(stored).not.toBeNull();
    for (const x of deliveries) {
      expect(x.spanContext().traceId).toBe(stored?.traceId);
      expect(x.parentSpanContext?.spanId).toBe(stored?.spanId);
    }
  }, 30_000);

  it('a malformed traceparent starts a new trace instead of failing the request', async () => {
    expect(parseTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBeNull();
    expect(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7')).toBeNull();
    expect(parseTraceparent('not a header')).toBeNull();
    expect(parseTraceparent(`00-${CALLER_TRACE}-${CALLER_SPAN}-01`)).toMatchObject({ traceId: CALLER_TRACE, spanId: CALLER_SPAN, traceFlags: 1 });
  });
});
