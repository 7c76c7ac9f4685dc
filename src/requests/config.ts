/**
 * Settings of the request pipeline (Function App settings; all optional):
 * - `SCALE_OUT_PAUSED`: `true` holds scale-out (requests are still accepted). Default `false`.
 * - `REQUEST_DEADLINE_MINUTES`: how long a request may wait for capacity before it is final. Default 30.
 * - `MAX_REPLAN_ATTEMPTS`: re-plans of a colocated demand after partial placement groups. Default 3.
 * - `SNAPSHOT_MAX_AGE_SECONDS`: planning fetches a live snapshot when the stored one is older. Default 120.
 */
import { pausedFromEnv } from './state.ts';

export interface RequestPipelineConfig {
  pausedBySetting: boolean;
  deadlineMs: number;
  maxReplanAttempts: number;
  snapshotMaxAgeMs: number;
}

/** Stable code: a setting is malformed (the message names it, never its neighbours' values). */
export class RequestConfigError extends Error {
  override name = 'RequestConfigError' as const;
  readonly code = 'CONFIG_INVALID' as const;
}

function intSetting(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new RequestConfigError(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** Reads the pipeline settings; throws {@link RequestConfigError} naming a malformed one. */
export function requestConfigFromEnv(env: Record<string, string | undefined>): RequestPipelineConfig {
  const paused = env.SCALE_OUT_PAUSED?.trim();
  if (paused && !/^(true|false|1|0|yes|no)$/i.test(paused)) throw new RequestConfigError('SCALE_OUT_PAUSED must be true or false');
  return {
    pausedBySetting: pausedFromEnv(env),
    deadlineMs: intSetting(env, 'REQUEST_DEADLINE_MINUTES', 30, 1, 7 * 24 * 60) * 60_000,
    maxReplanAttempts: intSetting(env, 'MAX_REPLAN_ATTEMPTS', 3, 0, 20),
    snapshotMaxAgeMs: intSetting(env, 'SNAPSHOT_MAX_AGE_SECONDS', 120, 5, 3600) * 1000,
  };
}
