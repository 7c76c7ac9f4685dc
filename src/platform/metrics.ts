/**
 * The scaler's figures through the OpenTelemetry metrics API: one meter (`cyclecloud-scaler`), the
 * instruments below and nothing else, with bounded dimensions (no request or operation ids).
 *
 * Code records with {@link recordMetric}; whoever hosts the process decides where the figures go by
 * registering a MeterProvider: {@link startMetrics} registers one that `/api/metrics` reads in the
 * Prometheus text format (and, on Azure, an Azure Monitor exporter beside it). With no provider the
 * API is a no-op, so a library user or a unit test pays nothing.
 *
 * Names follow the OpenTelemetry conventions (dotted, unit in `unit`, not in the name); the
 * Prometheus text turns dots into underscores and gives counters `_total`. docs/operations.md lists
 * them with what each means.
 */
import { type Attributes, type Counter, type Gauge, type Histogram, type MeterProvider, metrics } from '@opentelemetry/api';

type Kind = 'counter' | 'histogram' | 'gauge';
interface Spec {
  kind: Kind;
  unit: string;
  description: string;
  /** Histogram bucket boundaries (in `unit`). */
  buckets?: number[];
}

const SECONDS_FAST = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SECONDS_BOOT = [15, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600];

/** Every instrument the scaler records, by name. */
export const METRICS = {
  'scaler.requests': {
    kind: 'counter',
    unit: '{request}',
    description: 'Requests offered to admission, by outcome: created, duplicate (the same request again), conflict (the same id with a different body)',
  },
  'scaler.requests.completed': {
    kind: 'counter',
    unit: '{request}',
    description: 'Requests that reached a final state, by outcome (the state: fulfilled, partially_fulfilled, failed, rejected), counted once at the write that made them final',
  },
  'scaler.requests.open': { kind: 'gauge', unit: '{request}', description: 'Open requests by state, counted at each snapshot tick' },
  'scaler.requests.overdue': {
    kind: 'gauge',
    unit: '{request}',
    description: 'Open requests past their deadline, counted at each snapshot tick (should be 0: the tracker closes them)',
  },
  'scaler.create.latency': { kind: 'histogram', unit: 's', description: 'From a request accepted to its nodes/create accepted by CycleCloud', buckets: SECONDS_FAST },
  'scaler.create.calls': { kind: 'counter', unit: '{call}', description: 'nodes/create calls, by outcome: accepted, or the error code CycleCloud answered' },
  'scaler.nodes.requested': { kind: 'counter', unit: '{node}', description: 'Nodes CycleCloud added for creates' },
  'scaler.nodes.ready': { kind: 'counter', unit: '{node}', description: 'Created nodes that reached Ready' },
  'scaler.nodes.failed': { kind: 'counter', unit: '{node}', description: 'Created nodes that failed (or went away before Ready)' },
  'scaler.nodes.timed_out': { kind: 'counter', unit: '{node}', description: 'Created nodes not Ready by the boot deadline' },
  'scaler.node.boot_time': { kind: 'histogram', unit: 's', description: 'From the create accepted to the node Ready', buckets: SECONDS_BOOT },
  'scaler.plan.duration': { kind: 'histogram', unit: 's', description: 'One planner pass', buckets: SECONDS_FAST },
  'scaler.over_ask': { kind: 'counter', unit: '{set}', description: 'Node sets CycleCloud answered with fewer nodes than asked' },
  'cyclecloud.client.duration': { kind: 'histogram', unit: 's', description: 'CycleCloud REST calls, by operation and outcome (HTTP status)', buckets: SECONDS_FAST },
  'cyclecloud.client.errors': { kind: 'counter', unit: '{call}', description: 'CycleCloud REST calls that failed, by operation and outcome (error code)' },
  'scaler.governor.pauses': { kind: 'counter', unit: '{pause}', description: 'Times a 429 or 503 with Retry-After paused every call to CycleCloud' },
  'scaler.bucket.available': { kind: 'gauge', unit: '{node}', description: "A bucket's availableCount in the newest snapshot (nodes CycleCloud can still create there)" },
  'scaler.bucket.active': { kind: 'gauge', unit: '{node}', description: "A bucket's activeCount in the newest snapshot" },
  'scaler.snapshot.age': { kind: 'gauge', unit: 's', description: 'Age of the newest cluster snapshot' },
  'scaler.messages.rejected': { kind: 'counter', unit: '{message}', description: 'Queue messages refused (invalid, or a command that cannot apply), recorded under msg-<id>' },
  'scaler.messages.poisoned': { kind: 'counter', unit: '{message}', description: 'Queue messages that reached the poison queue' },
  'scaler.callbacks': { kind: 'counter', unit: '{callback}', description: 'Callbacks, by outcome: delivered, failed (given up), refused (target not allowed)' },
  'scaler.orphans': { kind: 'counter', unit: '{node}', description: 'Nodes tagged by the scaler that no request expected, by outcome: adopted, terminated' },
} as const satisfies Record<string, Spec>;

