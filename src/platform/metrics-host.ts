/**
 * The MeterProvider a host registers: a pull reader that `/api/metrics` serializes in the
 * Prometheus text format, plus any reader the host adds (on Azure, Azure Monitor's exporter).
 */
import { metrics } from '@opentelemetry/api';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';

/** Collects on demand only: `/api/metrics` asks, nothing is pushed. */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export interface MetricsHost {
  /** Everything recorded so far in this process, as Prometheus text (version 0.0.4). */
  prometheusText(): Promise<string>;
  shutdown(): Promise<void>;
}

/**
 * Registers the process-wide MeterProvider (replacing any earlier one) and returns its reader.
 * `readers` are added beside the pull reader, so one set of figures serves both.
 */
export function startMetrics(options: { serviceVersion?: string; readers?: MetricReader[] } = {}): MetricsHost {
  const pull = new PullReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'cyclecloud-scaler', ...(options.serviceVersion ? { 'service.version': options.serviceVersion } : {}) }),
    readers: [pull, ...(options.readers ?? [])],
  });
  metrics.disable();
  metrics.setGlobalMeterProvider(provider);
  const serializer = new PrometheusSerializer('', false);
  return {
    async prometheusText() {
      const { resourceMetrics } = await pull.collect();
      return serializer.serialize(resourceMetrics);
    },
    async shutdown() {
      await provider.shutdown();
      metrics.disable();
    },
  };
}
