/**
 * The OpenTelemetry instruments (src/platform/metrics.ts) through a real MeterProvider and the
 * Prometheus serializer, read back with a real Prometheus text parser.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { METRICS, type MetricName, recordCreateAccepted, recordMetric, recordNodeOutcomes } from '../../src/platform/metrics.ts';
import { type MetricsHost, startMetrics } from '../../src/platform/metrics-host.ts';
import { histogram, labelKeys, parsePrometheus, prometheusParserMissing, sampleSum } from '../helpers/prometheus.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const missing = prometheusParserMissing();
if (missing) console.log(`skipping the Prometheus text checks: ${missing}`);

let host: MetricsHost | undefined;
afterEach(async () => {
  await host?.shutdown();
  host = undefined;
});

describe.skipIf(missing !== null)('metrics', () => {
  it('nothing is recorded without a provider, and nothing throws', () => {
    expect(() => recordMetric('scaler.requests', 1, { cluster: 'hpc', outcome: 'created' })).not.toThrow();
  });

  it('counters, gauges and histograms come out as valid Prometheus text with their dimensions', async () => {
    host = startMetrics();
    recordMetric('scaler.requests', 1, { cluster: 'hpc', outcome: 'created' });
    recordMetric('scaler.requests', 1, { cluster: 'hpc', outcome: 'created' });
    recordMetric('scaler.requests', 1, { cluster: 'hpc', outcome: 'duplicate' });
    recordMetric('scaler.snapshot.age', 30, { cluster: 'hpc' });
    recordMetric('scaler.snapshot.age', 12, { cluster: 'hpc' });
    recordMetric('cyclecloud.client.duration', 0.04, { operation: 'POST nodes/create', outcome: 202 });

    const families = parsePrometheus(await host.prometheusText());

    expect(sampleSum(families, 'scaler_requests_total', { cluster: 'hpc', outcome: 'created' })).toBe(2);
    expect(sampleSum(families, 'scaler_requests_total', { outcome: 'duplicate' })).toBe(1);
    expect(families.find((f) => f.name === 'scaler_requests')?.type).toBe('counter');
    expect(sampleSum(families, 'scaler_snapshot_age', { cluster: 'hpc' })).toBe(12);
    expect(families.find((f) => f.name === 'scaler_snapshot_age')?.type).toBe('gauge');
    expect(histogram(families, 'cyclecloud_client_duration', { operation: 'POST nodes/create', outcome: '202' })).toEqual({ count: 1, sum: 0.04 });
  });

  it('drops every dimension that is not bounded: no request, operation or invocation id reaches an instrument', async () => {
    host = startMetrics();
    const dims = { cluster: 'hpc', requestId: 'job-1', operationId: 'op-1', invocationId: 'inv' } as Record<string, string>;
    recordMetric('scaler.callbacks', 1, { ...dims, outcome: 'delivered' });

    const families = parsePrometheus(await host.prometheusText());

    expect(sampleSum(families, 'scaler_callbacks_total', { outcome: 'delivered' })).toBe(1);
    const keys = labelKeys(families.filter((f) => f.name.startsWith('scaler_')));
    expect([...keys].filter((k) => /id$/i.test(k))).toEqual([]);
  });

  it('a create: nodes added per set by nodearray and machine type, short sets as over-ask, latency from the request', async () => {
    host = startMetrics();
    const sets = [
      { nodearray: 'mpi', machineType: 'Standard_HB120rs_v3', count: 4, added: 4 },
      { nodearray: 'ondemand', machineType: 'Standard_F32s_v2', count: 3, added: 1 },
    ];
    recordCreateAccepted('hpc', { sets }, '2026-12-07T12:00:00.000Z', Date.parse('2026-12-07T12:00:00.250Z'));

    const families = parsePrometheus(await host.prometheusText());

    expect(sampleSum(families, 'scaler_nodes_requested_total', { nodearray: 'mpi', machine_type: 'Standard_HB120rs_v3' })).toBe(4);
    expect(sampleSum(families, 'scaler_nodes_requested_total', { nodearray: 'ondemand' })).toBe(1);
    expect(sampleSum(families, 'scaler_over_ask_total', { nodearray: 'ondemand' })).toBe(1);
    expect(sampleSum(families, 'scaler_over_ask_total', { nodearray: 'mpi' })).toBe(0);
    expect(histogram(families, 'scaler_create_latency', { cluster: 'hpc' })).toEqual({ count: 1, sum: 0.25 });
  });

  it("a final operation's nodes: each counted once by outcome, boot time for the Ready ones", async () => {
    host = startMetrics();
    const t0 = Date.parse('2026-12-07T12:00:00.000Z');
    recordNodeOutcomes({
      cluster: 'hpc',
      startedAtMs: t0,
      sets: [{ nodearray: 'ondemand', machineType: 'Standard_F32s_v2' }],
      nodes: [
        { outcome: 'ready', setIndex: 0, changedAtMs: t0 + 90_000 },
        { outcome: 'ready', setIndex: 0, changedAtMs: t0 + 150_000 },
        { outcome: 'failed', setIndex: 0, changedAtMs: t0 + 60_000 },
        { outcome: 'timed_out', setIndex: 0, changedAtMs: t0 + 1_800_000 },
      ],
    });

    const families = parsePrometheus(await host.prometheusText());
    const dims = { cluster: 'hpc', nodearray: 'ondemand', machine_type: 'Standard_F32s_v2' };

    expect(sampleSum(families, 'scaler_nodes_ready_total', dims)).toBe(2);
    expect(sampleSum(families, 'scaler_nodes_failed_total', dims)).toBe(1);
    expect(sampleSum(families, 'scaler_nodes_timed_out_total', dims)).toBe(1);
    expect(histogram(families, 'scaler_node_boot_time', dims)).toEqual({ count: 2, sum: 240 });
  });

  it('the parser is a real one: text Prometheus would refuse throws', () => {
    expect(() => parsePrometheus('scaler_requests_total{cluster="hpc} 1\n')).toThrow();
    expect(() => parsePrometheus('scaler_requests_total{cluster="hpc"} many\n')).toThrow();
  });

  it('every instrument has a unit and a description, and its name follows the dotted convention', () => {
    for (const [name, spec] of Object.entries(METRICS)) {
      expect(name).toMatch(/^(scaler|cyclecloud)\.[a-z_]+(\.[a-z_]+)*$/);
      expect(spec.unit.length).toBeGreaterThan(0);
      expect(spec.description.length).toBeGreaterThan(10);
    }
  });
});

describe('docs/operations.md "Metrics"', () => {
  it('lists every instrument once, with its kind and unit, and no instrument that does not exist', () => {
    const doc = readFileSync(join(root, 'docs/operations.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### Metrics'), doc.indexOf('### Kusto queries'));
    const rows = [...section.matchAll(/^\| `((?:scaler|cyclecloud)\.[a-z_.]+)` \| (\w+) \| `([^`]+)` \|/gm)].map((m) => ({ name: m[1]!, kind: m[2]!, unit: m[3]! }));
    expect(rows.map((r) => r.name).sort()).toEqual(Object.keys(METRICS).sort());
    for (const r of rows) expect({ kind: r.kind, unit: r.unit }).toEqual({ kind: METRICS[r.name as MetricName].kind, unit: METRICS[r.name as MetricName].unit });
  });
});
