/**
 * The settings of a scaler under test: its own storage prefix and its own scale queue (the queue is
 * not prefixed, CONTRACT; test files share one azurite, and a pump on the default queue takes another
 * file's messages, which once made test/requests/lifecycle.test.ts flake), against a simulator's
 * cluster `hpc`. Whatever a test sets itself comes last.
 */
import { randomBytes } from 'node:crypto';

export interface SimulatorLogin {
  url: string;
  username: string;
  password: string;
}

/** A storage prefix no other test uses, starting with `tag` (lower case letters and digits). */
export function freshPrefix(tag: string): string {
  return `${tag}${randomBytes(4).toString('hex')}`;
}

/** Settings for `createServices` or `startScaler`; `storage` sets AzureWebJobsStorage when given. */
export function scalerEnv(sim: SimulatorLogin, prefix: string, extra: Record<string, string> = {}, storage?: string): Record<string, string> {
  return {
    ...(storage !== undefined ? { AzureWebJobsStorage: storage } : {}),
    STORAGE_PREFIX: prefix,
    SCALE_REQUESTS_QUEUE: `${prefix}-scale`,
    CYCLECLOUD_URL: sim.url,
    CYCLECLOUD_USERNAME: sim.username,
    CYCLECLOUD_PASSWORD: sim.password,
    CYCLECLOUD_CLUSTERS: 'hpc',
    ...extra,
  };
}
