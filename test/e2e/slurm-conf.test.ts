/**
 * `ccscale slurm conf`'s three files against the real slurmctld 22.05 (Debian's Slurm and MUNGE):
 * the generated slurm.conf, gres.conf and topology.conf are what slurmctld runs with; a GPU job
 * (`sbatch --gres=gpu:1`) powers up a node of the GPU partition (the simulator's GPU SKU) whose
 * slurmd reports the GPU; a 2-node job of the tightly coupled partition is kept inside one switch of
 * topology.conf and becomes one placement group; and that partition's own ResumeTimeout (shorter
 * than the global one) is the one slurmctld applies.
 *
 * Built like test/e2e/slurm.test.ts, on test/e2e/slurm-local.ts (one temp folder, this test's own processes:
 * munged, slurmctld, slurmd; contrib/slurm's programs against `npm start`). This machine has no GPU:
 * gres.conf's `File=/dev/nvidia0` is pointed at a stand-in device node in the folder (Slurm 22.05
 * drops a GPU without File= and then refuses the node, so File= is needed).
 *
 * Every process started here is killed by its process group on every exit path. Without the Slurm
 * and MUNGE binaries (or not as root) the file skips with one line saying how to run it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { expandHostlist } from '../../src/slurm/hostlist.ts';
import { eventually, root, sleep, startScaler, type RunningScaler, type SimCall } from './harness.ts';
import { fastPowerSave, localSlurmSettings, ProcessGroups, slurmCommand, slurmUnavailable, startSlurm } from './slurm-local.ts';

const why = slurmUnavailable(['curl', 'mknod']);
if (why) {
  console.warn(
    `real-Slurm conf test skipped (${why}): run it as root on Debian 12 after \`apt-get install slurmctld slurmd munge curl\` (.ci/run does), then \`npx vitest run test/e2e/slurm-conf.test.ts\``,
  );
}
const procs = new ProcessGroups();

/** The global ResumeTimeout, and the tightly coupled partition's own (shorter, so the test sees it applied). */
const RESUME_TIMEOUT_SEC = 120;
const MPI_RESUME_TIMEOUT_SEC = 15;

