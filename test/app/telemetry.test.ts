/**
 * Where the metrics go (src/app/telemetry.ts): on Azure the Azure Monitor distro gets the managed
 * identity the Functions host uses for ingestion and the pull reader `/api/metrics` reads; locally,
 * or when the distro cannot start, our own provider. The distro is replaced by a fake that does
 * what NodeSDK does with `metricReaders` (registers a provider with them), so no test talks to Azure.
 */
import { metrics } from '@opentelemetry/api';
import { MeterProvider, type MetricReader } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ingestionClientId, processMetrics, resetProcessMetrics } from '../../src/app/telemetry.ts';
import { recordMetric } from '../../src/platform/metrics.ts';
import { createLogger } from '../../src/platform/log.ts';

const distro = vi.hoisted(() => ({ calls: [] as unknown[], fail: false }));
vi.mock('@azure/monitor-opentelemetry', () => ({
  useAzureMonitor: (options: { metricReaders?: MetricReader[] }) => {
    if (distro.fail) throw new Error('distro refused');
    distro.calls.push(options);
    metrics.disable();
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: options.metricReaders ?? [] }));
  },
  shutdownAzureMonitor: async () => {
    metrics.disable();
  },
}));

const AZURE = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/',
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD',
};

afterEach(async () => {
  await resetProcessMetrics();
  distro.calls.length = 0;
  distro.fail = false;
});

describe('process metrics', () => {
  it('on Azure: the distro exports with the ingestion identity and hands the pull reader back to /api/metrics', async () => {
    const host = await processMetrics(AZURE);
    recordMetric('scaler.create.calls', 1, { cluster: 'hpc', outcome: 'accepted' });

    expect(distro.calls).toHaveLength(1);
    const options = distro.calls[0] as { azureMonitorExporterOptions: { connectionString: string; credential: object }; metricReaders: MetricReader[] };
    expect(options.azureMonitorExporterOptions.connectionString).toBe(AZURE.APPLICATIONINSIGHTS_CONNECTION_STRING);
    expect(options.azureMonitorExporterOptions.credential.constructor.name).toBe('DefaultAzureCredential');
    expect(options.metricReaders).toHaveLength(1);
    expect(await host.prometheusText()).toMatch(/^scaler_create_calls_total\{cluster="hpc",outcome="accepted",otel_scope_name="cyclecloud-scaler"\} 1$/m);
  });

  it('the ingestion identity comes from the authentication string, else AZURE_CLIENT_ID', () => {
    expect(ingestionClientId(AZURE)).toBe('11111111-2222-3333-4444-555555555555');
    expect(ingestionClientId({ APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=abc' })).toBe('abc');
    expect(ingestionClientId({ AZURE_CLIENT_ID: 'def' })).toBe('def');
    expect(ingestionClientId({})).toBeUndefined();
  });

  it('npm start (SCALER_MODE=local) never starts the distro, even with a connection string', async () => {
    const host = await processMetrics({ ...AZURE, SCALER_MODE: 'local' });
    recordMetric('scaler.requests', 1, { cluster: 'hpc', outcome: 'created' });

    expect(distro.calls).toHaveLength(0);
    expect(await host.prometheusText()).toMatch(/^scaler_requests_total\{cluster="hpc",outcome="created",otel_scope_name="cyclecloud-scaler"\} 1$/m);
  });

  it('a distro that cannot start leaves the metrics local and says so once, without the connection string', async () => {
    distro.fail = true;
    const lines: string[] = [];
    const host = await processMetrics(
      AZURE,
      createLogger((_level, line) => lines.push(line)),
    );
    recordMetric('scaler.requests', 1, { cluster: 'hpc', outcome: 'created' });

    expect(await host.prometheusText()).toContain('scaler_requests_total{cluster="hpc"');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('Azure Monitor metrics could not start');
    expect(lines[0]).not.toContain('InstrumentationKey');
  });
});
