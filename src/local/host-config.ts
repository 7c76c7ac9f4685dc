/**
 * The parts of host.json (and its `AzureFunctionsJobHost__…` app-setting overrides) the local host
 * honours, and `%SETTING%` binding expressions. Parsed once at start so a bad value stops start-up
 * with a message naming it, as the Functions host does.
 */
import { LocalHostError } from './registrations.ts';

/** Queue trigger behaviour (host.json `extensions.queues`), with the Functions defaults. */
export interface QueueSettings {
  /** Messages per receive, processed in parallel. Default 16, max 32. */
  batchSize: number;
  /** Fetch the next batch when in-flight messages drop to this. Default `batchSize / 2` (1 vCPU). */
  newBatchThreshold: number;
  /** Attempts before a message moves to `<queue>-poison`. Default 5. */
  maxDequeueCount: number;
  /** Delay before a failed message is visible again. Default 0. */
  visibilityTimeoutMs: number;
  /** Upper bound of the empty-queue polling backoff. Default 1 min, minimum 100 ms. */
  maxPollingIntervalMs: number;
  /** `base64` (default) or `none`. */
  messageEncoding: 'base64' | 'none';
}

/** What the local host reads from host.json. */
export interface HostSettings {
  /** host.json `functionTimeout`; default 5 min (Consumption). */
  functionTimeoutMs: number;
  queues: QueueSettings;
  /** host.json `extensions.http.routePrefix`; default `api`. */
  routePrefix: string;
}

const TIMESPAN = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$/;

/** Parses a .NET TimeSpan (`[d.]hh:mm:ss[.fffffff]`) into milliseconds. */
export function parseTimeSpan(text: string, field: string): number {
  const m = TIMESPAN.exec(text.trim());
  if (!m) throw new LocalHostError('LOCAL_CONFIG', `${field}: "${text}" is not a TimeSpan like 00:00:30`);
  const [, d = '0', h, min, s, frac = '0'] = m;
  const fracMs = Number(`0.${frac}`) * 1000;
  return Math.round(((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60_000 + Number(s) * 1000 + fracMs);
}

function record(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function integer(value: unknown, field: string, min: number, max: number, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new LocalHostError('LOCAL_CONFIG', `${field}: must be an integer from ${min} to ${max}`);
  }
  return n;
}

/**
 * Reads host.json content (already JSON-parsed) with the app-setting overrides the Functions host
 * accepts (`AzureFunctionsJobHost__extensions__queues__batchSize`, …).
 */
export function parseHostSettings(hostJson: unknown, env: Record<string, string | undefined> = {}): HostSettings {
  const root = record(hostJson);
  const ext = record(root.extensions);
  const q = { ...record(ext.queues) };
  for (const key of ['batchSize', 'newBatchThreshold', 'maxDequeueCount', 'visibilityTimeout', 'maxPollingInterval', 'messageEncoding']) {
    const override = env[`AzureFunctionsJobHost__extensions__queues__${key}`];
    if (override !== undefined) q[key] = override;
  }
  const field = (k: string) => `host.json extensions.queues.${k}`;
  const batchSize = integer(q.batchSize, field('batchSize'), 1, 32, 16);
  const encoding = q.messageEncoding ?? 'base64';
  if (encoding !== 'base64' && encoding !== 'none') throw new LocalHostError('LOCAL_CONFIG', `${field('messageEncoding')}: must be base64 or none`);
  const maxPollingIntervalMs = typeof q.maxPollingInterval === 'string' ? parseTimeSpan(q.maxPollingInterval, field('maxPollingInterval')) : 60_000;
  const routePrefix = record(ext.http).routePrefix;
  return {
    functionTimeoutMs: typeof root.functionTimeout === 'string' ? parseTimeSpan(root.functionTimeout, 'host.json functionTimeout') : 5 * 60_000,
    queues: {
      batchSize,
      newBatchThreshold: integer(q.newBatchThreshold, field('newBatchThreshold'), 0, 1000, Math.floor(batchSize / 2)),
      maxDequeueCount: integer(q.maxDequeueCount, field('maxDequeueCount'), 1, 1000, 5),
      visibilityTimeoutMs: typeof q.visibilityTimeout === 'string' ? parseTimeSpan(q.visibilityTimeout, field('visibilityTimeout')) : 0,
      maxPollingIntervalMs: Math.max(100, maxPollingIntervalMs),
      messageEncoding: encoding,
    },
    routePrefix: typeof routePrefix === 'string' ? routePrefix.replace(/^\/+|\/+$/g, '') : 'api',
  };
}

/**
 * Resolves `%SETTING%` binding expressions from app settings, as the Functions host does for
 * `schedule`, `queueName` and `route`. A missing setting is an error naming it and the function.
 */
export function resolveBindingExpression(text: string, env: Record<string, string | undefined>, where: string): string {
  return text.replace(/%([^%]+)%/g, (_all, setting: string) => {
    const value = env[setting];
    if (value === undefined || value === '') {
      throw new LocalHostError('LOCAL_BINDING', `${where}: app setting "${setting}" (from %${setting}%) is not set`);
    }
    return value;
  });
}
