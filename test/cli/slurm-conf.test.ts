import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    // The status, then the capacity view for each bucket's gpuCount (the status keeps to the contract's fields).
    expect(seen).toEqual(['GET http://scaler.test/api/clusters/hpc/status key=k-123', 'GET http://scaler.test/api/clusters/hpc/capacity key=k-123']);
    expect(stdout.text).toMatch(/^ResumeProgram=\/opt\/x\/resume\.sh$/m);
    expect(stdout.text).toMatch(/^SuspendTime=60$/m);
    expect(stdout.text).toMatch(/^NodeName=ondemand-\[1-3\] .*State=CLOUD$/m);
    expect(stdout.text).toMatch(/^PartitionName=mpi Nodes=mpi-\[1-64\]/m);
  });

  it('writes gres.conf and topology.conf with --gres-conf and --topology-conf, and per-partition ResumeTimeouts', async () => {
    // Prepare: the status of hpc with a GPU nodearray (its bucket's virtualMachine.gpuCount 1)
    const s = seedSnapshot();
    const gpu = { ...s.nodearrays[0]!.buckets[0]!, bucketId: 'g1', machineType: 'Standard_NC24ads_A100_v4', vcpuCount: 24, memoryGB: 220, maxCount: 4, gpuCount: 1 };
    const status = {
      cluster: 'hpc',
      takenAt: s.takenAt,
      ageSeconds: 1,
      stale: false,
      nodearrays: [...s.nodearrays.map((na) => ({ name: na.name, buckets: na.buckets })), { name: 'gpu', buckets: [gpu] }],
    };
    const fetch = (async () => new Response(JSON.stringify(status), { status: 200, headers: { 'content-type': 'application/json' } })) as unknown as typeof globalThis.fetch;
    const dir = mkdtempSync(join(tmpdir(), 'slurm-conf-cli-'));
    try {
      const stdout = sink();
      const run = (extra: string[]) => main(['slurm', 'conf', '--cluster', 'hpc', ...extra], { stdout, stderr: sink(), env: {}, fetch });

      // Act
      const code = await run([
        '--resume-timeout-for',
        'gpu=2400',
        '--resume-timeout-for',
        'mpi=3600',
        '--gres-conf',
        join(dir, 'gres.conf'),
        '--topology-conf',
        join(dir, 'topology.conf'),
      ]);

      // Assess
      expect(code).toBe(0);
      expect(stdout.text).toMatch(/^TopologyPlugin=topology\/tree$/m);
      expect(stdout.text).toMatch(/^GresTypes=gpu$/m);
      expect(stdout.text).not.toMatch(/WARNING/);
      expect(stdout.text).toMatch(/^NodeName=gpu-\[1-4\] CPUs=24 RealMemory=\d+ Gres=gpu:1 Feature=cloud,Standard_NC24ads_A100_v4,regular,gpu State=CLOUD$/m);
      expect(stdout.text).toMatch(/^PartitionName=gpu .*ResumeTimeout=2400$/m);
      expect(stdout.text).toMatch(/^PartitionName=mpi .*ResumeTimeout=3600 OverSubscribe=EXCLUSIVE$/m);
      expect(stdout.text).toMatch(/^PartitionName=ondemand .*ResumeTimeout=1800$/m);
      expect(readFileSync(join(dir, 'gres.conf'), 'utf8')).toMatch(/^NodeName=gpu-\[1-4\] Name=gpu Count=1 File=\/dev\/nvidia0$/m);
      expect(readFileSync(join(dir, 'topology.conf'), 'utf8')).toMatch(/^SwitchName=mpi-pg0 Nodes=mpi-\[1-4\]$/m);
      expect(readFileSync(join(dir, 'topology.conf'), 'utf8')).toMatch(/^SwitchName=top Switches=ondemand,mpi-pg\[0-15\],gpu$/m);
      expect(readdirSync(dir).sort()).toEqual(['gres.conf', 'topology.conf']);

      // A nodearray the cluster does not have, or a malformed value, is a usage error naming it; nothing is written.
      const stderr = sink();
      expect(await main(['slurm', 'conf', '--cluster', 'hpc', '--gpus-for', 'gpus=1', '--gres-conf', join(dir, 'other.conf')], { stdout: sink(), stderr, env: {}, fetch })).toBe(2);
      expect(stderr.text).toContain('--gpus-for names gpus: cluster hpc has no such nodearray (it has ondemand, mpi, gpu)');
      expect(readdirSync(dir)).not.toContain('other.conf');
      const bad = sink();
      expect(await main(['slurm', 'conf', '--cluster', 'hpc', '--resume-timeout-for', 'gpu:60'], { stdout: sink(), stderr: bad, env: {}, fetch })).toBe(2);
      expect(bad.text).toContain('--resume-timeout-for takes <nodearray>=<positive number>');
      // A folder that does not exist: a usage error, not a stack trace.
      const missing = sink();
      expect(await main(['slurm', 'conf', '--cluster', 'hpc', '--topology-conf', join(dir, 'no/such/topology.conf')], { stdout: sink(), stderr: missing, env: {}, fetch })).toBe(2);
      expect(missing.text).toMatch(/cannot write .*topology\.conf: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('needs --cluster', async () => {
    const stderr = sink();
    expect(await main(['slurm', 'conf'], { stdout: sink(), stderr, env: {} })).toBe(2);
    expect(stderr.text).toMatch(/--cluster/);
  });
});

describe('ccscale slurm conf: the GPU count', () => {
  it("comes from the capacity view's gpuCount without --gpus-for; a scaler without the view leaves it to the flag", async () => {
    const s = seedSnapshot();
    const gpu = { ...s.nodearrays[0]!.buckets[0]!, bucketId: 'g1', machineType: 'Standard_NC24ads_A100_v4', vcpuCount: 24, memoryGB: 220, maxCount: 4 };
    const status = { cluster: 'hpc', takenAt: s.takenAt, ageSeconds: 1, stale: false, nodearrays: [{ name: 'gpu', buckets: [gpu] }] };
    const withView = (view: boolean) =>
      (async (url: string | URL) => {
        if (String(url).endsWith('/capacity')) {
          return view
            ? new Response(JSON.stringify({ nodearrays: [{ name: 'gpu', buckets: [{ bucketId: 'g1', gpuCount: 2 }] }] }), {
                status: 200,
                headers: { 'content-type': 'application/json' },
              })
            : new Response(JSON.stringify({ code: 'HTTP_NOT_FOUND', detail: 'no route' }), { status: 404, headers: { 'content-type': 'application/problem+json' } });
        }
        return new Response(JSON.stringify(status), { status: 200, headers: { 'content-type': 'application/json' } });
      }) as typeof globalThis.fetch;
    const out = sink();
    expect(await main(['--url', 'http://scaler.test', 'slurm', 'conf', '--cluster', 'hpc'], { stdout: out, stderr: sink(), env: {}, fetch: withView(true) })).toBe(0);
    expect(out.text).toMatch(/^NodeName=gpu-\[1-4\] .*Gres=gpu:2/m);
    const old = sink();
    expect(await main(['--url', 'http://scaler.test', 'slurm', 'conf', '--cluster', 'hpc'], { stdout: old, stderr: sink(), env: {}, fetch: withView(false) })).toBe(0);
    expect(old.text).not.toMatch(/Gres=gpu/);
  });
});
