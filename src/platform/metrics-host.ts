/**
 * The MeterProvider a host registers, and the pull reader `/api/metrics` serializes in the
 * Prometheus text format. Locally the scaler registers its own provider ({@link startMetrics}); on
 * Azure the Azure Monitor distro registers one and is handed the pull reader (src/app/telemetry.ts),
 * so one set of figures serves both.
 */
import { metrics } from '@opentelemetry/api';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';

/** Collects on demand only: `/api/metrics` asks, nothing is pushed. */
export class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export interface MetricsHost {
  /** Everything recorded so far in this process, as Prometheus text (version 0.0.4). */
  prometheusText(): Promise<string>;
  shutdown(): Promise<void>;
}

/** A host over a pull reader some provider (ours or the distro's) was given. */
export function pullHost(pull: PullReader, shutdown: () => Promise<void>): MetricsHost {
  const serializer = new PrometheusSerializer('', false);
  return {
    async prometheusText() {
      const { resourceMetrics } = await pull.collect();
      return serializer.serialize(resourceMetrics);
    },
    shutdown,
  };
}

/**
 * Registers the process-wide MeterProvider (replacing any earlier one) with a pull reader, plus
 * `readers` beside it.
 */
export function startMetrics(options: { serviceVersion?: string; readers?: MetricReader[] } = {}): MetricsHost {
  const pull = new PullReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'cyclecloud-scaler', ...(options.serviceVersion ? { 'service.version': options.serviceVersion } : {}) }),
    readers: [pull, ...(options.readers ?? [])],
  });
  metrics.disable();
  metrics.setGlobalMeterProvider(provider);
  return pullHost(pull, async () => {
    await provider.shutdown();
    metrics.disable();
  });
}

/**
 * Starts the Azure Monitor OpenTelemetry distro: it registers the process's providers and exports
 * to Application Insights with an Entra ID token of `clientId`'s managed identity (the component has
 * local auth disabled); `pull` is added beside its exporter so `/api/metrics` keeps answering.
 */
export async function startAzureMonitorMetrics(connectionString: string, clientId: string | undefined): Promise<MetricsHost> {
  const [{ useAzureMonitor, shutdownAzureMonitor }, { DefaultAzureCredential }] = await Promise.all([import('@azure/monitor-opentelemetry'), import('@azure/identity')]);
  const pull = new PullReader();
  useAzureMonitor({
    azureMonitorExporterOptions: { connectionString, credential: new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {}) },
    metricReaders: [pull],
  });
  return pullHost(pull, shutdownAzureMonitor);
}
