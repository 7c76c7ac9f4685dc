/**
 * The process's one MeterProvider (src/platform/metrics-host.ts), started on the first `services()`:
 * `GET /api/metrics` reads it on every host.
 */
import { type MetricsHost, startMetrics } from '../platform/metrics-host.ts';

let host: MetricsHost | undefined;

export function processMetrics(_env: Record<string, string | undefined>): MetricsHost {
  host ??= startMetrics();
  return host;
}
