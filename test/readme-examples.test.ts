/**
 * Every command of the README's "First run" block works as written against `npm start` on the
 * embedded defaults (simulator step 1 s, tracker polls from 5 s, snapshot every minute), and all of
 * them together finish within a minute.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { root, startScaler, type RunningScaler } from './e2e/harness.ts';
import { readmeExamples, runReadmeExamples } from './readme/examples.ts';

let host: RunningScaler;

beforeAll(async () => {
  // The harness speeds things up for other tests; the README promises the defaults.
  host = await startScaler({
    storageConnectionString: inject('storageConnectionString'),
    env: { SIMULATOR_STEP_MS: undefined, TRACKER_POLL_MIN_SECONDS: undefined, TRACKER_POLL_MAX_SECONDS: undefined, SNAPSHOT_SCHEDULE: undefined },
  });
}, 60_000);

afterAll(async () => {
  await host?.stop();
}, 30_000);

describe('README examples', () => {
  it('names the commands a newcomer runs', () => {
    const commands = readmeExamples(root);
    expect(commands[0]).toMatch(/^export SCALER_URL=/);
    expect(commands.some((c) => c.startsWith('npx ccscale watch demo-1'))).toBe(true);
    expect(commands.some((c) => c.includes('examples/job-4711.json'))).toBe(true);
  });

  it('runs every command as written, each exiting 0, all within a minute', async () => {
    // Act
    const started = Date.now();
    const runs = await runReadmeExamples(root, root, { base: host.base, key: host.key }, process.env, 60_000);
    const elapsed = Date.now() - started;

    // Assess
    const failed = runs.find((r) => r.code !== 0);
    expect(failed, failed && `${failed.command}\n${failed.output}`).toBeUndefined();
    expect(runs).toHaveLength(readmeExamples(root).length);
    expect(elapsed).toBeLessThan(60_000);
    const out = (prefix: string) => runs.find((r) => r.command.startsWith(prefix))!.output;
    expect(out('curl')).toContain('"requestId":"demo-1"');
    expect(out('npx ccscale watch demo-1')).toContain('fulfilled');
    expect(out('npx ccscale submit --file examples/job-4711.json')).toMatch(/job-4711 ended fulfilled: 6\/6 nodes ready/);
    expect(out('npx ccscale status job-4711')).toContain('job-4711-d0-g0');
    expect(out('npx ccscale plan')).toMatch(/rejected/);
    expect(out('npx ccscale health')).toContain('status: ok');
  }, 90_000);
});
