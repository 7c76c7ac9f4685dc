/**
 * Every command of the README's "First run" block works as written against `npm start` on the
 * embedded defaults (simulator step 1 s, tracker polls from 5 s, snapshot every minute), and all of
 * them together finish within a minute.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { root, startScaler, type RunningScaler } from './e2e/harness.ts';
import { readmeExamples, runReadmeExamples } from './readme/examples.ts';
import { type Family, histogram, labelKeys, parsePrometheus, prometheusParserMissing, sampleSum } from './helpers/prometheus.ts';

const parserMissing = prometheusParserMissing();
if (parserMissing) console.log(`skipping the /api/metrics check after the README run: ${parserMissing}`);

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

  it.skipIf(parserMissing !== null)(
    'then /api/metrics counts exactly what the run did, in valid Prometheus text',
    async () => {
      // Act: the tracker records a final operation's nodes right after the ledger says fulfilled, so poll briefly
      let families: Family[] = [];
      const readyOndemand = () => sampleSum(families, 'scaler_nodes_ready_total', { cluster: 'hpc', nodearray: 'ondemand' });
      for (let i = 0; i < 50 && readyOndemand() < 8; i++) {
        const res = await host.api('/metrics');
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
        const body = await res.text();
        if (process.env.METRICS_DUMP) (await import('node:fs')).writeFileSync(process.env.METRICS_DUMP, body);
        families = parsePrometheus(body);
        if (readyOndemand() < 8) await new Promise((r) => setTimeout(r, 200));
      }

      // Assess: demo-1 (2 nodes) and job-4711 (a gang of 4 HC44rs + 2): two requests, two creates, 8 nodes; the plan created nothing
      const hpc = { cluster: 'hpc' };
      expect(sampleSum(families, 'scaler_requests_total', { ...hpc, outcome: 'created' })).toBe(2);
      expect(sampleSum(families, 'scaler_requests_completed_total', { ...hpc, outcome: 'fulfilled' })).toBe(2);
      expect(sampleSum(families, 'scaler_create_calls_total', { ...hpc, outcome: 'accepted' })).toBe(2);
      expect(sampleSum(families, 'scaler_create_calls_total', hpc)).toBe(2);
      expect(sampleSum(families, 'scaler_nodes_requested_total', { ...hpc, nodearray: 'ondemand' })).toBe(8);
      expect(readyOndemand()).toBe(8);
      // The gang's 4 are HC44rs (it asked for them); the planner picks the others' size
      expect(sampleSum(families, 'scaler_nodes_ready_total', { ...hpc, machine_type: 'Standard_HC44rs' })).toBeGreaterThanOrEqual(4);
      expect(sampleSum(families, 'scaler_nodes_failed_total')).toBe(0);
      expect(sampleSum(families, 'scaler_nodes_timed_out_total')).toBe(0);
      expect(sampleSum(families, 'scaler_over_ask_total')).toBe(0);
      expect(histogram(families, 'scaler_create_latency', hpc).count).toBe(2);
      expect(histogram(families, 'scaler_node_boot_time', hpc).count).toBe(8);
      expect(histogram(families, 'cyclecloud_client_duration', { operation: 'POST /clusters/{cluster}/nodes/create', outcome: '202' }).count).toBe(2);
      expect(sampleSum(families, 'cyclecloud_client_errors_total')).toBe(0);
      expect(sampleSum(families, 'scaler_messages_rejected_total')).toBe(0);
      expect(families.some((f) => f.name === 'scaler_snapshot_age' && f.samples.some((x) => x.labels.cluster === 'hpc'))).toBe(true);
      // Bounded dimensions only: no request, operation or job id became a label
      const allowed = new Set(['cluster', 'nodearray', 'machine_type', 'outcome', 'state', 'operation', 'le', 'otel_scope_name']);
      expect([...labelKeys(families.filter((f) => /^(scaler|cyclecloud)_/.test(f.name)))].filter((k) => !allowed.has(k))).toEqual([]);
      const text = JSON.stringify(families);
      for (const id of ['demo-1', 'job-4711', '4711']) expect(text).not.toContain(`"${id}"`);
    },
    30_000,
  );
});