export type MetricName = keyof typeof METRICS;

/** The only dimensions an instrument may carry: bounded, never an id. */
export const METRIC_DIMENSIONS = ['cluster', 'nodearray', 'machine_type', 'outcome', 'state', 'operation'] as const;
export type MetricDimensions = Partial<Record<(typeof METRIC_DIMENSIONS)[number], string | number | null | undefined>>;

type Instrument = Counter | Histogram | Gauge;
let instruments: { provider: MeterProvider; byName: Map<MetricName, Instrument> } | null = null;

function instrument(name: MetricName): Instrument {
  const provider = metrics.getMeterProvider();
  if (!instruments || instruments.provider !== provider) instruments = { provider, byName: new Map() };
  let found = instruments.byName.get(name);
  if (!found) {
    const spec: Spec = METRICS[name];
    const meter = provider.getMeter('cyclecloud-scaler');
    const options = { unit: spec.unit, description: spec.description };
    found =
      spec.kind === 'counter'
        ? meter.createCounter(name, options)
        : spec.kind === 'gauge'
          ? meter.createGauge(name, options)
          : meter.createHistogram(name, { ...options, ...(spec.buckets ? { advice: { explicitBucketBoundaries: spec.buckets } } : {}) });
    instruments.byName.set(name, found);
  }
  return found;
}

/** Adds to a counter, records into a histogram or sets a gauge. Unknown dimensions and empty values are dropped. */
export function recordMetric(name: MetricName, value: number, dimensions: MetricDimensions = {}): void {
  if (!Number.isFinite(value)) return;
  const attributes: Attributes = {};
  for (const key of METRIC_DIMENSIONS) {
    const v = dimensions[key];
    if (v !== undefined && v !== null && v !== '') attributes[key] = String(v);
  }
  const i = instrument(name);
  const kind: Kind = METRICS[name].kind;
  if (kind === 'counter') {
    if (value > 0) (i as Counter).add(value, attributes);
  } else if (kind === 'gauge') (i as Gauge).record(value, attributes);
  else (i as Histogram).record(value, attributes);
}

/**
 * The figures of one accepted create, per member request: nodes added per set, over-asked sets, and
 * accept → create latency from the request's `createdAt`.
 */
export function recordCreateAccepted(
  cluster: string,
  attempt: { sets: readonly { nodearray: string; machineType: string; count: number; added: number | null }[] },
  requestCreatedAt: string,
  acceptedAtMs: number,
): void {
  for (const s of attempt.sets) {
    recordMetric('scaler.nodes.requested', s.added ?? 0, { cluster, nodearray: s.nodearray, machine_type: s.machineType });
    if ((s.added ?? 0) < s.count) recordMetric('scaler.over_ask', 1, { cluster, nodearray: s.nodearray, machine_type: s.machineType });
  }
  const createdMs = Date.parse(requestCreatedAt);
  if (Number.isFinite(createdMs)) recordMetric('scaler.create.latency', Math.max(0, acceptedAtMs - createdMs) / 1000, { cluster });
}

/**
 * A final create operation's nodes, each counted once by outcome (ready, failed or gone, timed out)
 * under its set's nodearray and machine type, and each Ready node's boot time from the create.
 */
export function recordNodeOutcomes(state: {
  cluster: string;
  startedAtMs: number;
  sets: readonly { nodearray: string; machineType: string }[];
  nodes: readonly { outcome: string; setIndex: number | null; changedAtMs: number }[];
}): void {
  for (const n of state.nodes) {
    const set = n.setIndex === null ? undefined : state.sets[n.setIndex];
    const dims = { cluster: state.cluster, nodearray: set?.nodearray, machine_type: set?.machineType };
    if (n.outcome === 'ready') {
      recordMetric('scaler.nodes.ready', 1, dims);
      recordMetric('scaler.node.boot_time', Math.max(0, n.changedAtMs - state.startedAtMs) / 1000, dims);
    } else if (n.outcome === 'timed_out') recordMetric('scaler.nodes.timed_out', 1, dims);
    else if (n.outcome === 'failed' || n.outcome === 'gone') recordMetric('scaler.nodes.failed', 1, dims);
  }
}