describe.skipIf(why !== null)('real Slurm 22.05 runs with the generated slurm.conf, gres.conf and topology.conf', () => {
  let T: string;
  let env: NodeJS.ProcessEnv;
  let host: RunningScaler;
  const sh = (cmd: string, args: string[]): string => slurmCommand(cmd, args, env);
  const creates = async (): Promise<SimCall[]> => (await host.simCalls()).filter((c) => c.method === 'POST' && c.path.endsWith('/nodes/create'));
  const simNodes = async (): Promise<{ Name: string; MachineType?: string; PlacementGroupId?: string }[]> =>
    ((await (await host.sim$('/clusters/hpc/nodes')).json()) as { nodes: { Name: string; MachineType?: string; PlacementGroupId?: string }[] }).nodes;
  const read = (f: string): string => (existsSync(join(T, f)) ? readFileSync(join(T, f), 'utf8') : '');
  const diagnostics = (): string => `--- scaler-power.log\n${read('scaler-power.log')}\n--- slurmctld.log (tail)\n${read('slurmctld.log').split('\n').slice(-60).join('\n')}`;
  const withDiagnostics = (e: Error): never => {
    throw new Error(`${e.message}\n${diagnostics()}`);
  };
  const jobState = (id: string): string => /JobState=(\S+)/.exec(sh('scontrol', ['show', 'job', id]))?.[1] ?? 'unknown';
  /** The nodes and request ids of the first resume the programs logged for a node of `nodearray`. */
  const resumed = (nodearray: string): { nodes: string; requestIds: string[] } | undefined => {
    const m = new RegExp(` resume: accepted (${nodearray}-\\S+): (\\{.*)$`, 'm').exec(read('scaler-power.log'));
    return m ? { nodes: m[1]!, requestIds: (JSON.parse(m[2]!) as { requestIds: string[] }).requestIds } : undefined;
  };

  beforeAll(async () => {
    T = mkdtempSync(join(tmpdir(), 'slurm-conf-e2e-'));
    chmodSync(T, 0o755);
    env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin`, SLURM_CONF: join(T, 'slurm.conf') };
    try {
      host = await startScaler({ storageConnectionString: inject('storageConnectionString'), env: { SIMULATOR_STEP_MS: '100' } });

      const programs = join(T, 'programs');
      mkdirSync(programs);
      for (const f of ['scaler-power.sh', 'resume.sh', 'suspend.sh', 'resume-fail.sh']) {
        copyFileSync(join(root, 'contrib/slurm', f), join(programs, f));
        chmodSync(join(programs, f), 0o755);
      }
      writeFileSync(join(T, 'scaler.conf'), `SCALER_URL=${host.base}\nSCALER_KEY=${host.key}\nSCALER_CLUSTER=hpc\nSCALER_LOG=${join(T, 'scaler-power.log')}\n`, { mode: 0o600 });

      // The three files, exactly as `ccscale slurm conf` writes them (short test timeouts).
      // No --gpus-for: the GPU count comes from the bucket's virtualMachine.gpuCount, which the CLI
      // reads from the capacity view (the contract's status route does not carry it).
      const generated = execFileSync(
        process.execPath,
        [
          join(root, 'bin/ccscale.mjs'),
          ...['--url', host.base.replace(/\/api$/, ''), '--key', host.key],
          ...['slurm', 'conf', '--cluster', 'hpc', '--programs-dir', programs],
          ...['--resume-timeout', String(RESUME_TIMEOUT_SEC), '--resume-timeout-for', `mpi=${MPI_RESUME_TIMEOUT_SEC}`, '--suspend-time', '5', '--suspend-timeout', '5'],
          ...['--gres-conf', join(T, 'gres.conf'), '--topology-conf', join(T, 'topology.conf')],
        ],
        { encoding: 'utf8', env: process.env },
      );
      // No GPU here: a stand-in device node for gres.conf's /dev/nvidia0 (slurmd only stats it).
      mkdirSync(join(T, 'dev'));
      execFileSync('mknod', [join(T, 'dev', 'nvidia0'), 'c', '1', '3']);
      const gres = read('gres.conf');
      expect(gres).toMatch(/^NodeName=gpu-\[1-4\] Name=gpu Count=1 File=\/dev\/nvidia0$/m);
      writeFileSync(join(T, 'gres.conf'), gres.replaceAll('File=/dev/', `File=${join(T, 'dev')}/`));

      writeFileSync(join(T, 'slurm.conf'), `${(await localSlurmSettings(T, 'scalerconfe2e')).join('\n')}\n${fastPowerSave(generated)}`);
      await startSlurm(T, env, procs).catch(withDiagnostics);
    } catch (error) {
      procs.killAll();
      throw error;
    }
  }, 120_000);

  afterAll(async () => {
    procs.killAll('SIGTERM');
    await sleep(500);
    procs.killAll();
    await host?.stop();
    if (T && !process.env.SLURM_E2E_KEEP) rmSync(T, { recursive: true, force: true });
  }, 60_000);

  it('starts with the three files: the partitions, their ResumeTimeouts, the GPU Gres, the features and the switches', () => {
    const sinfo = sh('sinfo', ['-h', '-o', '%P %t %D %f %G']);
    expect(sinfo).toMatch(/^ondemand\* idle~ 3 cloud,Standard_F32s_v2,regular,ondemand \(null\)$/m);
    expect(sinfo).toMatch(/^mpi idle~ 64 cloud,Standard_HB120rs_v3,regular,mpi \(null\)$/m);
    expect(sinfo).toMatch(/^spot idle~ 8 cloud,Standard_F32s_v2,spot \(null\)$/m);
    expect(sinfo).toMatch(/^gpu idle~ 4 cloud,Standard_NC24ads_A100_v4,regular,gpu gpu:1$/m);
    expect(sh('scontrol', ['show', 'partition', 'mpi'])).toMatch(new RegExp(`ResumeTimeout=${MPI_RESUME_TIMEOUT_SEC}\\b`));
    expect(sh('scontrol', ['show', 'partition', 'gpu'])).toMatch(new RegExp(`ResumeTimeout=${RESUME_TIMEOUT_SEC}\\b`));
    expect(sh('scontrol', ['show', 'config'])).toMatch(/^TopologyPlugin\s*=\s*topology\/tree$/m);
    const topology = sh('scontrol', ['show', 'topology']);
    expect(topology).toMatch(/^SwitchName=mpi-pg0 Level=0 .*Nodes=mpi-\[1-4\]$/m);
    expect(topology).toMatch(/^SwitchName=gpu Level=0 .*Nodes=gpu-\[1-4\]$/m);
    expect(topology).toMatch(/^SwitchName=top Level=1 .*Switches=.*mpi-pg\[0-15\]/m);
    expect(read('slurmctld.log')).not.toMatch(/error: .*(topolog|gres|switch)|switches lack access/i);
  });

  it('powers up a node of the GPU partition for `sbatch --gres=gpu:1`, and its slurmd reports the GPU the job gets', async () => {
    const createsBefore = (await creates()).length;
    const jobId = sh('sbatch', ['--parsable', '-p', 'gpu', '--gres=gpu:1', '-o', join(T, 'gpu-%j.out'), '--wrap', 'scontrol -d show job $SLURM_JOB_ID']);
    try {
      const { nodes: node, requestIds } = await eventually(async () => resumed('gpu'), 30_000, 'slurmctld to resume a GPU node').catch(withDiagnostics);
      expect(node).toMatch(/^gpu-\d$/);
      const record = await host.waitFinal(requestIds[0]!, 60_000);
      expect(record.state).toBe('fulfilled');
      const made = (await creates()).slice(createsBefore);
      expect(made).toHaveLength(1);
      expect((made[0]!.body as { sets: unknown[] }).sets).toEqual([
        expect.objectContaining({ nodearray: 'gpu', count: 1, nameFormat: 'gpu-%d', nameOffset: Number(node.slice(4)) }),
      ]);
      expect((await simNodes()).find((n) => n.Name === node)?.MachineType).toBe('Standard_NC24ads_A100_v4');

      // The VM boots: slurmd registers with the GPU of gres.conf (else Slurm would set the node INVAL).
      mkdirSync(join(T, 'spool', node), { recursive: true });
      const slurmd = procs.launch('slurmd', ['-D', '-b', '-N', node, '-f', join(T, 'slurm.conf')], env);
      const state = await eventually(
        async () => {
          const s = jobState(jobId);
          return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'BOOT_FAIL'].includes(s) ? s : undefined;
        },
        90_000,
        `GPU job ${jobId} to finish`,
      ).catch(withDiagnostics);
      expect(state).toBe('COMPLETED');
      expect(read(`gpu-${jobId}.out`)).toMatch(new RegExp(`Nodes=${node} .*GRES=gpu:1\\(IDX:0\\)`));
      expect(sh('scontrol', ['show', 'node', node])).toMatch(/^\s*Gres=gpu:1$/m);
      expect(read('slurmctld.log')).not.toMatch(/gres\/gpu count reported lower than configured/);
      process.kill(-slurmd.pid!, 'SIGKILL');
    } finally {
      spawnSync('scancel', [jobId], { env });
    }
  }, 180_000);

  it('keeps a 2-node job of the tightly coupled partition inside one switch, which is one placement group; its own ResumeTimeout applies', async () => {
    const createsBefore = (await creates()).length;
    const submittedAt = Date.now();
    const jobId = sh('sbatch', ['--parsable', '-N2', '-p', 'mpi', '-o', '/dev/null', '--wrap', 'true']);
    try {
      const { nodes, requestIds } = await eventually(async () => resumed('mpi'), 30_000, 'slurmctld to resume the MPI nodes').catch(withDiagnostics);
      const names = expandHostlist(nodes);
      expect(names).toHaveLength(2);

      // Both nodes sit under one leaf switch of the topology Slurm runs with.
      const leaves = sh('scontrol', ['show', 'topology'])
        .split('\n')
        .map((l) => /^SwitchName=(\S+) Level=0 .*Nodes=(\S+)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ name: m[1]!, nodes: new Set(expandHostlist(m[2]!)) }));
      const leaf = leaves.filter((l) => names.every((n) => l.nodes.has(n)));
      expect(leaf.map((l) => l.name)).toEqual([expect.stringMatching(/^mpi-pg\d+$/)]);

      // ...and in one placement group in CycleCloud: one colocated create of both.
      const record = await host.waitFinal(requestIds[0]!, 60_000);
      expect(record.state).toBe('fulfilled');
      const made = (await creates()).slice(createsBefore);
      expect(made).toHaveLength(1);
      const sets = (made[0]!.body as { sets: { nodearray: string; count: number; placementGroupId?: string }[] }).sets;
      expect(sets).toEqual([expect.objectContaining({ nodearray: 'mpi', count: 2, placementGroupId: expect.any(String) })]);
      const groups = new Set((await simNodes()).filter((n) => names.includes(n.Name)).map((n) => n.PlacementGroupId));
      expect([...groups]).toEqual([sets[0]!.placementGroupId]);

      // No slurmd starts for them: the mpi partition's ResumeTimeout (not the global one) ends the wait.
      await eventually(
        async () => (/not resumed by ResumeTimeout/.test(read('slurmctld.log')) ? true : undefined),
        (MPI_RESUME_TIMEOUT_SEC + 30) * 1000,
        'the mpi ResumeTimeout',
      ).catch(withDiagnostics);
      const waited = (Date.now() - submittedAt) / 1000;
      expect(waited).toBeGreaterThanOrEqual(MPI_RESUME_TIMEOUT_SEC - 1);
      expect(waited).toBeLessThan(RESUME_TIMEOUT_SEC);
    } finally {
      spawnSync('scancel', [jobId], { env });
    }
  }, 180_000);

  it('places a 4-node job in one whole switch when the first one lacks a node (without topology.conf, slurmctld 22.05 picks mpi-[4-7], across two)', async () => {
    // Prepare: placement group mpi-pg0 (mpi-[1-4]) cannot hold 4 nodes now
    sh('scontrol', ['update', 'nodename=mpi-3', 'state=drain', 'reason=e2e']);
    const createsBefore = (await creates()).length;
    const before = read('scaler-power.log').length;
    const jobId = sh('sbatch', ['--parsable', '-N4', '-p', 'mpi', '-o', '/dev/null', '--wrap', 'true']);
    try {
      // Act: slurmctld picks the nodes and resumes them
      const nodes = await eventually(
        async () => / resume: accepted (mpi-\S+): /.exec(read('scaler-power.log').slice(before))?.[1],
        30_000,
        'slurmctld to resume the 4-node MPI job',
      ).catch(withDiagnostics);

      // Assess: the four are one whole switch of topology.conf, and one create of 4 in one placement group
      const names = expandHostlist(nodes);
      expect(names).toHaveLength(4);
      expect(names).not.toContain('mpi-3');
      const k = (Number(names[0]!.slice(4)) - 1) / 4;
      expect(Number.isInteger(k) && k >= 1).toBe(true);
      expect(sh('scontrol', ['show', 'topology', `mpi-pg${k}`])).toContain(`Nodes=${nodes}`);
      const made = await eventually(
        async () => {
          const list = (await creates()).slice(createsBefore);
          return list.length > 0 ? list : undefined;
        },
        30_000,
        'the create of the 4-node job',
      );
      expect(made).toHaveLength(1);
      expect((made[0]!.body as { sets: unknown[] }).sets).toEqual([expect.objectContaining({ nodearray: 'mpi', count: 4, placementGroupId: expect.any(String) })]);
    } finally {
      spawnSync('scancel', [jobId], { env });
      spawnSync('scontrol', ['update', 'nodename=mpi-3', 'state=resume'], { env });
    }
  }, 120_000);
});
