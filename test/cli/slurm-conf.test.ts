import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { seedSnapshot } from '../planning/fixtures.ts';

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, done) {
      w.text += String(chunk);
      done();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

describe('ccscale slurm conf', () => {
  it('prints the slurm.conf lines from the cluster status, with the given programs and timeouts', async () => {
    // Prepare: an API that answers the status of hpc
    const s = seedSnapshot();
    const status = { cluster: 'hpc', takenAt: s.takenAt, ageSeconds: 1, stale: false, nodearrays: s.nodearrays.map((na) => ({ name: na.name, buckets: na.buckets })) };
    const seen: string[] = [];
    const fetch = (async (url: string | URL, init?: RequestInit) => {
      seen.push(`${init?.method ?? 'GET'} ${String(url)} key=${new Headers(init?.headers).get('x-functions-key')}`);
      return new Response(JSON.stringify(status), { status: 200, headers: { 'content-type': 'application/json' } });
    }) as typeof globalThis.fetch;
    const stdout = sink();
    const stderr = sink();

    // Act
    const code = await main(['--url', 'http://scaler.test', '--key', 'k-123', 'slurm', 'conf', '--cluster', 'hpc', '--programs-dir', '/opt/x', '--suspend-time', '60'], {
      stdout,
      stderr,
      env: {},
      fetch,
    });

    // Assess
    expect(code).toBe(0);
    expect(seen).toEqual(['GET http://scaler.test/api/clusters/hpc/status key=k-123']);
    expect(stdout.text).toMatch(/^ResumeProgram=\/opt\/x\/resume\.sh$/m);
    expect(stdout.text).toMatch(/^SuspendTime=60$/m);
    expect(stdout.text).toMatch(/^NodeName=ondemand-\[1-3\] .*State=CLOUD$/m);
    expect(stdout.text).toMatch(/^PartitionName=mpi Nodes=mpi-\[1-64\]/m);
  });

  it('needs --cluster', async () => {
    const stderr = sink();
    expect(await main(['slurm', 'conf'], { stdout: sink(), stderr, env: {} })).toBe(2);
    expect(stderr.text).toMatch(/--cluster/);
  });
});
