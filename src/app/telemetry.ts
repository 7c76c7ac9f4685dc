/**
 * The process's metrics, started on the first `services()`.
 *
 * - On Azure (`APPLICATIONINSIGHTS_CONNECTION_STRING` set, not `SCALER_MODE=local`): the Azure
 *   Monitor OpenTelemetry distro exports every instrument to Application Insights with the
 *   function app's managed identity (the client id from `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`,
 *   which infra/modules/function-app.bicep sets; local auth stays disabled), and is handed the pull
 *   reader so `/api/metrics` still answers for the instance.
 * - Elsewhere, or when the distro cannot start: our own MeterProvider with the pull reader only.
 */
import type { Logger } from '../platform/log.ts';
import { type MetricsHost, startAzureMonitorMetrics, startMetrics } from '../platform/metrics-host.ts';

let host: Promise<MetricsHost> | undefined;

export function processMetrics(env: Record<string, string | undefined>, logger?: Logger): Promise<MetricsHost> {
  host ??= startProcessMetrics(env, logger);
  return host;
}

/** Tests only. */
export async function resetProcessMetrics(): Promise<void> {
  const h = host;
  host = undefined;
  await (await h)?.shutdown();
}

/** The managed identity the Functions host itself uses for Application Insights (`ClientId=…;Authorization=AAD`). */
export function ingestionClientId(env: Record<string, string | undefined>): string | undefined {
  const auth = env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING ?? '';
  return /(?:^|;)\s*ClientId=([^;]+)/i.exec(auth)?.[1]?.trim() || env.AZURE_CLIENT_ID || undefined;
}

async function startProcessMetrics(env: Record<string, string | undefined>, logger?: Logger): Promise<MetricsHost> {
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING;
  if (!connectionString || env.SCALER_MODE === 'local') return startMetrics();
  try {
    return await startAzureMonitorMetrics(connectionString, ingestionClientId(env));
  } catch (error) {
    // Metrics must never stop the scaler: /api/metrics still answers, Azure Monitor gets the log lines.
    logger?.warn('Azure Monitor metrics could not start; metrics stay local to /api/metrics', { error });
    return startMetrics();
  }
}
