/**
 * W3C trace context through the scaler: one trace per request, from the caller's HTTP call (its
 * `traceparent`, or a new trace) through the queue hop, the create, each tracker poll and the
 * callback, which carries `traceparent` to the receiver.
 *
 * The request's `traceparent` (the accept span's) is kept in its ledger entry, so every later hop,
 * on whichever instance and after any number of queue deliveries, starts its span as a child of it.
 * Spans go through the OpenTelemetry API: exported on Azure by the Azure Monitor distro, recorded
 * by nothing when no provider is registered. Without a provider the ids still flow (a new trace is
 * minted), so the log lines and the callback carry them anyway.
 */
import { randomBytes } from 'node:crypto';
import { ROOT_CONTEXT, type Span, type SpanContext, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The span context of a W3C `traceparent` (version 00), or null when it is absent or malformed. */
export function parseTraceparent(value: string | null | undefined): SpanContext | null {
  const m = TRACEPARENT.exec(value?.trim().toLowerCase() ?? '');
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return null;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: Number.parseInt(m[3]!, 16) & 1, isRemote: true };
}

export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1).toString(16).padStart(2, '0')}`;
}

/**
 * A new trace's context for a request that came by the queue with none: stored on the entry it
 * creates, so all of that request's deliveries, polls and its callback share one trace.
 */
export function newTraceparent(): string {
  return formatTraceparent({ traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.SAMPLED });
}

/** The ids a log line carries. */
export function traceFields(traceparent: string | null | undefined): { traceId?: string; spanId?: string } {
  const sc = parseTraceparent(traceparent);
  return sc ? { traceId: sc.traceId, spanId: sc.spanId } : {};
}

export interface SpanHandle {
  span: Span;
  /** This span's own `traceparent`: what its children (and the callback receiver) get. */
  traceparent: string;
}

/**
 * Starts a span, child of `parent` or the root of a new trace; the caller ends it. `links` are the
 * `traceparent`s of other traces the span also serves (a batch's create serves every member's): a
 * trace viewer follows them from each member to the one create.
 */
export function startSpan(
  name: string,
  parent: string | null | undefined,
  kind: SpanKind,
  attributes: Record<string, string | number>,
  links: readonly (string | null | undefined)[] = [],
): SpanHandle {
  const parentContext = parseTraceparent(parent);
  const ctx = parentContext ? trace.setSpanContext(ROOT_CONTEXT, parentContext) : ROOT_CONTEXT;
  const linked = links.map(parseTraceparent).flatMap((context) => (context && context.spanId !== parentContext?.spanId ? [{ context }] : []));
  let span = trace.getTracer('cyclecloud-scaler').startSpan(name, { kind, attributes, ...(linked.length ? { links: linked } : {}) }, ctx);
  let sc = span.spanContext();
  if (!trace.isSpanContextValid(sc) || (parentContext && sc.spanId === parentContext.spanId)) {
    // No provider: a non-recording span. Mint ids so the hop still has a context of its own.
    sc = { traceId: parentContext?.traceId ?? randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), traceFlags: parentContext?.traceFlags ?? TraceFlags.NONE };
    span = trace.wrapSpanContext(sc);
  }
  return { span, traceparent: formatTraceparent(sc) };
}

/**
 * Runs `fn` in a span named `name`, child of `parent` (a `traceparent`) or the root of a new trace,
 * ended when `fn` settles (an exception marks it failed and is rethrown).
 */
export async function inSpan<T>(
  name: string,
  parent: string | null | undefined,
  kind: SpanKind,
  attributes: Record<string, string | number>,
  fn: (h: SpanHandle) => Promise<T>,
): Promise<T> {
  const { span, traceparent } = startSpan(name, parent, kind, attributes);
  try {
    return await fn({ span, traceparent });
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
    throw error;
  } finally {
    span.end();
  }
}

export { SpanKind, SpanStatusCode };
