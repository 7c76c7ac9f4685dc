/**
 * THE real-Slurm test: Debian's slurmctld, slurmd and MUNGE (Slurm 22.05) drive the scaler through
 * power saving, exactly as on a CycleCloud head node.
 *
 * Everything runs as this test's own processes in one temp folder: `munged` with its own key and
 * socket, `slurmctld` with a `slurm.conf` made of a few local settings (free ports, state and logs in
 * the folder) plus what `ccscale slurm conf --cluster hpc` prints for the simulator's cluster, with
 * contrib/slurm's scripts as ResumeProgram/SuspendProgram/ResumeFailProgram pointing at `npm start`.
 * A job is submitted with `sbatch`; slurmctld calls resume; the scaler creates exactly that node in
 * the simulator; when its record says Ready the test starts `slurmd -b -N <node>` (standing in for
 * the VM's boot, which cluster-init does in Azure); the job runs; after SuspendTime slurmctld calls
 * suspend and the node is terminated. A 4-node job in the tightly coupled partition must become one
 * create with one placement group of 4.
 *
 * The scaler runs with `REQUIRE_SIGNED_WEBHOOKS=true`: the scripts sign every POST with the key file
 * `scaler.conf` names (an unsigned POST is refused with 401), as a hardened head node would.
 *
 * Every process started here is killed by its process group on every exit path. Without the Slurm
 * and MUNGE binaries (or not as root) the file skips with one line saying how to run it.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { expandHostlist, formatHostlist } from '../../src/slurm/hostlist.ts';
import { eventually, root, sleep, startScaler, type RunningScaler, type SimCall } from './harness.ts';
import { signRequest } from '../../src/platform/signature.ts';
import { fastPowerSave, localSlurmSettings, ProcessGroups, slurmCommand, slurmUnavailable, startSlurm } from './slurm-local.ts';

/** The HMAC key the scaler requires and the head node's key file holds. */
const SIGNING_SECRET = 'slurm-e2e-signing-key-0123456789';

const why = slurmUnavailable(['squeue', 'curl']);
if (why) {
  console.warn(
    `real-Slurm test skipped (${why}): run it as root on Debian 12 after \`apt-get install slurmctld slurmd munge curl\` (.ci/run does), then \`npx vitest run test/e2e/slurm.test.ts\``,
  );
}
const scontrolOnly = spawnSync('sh', ['-c', 'command -v scontrol'], { env: { PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).status === 0;

/** Processes this file started (process-group leaders), killed together on every exit path. */
const procs = new ProcessGroups();
const killAll = (signal?: NodeJS.Signals) => procs.killAll(signal);
const launch = (cmd: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess => procs.launch(cmd, args, env);

/** Short, so the MPI job's nodes (never booted here) reach ResumeTimeout and ResumeFailProgram within the test. */
const RESUME_TIMEOUT_SEC = 30;

let T: string;
let env: NodeJS.ProcessEnv;
const sh = (cmd: string, args: string[]): string => slurmCommand(cmd, args, env);

describe.skipIf(!scontrolOnly)('hostlist expressions, against scontrol', () => {
  let confDir: string;
  beforeAll(() => {
    confDir = mkdtempSync(join(tmpdir(), 'hostlist-'));
    writeFileSync(join(confDir, 'slurm.conf'), 'ClusterName=hl\nSlurmctldHost=localhost\nNodeName=x State=CLOUD\nPartitionName=p Nodes=x\n');
  });
  afterAll(() => rmSync(confDir, { recursive: true, force: true }));
  const scontrol = (what: 'hostnames' | 'hostlist', expr: string): string =>
    execFileSync('scontrol', ['show', what, expr], { env: { ...process.env, SLURM_CONF: join(confDir, 'slurm.conf') }, encoding: 'utf8' }).trim();

  it('expands and formats like `scontrol show hostnames|hostlist` (property test)', () => {
    const prefix = fc.constantFrom('hpc-', 'htc-', 'n', 'a.b-', 'gpu', '');
    const number = fc
      .tuple(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 3 }))
      .map(([n, pad]) => String(n).padStart(String(n).length + (n % 3 === 0 ? pad : 0), '0'));
    const name = fc.oneof({ weight: 9, arbitrary: fc.tuple(prefix, number).map(([p, n]) => `${p}${n}`) }, { weight: 1, arbitrary: fc.constantFrom('login', 'head-a') });
    const runs = fc
      .array(fc.tuple(prefix, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 6 })), { minLength: 1, maxLength: 4 })
      .map((rs) => rs.flatMap(([p, start, len]) => Array.from({ length: len }, (_, i) => `${p}${start + i}`)));
    const names = fc.oneof(fc.array(name, { minLength: 1, maxLength: 12 }), runs);
    fc.assert(
      fc.property(names, (list) => {
        const formatted = formatHostlist(list);
        expect(formatted).toBe(scontrol('hostlist', list.join(',')));
        expect(expandHostlist(formatted)).toEqual(scontrol('hostnames', formatted).split('\n'));
        expect(expandHostlist(formatted)).toEqual(list);
      }),
      { numRuns: 60, seed: 20261130 },
    );
  });

  it('expands hand-written expressions like scontrol, and refuses what it refuses', () => {
    for (const expr of ['hpc-[1-4,7],htc-3', 'a[01-10]', 'a[1-010]', 'a[099-101]', 'a[1-2]b[3-4]', 'n[1-3],n[2-5]', 'a1 a2', '[1-3]', 'a[5,1-3],b']) {
      expect(expandHostlist(expr), expr).toEqual(scontrol('hostnames', expr).split('\n'));
    }
    for (const bad of ['a[3-1]', 'a[]', 'a[x]', 'a[1-2]b', 'a[1-3]]']) {
      expect(() => expandHostlist(bad), bad).toThrow();
      // scontrol exits 0 even then; it says so on stderr.
      const run = spawnSync('scontrol', ['show', 'hostnames', bad], { env: { ...process.env, SLURM_CONF: join(confDir, 'slurm.conf') }, encoding: 'utf8' });
      expect(`${run.stdout}${run.stderr}`, bad).toMatch(/Invalid (hostlist|range)/);
    }
  });
});

describe.skipIf(why !== null)('real Slurm 22.05 power saving through the scaler', () => {
  let host: RunningScaler;
  const timings: Record<string, number> = {};
  const t0 = Date.now();
  let slurmd: ChildProcess | undefined;

  const creates = async (): Promise<SimCall[]> => (await host.simCalls()).filter((c) => c.method === 'POST' && c.path.endsWith('/nodes/create'));
  const simNodes = async (): Promise<{ Name: string; Status?: string; PlacementGroupId?: string }[]> =>
    ((await (await host.sim$('/clusters/hpc/nodes')).json()) as { nodes: { Name: string; Status?: string; PlacementGroupId?: string }[] }).nodes;
  const powerLog = (): string => (existsSync(join(T, 'scaler-power.log')) ? readFileSync(join(T, 'scaler-power.log'), 'utf8') : '');
  const ctldLog = (): string => (existsSync(join(T, 'slurmctld.log')) ? readFileSync(join(T, 'slurmctld.log'), 'utf8') : '');
  const diagnostics = (): string => `--- scaler-power.log\n${powerLog()}\n--- slurmctld.log (tail)\n${ctldLog().split('\n').slice(-60).join('\n')}`;
  const jobState = (id: string): string => /JobState=(\S+)/.exec(sh('scontrol', ['show', 'job', id]))?.[1] ?? 'unknown';
  /** The request ids of the scaler's answer to the resume of `nodes` (logged by contrib/slurm). */
  const acceptedIds = (action: string, nodes: string): string[] | undefined => {
    const line = powerLog()
      .split('\n')
      .find((l) => l.includes(` ${action}: accepted ${nodes}: `));
    return line ? (JSON.parse(line.slice(line.indexOf(': {') + 2)) as { requestIds: string[] }).requestIds : undefined;
  };

  beforeAll(async () => {
    T = mkdtempSync(join(tmpdir(), 'slurm-e2e-'));
    chmodSync(T, 0o755);
    env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin`, SLURM_CONF: join(T, 'slurm.conf') };
    try {
      host = await startScaler({
        storageConnectionString: inject('storageConnectionString'),
        env: { SIMULATOR_STEP_MS: '100', REQUIRE_SIGNED_WEBHOOKS: 'true', SCALER_SIGNING_SECRET: SIGNING_SECRET },
      });

      // The head-node programs, installed as a user would (root-owned, 0755), and their settings (0600).
      const programs = join(T, 'programs');
      mkdirSync(programs);
      for (const f of ['scaler-power.sh', 'resume.sh', 'suspend.sh', 'resume-fail.sh']) {
        copyFileSync(join(root, 'contrib/slurm', f), join(programs, f));
        chmodSync(join(programs, f), 0o755);
      }
      writeFileSync(join(T, 'scaler.signing-key'), `${SIGNING_SECRET}\n`, { mode: 0o600 });
      writeFileSync(
        join(T, 'scaler.conf'),
        `SCALER_URL=${host.base}\nSCALER_KEY=${host.key}\nSCALER_CLUSTER=hpc\nSCALER_LOG=${join(T, 'scaler-power.log')}\nSCALER_SIGNING_KEY_FILE=${join(T, 'scaler.signing-key')}\n`,
        { mode: 0o600 },
      );

      // slurm.conf: local plumbing + exactly what `ccscale slurm conf` prints (with short test timeouts).
      const generated = execFileSync(
        process.execPath,
        [
          join(root, 'bin/ccscale.mjs'),
          '--url',
          host.base.replace(/\/api$/, ''),
          '--key',
          host.key,
          'slurm',
          'conf',
          '--cluster',
          'hpc',
          '--programs-dir',
          programs,
          '--resume-timeout',
          String(RESUME_TIMEOUT_SEC),
          '--suspend-time',
          '5',
          '--suspend-timeout',
          '5',
        ],
        { encoding: 'utf8', env: process.env },
      );
      writeFileSync(join(T, 'slurm.conf'), `${(await localSlurmSettings(T, 'scalere2e')).join('\n')}\n${fastPowerSave(generated)}`);
      await startSlurm(T, env, procs).catch((e: Error) => {
        throw new Error(`${e.message}\n${diagnostics()}`);
      });
      timings.setupMs = Date.now() - t0;
    } catch (error) {
      killAll();
      throw error;
    }
  }, 120_000);

  afterAll(async () => {
    killAll('SIGTERM');
    await sleep(500);
    killAll();
    await host?.stop();
    if (T && !process.env.SLURM_E2E_KEEP) rmSync(T, { recursive: true, force: true });
    timings.totalMs = Date.now() - t0;
    console.log(JSON.stringify({ test: 'real-slurm', ...timings }));
  }, 60_000);

  it('powers a cloud node up for a job, runs it, and powers it down: exactly that node created, then terminated', async () => {
    // Prepare: the generated partitions exist, every cloud node powered down.
    const sinfo = sh('sinfo', ['-h', '-o', '%P %t %D']);
    expect(sinfo).toMatch(/ondemand\* idle~ 3/);
    expect(sinfo).toMatch(/mpi idle~ 64/);
    const createsBefore = (await creates()).length;

    // Act: one single-node job in the default partition.
    const submittedAt = Date.now();
    const jobId = sh('sbatch', ['--parsable', '-N1', '-o', join(T, 'job-%j.out'), '--wrap', 'echo hello from $(hostname) as $SLURMD_NODENAME']);

    // Assess: slurmctld called resume for one node, the scaler answered 202 with a request.
    const [node, requestIds] = await eventually(
      async () => {
        const m = / resume: accepted (ondemand-\d+): /.exec(powerLog());
        return m ? ([m[1]!, acceptedIds('resume', m[1]!)!] as const) : undefined;
      },
      30_000,
      'slurmctld to call the resume program',
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${diagnostics()}`);
    });
    timings.resumeCalledMs = Date.now() - submittedAt;
    expect(sh('sinfo', ['-h', '-n', node, '-o', '%t'])).toMatch(/^(alloc|mix|idle)#$/);
    expect(requestIds).toHaveLength(1);

    // Exactly that node, by name, in one create.
    const record = await host.waitFinal(requestIds[0]!, 60_000);
    timings.nodeReadyMs = Date.now() - submittedAt;
    expect(record.state).toBe('fulfilled');
    expect(record.nodes.map((n) => [n.name, n.status])).toEqual([[node, 'Ready']]);
    const made = (await creates()).slice(createsBefore);
    expect(made).toHaveLength(1);
    const index = Number(node.slice('ondemand-'.length));
    expect((made[0]!.body as { sets: unknown[] }).sets).toEqual([expect.objectContaining({ nodearray: 'ondemand', count: 1, nameFormat: 'ondemand-%d', nameOffset: index })]);
    expect((await simNodes()).filter((n) => n.Name.startsWith('ondemand-')).map((n) => n.Name)).toEqual([node]);

    // The VM "boots": slurmd registers as that node (-b: a fresh boot, as cloud-init would start it).
    mkdirSync(join(T, 'spool', node), { recursive: true });
    slurmd = launch('slurmd', ['-D', '-b', '-N', node, '-f', join(T, 'slurm.conf')], env);
    const state = await eventually(
      async () => {
        const s = jobState(jobId);
        return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'BOOT_FAIL'].includes(s) ? s : undefined;
      },
      60_000,
      `job ${jobId} to finish`,
    ).catch((e: Error) => {
      throw new Error(`${e.message} (state ${jobState(jobId)})\n${diagnostics()}`);
    });
    timings.jobDoneMs = Date.now() - submittedAt;
    expect(state).toBe('COMPLETED');
    expect(readFileSync(join(T, `job-${jobId}.out`), 'utf8')).toContain(`as ${node}`);

    // Idle for SuspendTime: slurmctld calls suspend and the scaler terminates the node.
    const suspendIds = await eventually(async () => acceptedIds('suspend', node), 60_000, 'slurmctld to call the suspend program').catch((e: Error) => {
      throw new Error(`${e.message}\n${diagnostics()}`);
    });
    timings.suspendCalledMs = Date.now() - submittedAt;
    const terminated = await host.waitFinal(suspendIds[0]!, 60_000);
    expect(terminated.kind).toBe('terminate');
    expect(terminated.state).toBe('fulfilled');
    // Through CycleCloud's shutdown, so the nodearray's ShutdownPolicy (Terminate by default) decides.
    expect((await host.simCalls()).filter((c) => c.path.endsWith('/nodes/shutdown')).map((c) => (c.body as { names?: string[] }).names)).toEqual([[node]]);
    await eventually(async () => ((await simNodes()).some((n) => n.Name === node) ? undefined : true), 30_000, `${node} to be gone from the simulator`);
    timings.nodeTerminatedMs = Date.now() - submittedAt;
    // The VM is gone, and so is its slurmd.
    process.kill(-slurmd.pid!, 'SIGKILL');
    await eventually(async () => (/~$/.test(sh('sinfo', ['-h', '-n', node, '-o', '%t'])) ? true : undefined), 30_000, `${node} to be powered down in Slurm`);
  }, 240_000);

  // Before the tests that leave nodes powering up with no slurmd: slurmctld then stalls on them
  // ("Socket timed out") and every scontrol call of the sync waits.
  it('a resume with no room: its nodes are down with the reason within 30 s, the job pending; once room returns they are idle~ again and a job runs', async () => {
    // Prepare: the ondemand bucket has no room (its quota consumed), and the head-node sync runs
    // every 3 s as the systemd timer of contrib/slurm/install.sh would.
    type Bucket = { definition: { machineType: string }; quotaCoreCount: number; consumedCoreCount?: number };
    const status = (await (await host.sim$('/clusters/hpc/status')).json()) as { nodearrays: { name: string; buckets: Bucket[] }[] };
    const bucket = status.nodearrays.find((n) => n.name === 'ondemand')!.buckets[0]!;
    const setConsumed = async (consumedCoreCount: number) =>
      expect(
        (
          await host.sim$('/__sim/buckets', {
            method: 'POST',
            body: JSON.stringify({ cluster: 'hpc', nodearray: 'ondemand', machineType: bucket.definition.machineType, patch: { consumedCoreCount } }),
          })
        ).status,
      ).toBe(204);
    await setConsumed(bucket.quotaCoreCount);
    const syncs: number[] = [];
    let syncing = true;
    const syncLoop = (async () => {
      while (syncing) {
        // Not spawnSync: the test's own clock (eventually) must keep running while a sync runs.
        const child = spawn(join(T, 'programs', 'scaler-power.sh'), ['sync'], { env, stdio: 'ignore' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        syncs.push(await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1))));
        clearTimeout(timer);
        await sleep(3000);
      }
    })();
    const logStart = powerLog().length;
    const createsBefore = (await creates()).length;
    let jobId = '';
    let node = '';
    try {
      // Act: a 2-node job in the partition.
      const submittedAt = Date.now();
      jobId = sh('sbatch', ['--parsable', '-N2', '-p', 'ondemand', '-o', '/dev/null', '--wrap', 'true']);

      // Assess: both nodes down in slurmctld, with the scaler's reason, within 30 s; the job pending.
      const down = await eventually(
        async () => {
          const lines = sh('sinfo', ['-R', '-h', '-o', '%E|%N'])
            .split('\n')
            .filter((l) => l.startsWith('scaler:'));
          const names = lines.flatMap((l) => expandHostlist(l.slice(l.lastIndexOf('|') + 1))).filter((n) => n.startsWith('ondemand-'));
          return names.length >= 2 ? { names: names.sort(), reason: lines[0]!.slice(0, lines[0]!.lastIndexOf('|')) } : undefined;
        },
        60_000,
        'the nodes to be down with the scaler reason',
      ).catch((e: Error) => {
        throw new Error(`${e.message}: ${sh('sinfo', ['-h', '-o', '%T|%E|%N'])}\nsyncs ${syncs.join(',')}\n${diagnostics()}`);
      });
      timings.noRoomDownMs = Date.now() - submittedAt;
      expect(down.names).toHaveLength(2);
      expect(down.reason).toMatch(/^scaler: .*(no capacity|room|quota)/i);
      expect(jobState(jobId)).toBe('PENDING');
      expect(sh('squeue', ['-h', '-j', jobId, '-o', '%r'])).not.toBe('');
      // From slurmctld's call of the resume program (its log line, to the second) to down: the scaler's part, under 30 s.
      const resumeLine = /^(\S+Z) scaler-power\[\d+\] resume: accepted ondemand-/m.exec(powerLog().slice(logStart));
      expect(resumeLine).not.toBeNull();
      timings.noRoomResumeToDownMs = Date.now() - Date.parse(resumeLine![1]!);
      expect(timings.noRoomResumeToDownMs).toBeLessThan(30_000 + 1000);
      // Not ResumeTimeout's doing: that reason would be "ResumeTimeout reached", not the scaler's.
      expect((await creates()).length).toBe(createsBefore); // nothing was created for them
      // slurmctld may hand the job's nodes to the program in one call or several.
      const resumed = [
        ...powerLog()
          .slice(logStart)
          .matchAll(/ resume: accepted (ondemand-\S+): (\{.*)$/gm),
      ];
      expect(resumed.length, diagnostics()).toBeGreaterThan(0);
      expect(resumed.flatMap((m) => expandHostlist(m[1]!)).sort()).toEqual(down.names);
      for (const m of resumed) {
        const ids = (JSON.parse(m[2]!) as { requestIds: string[] }).requestIds;
        expect(ids).toHaveLength(1);
        const record = await host.waitFinal(ids[0]!, 30_000);
        expect(record.state).toBe('failed');
        expect(record.demands[0]!.reason).toMatch(/no capacity now/);
      }
      spawnSync('scancel', [jobId], { env });

      // Room returns: with no admin step, the sync resumes them in slurmctld (idle~ again).
      await setConsumed(bucket.consumedCoreCount ?? 0);
      const restoredFrom = Date.now();
      await eventually(
        async () =>
          sh('sinfo', ['-h', '-n', formatHostlist(down.names), '-o', '%t'])
            .split('\n')
            .every((t) => t === 'idle~')
            ? true
            : undefined,
        90_000,
        `${formatHostlist(down.names)} idle~ again`,
      ).catch((e: Error) => {
        throw new Error(`${e.message}: ${sh('sinfo', ['-h', '-o', '%T|%E|%N'])}\nsyncs ${syncs.join(',')}\n${diagnostics()}`);
      });
      timings.noRoomRestoredMs = Date.now() - restoredFrom;
      expect(powerLog().slice(logStart)).toMatch(/sync: (restore|power_down) ondemand-/);
      // Once: no down-restore flapping while Slurm still marked them powering up.
      const downed = [
        ...powerLog()
          .slice(logStart)
          .matchAll(/ sync: down (ondemand-\S+): /g),
      ].flatMap((m) => expandHostlist(m[1]!));
      expect(downed.sort()).toEqual(down.names);

      // And a new job runs on one of them.
      node = down.names[0]!;
      const job2 = sh('sbatch', ['--parsable', '-N1', '-p', 'ondemand', '-w', node, '-o', '/dev/null', '--wrap', 'true']);
      const ids2 = await eventually(async () => acceptedIds('resume', node), 30_000, `slurmctld to resume ${node}`);
      expect((await host.waitFinal(ids2[0]!, 60_000)).state).toBe('fulfilled');
      mkdirSync(join(T, 'spool', node), { recursive: true });
      slurmd = launch('slurmd', ['-D', '-b', '-N', node, '-f', join(T, 'slurm.conf')], env);
      await eventually(async () => (jobState(job2) === 'COMPLETED' ? true : undefined), 90_000, `job ${job2} to complete`).catch((e: Error) => {
        throw new Error(`${e.message} (state ${jobState(job2)})\n${diagnostics()}`);
      });
      expect(
        syncs.filter((c) => c !== 0),
        diagnostics(),
      ).toEqual([]);
    } finally {
      syncing = false;
      await syncLoop;
      if (jobId) spawnSync('scancel', [jobId], { env });
      if (node && slurmd?.pid) {
        try {
          process.kill(-slurmd.pid, 'SIGKILL');
        } catch {}
      }
      await setConsumed(bucket.consumedCoreCount ?? 0);
    }
  }, 300_000);

  it('turns a 4-node job in the tightly coupled partition into one create with one placement group of 4', async () => {
    const createsBefore = (await creates()).length;
    const mpiSubmittedAt = Date.now();
    const jobId = sh('sbatch', ['--parsable', '-N4', '-p', 'mpi', '-o', '/dev/null', '--wrap', 'true']);
    try {
      const [nodes, ids] = await eventually(
        async () => {
          const m = / resume: accepted (mpi-\S+): /.exec(powerLog());
          return m ? ([m[1]!, acceptedIds('resume', m[1]!)!] as const) : undefined;
        },
        30_000,
        'slurmctld to call the resume program for the MPI job',
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n${diagnostics()}`);
      });
      const names = expandHostlist(nodes);
      expect(names).toHaveLength(4);
      // The resume file named the job: the demand carries it.
      const made = await eventually(
        async () => {
          const list = (await creates()).slice(createsBefore);
          return list.length > 0 ? list : undefined;
        },
        30_000,
        'the create of the MPI job',
      );
      expect(made).toHaveLength(1);
      const sets = (made[0]!.body as { sets: { nodearray: string; count: number; placementGroupId?: string; nameFormat?: string; nameOffset?: number }[] }).sets;
      expect(sets).toHaveLength(1);
      expect(sets[0]).toMatchObject({ nodearray: 'mpi', count: 4, nameFormat: 'mpi-%d', nameOffset: Number(names[0]!.slice(4)) });
      expect(sets[0]!.placementGroupId).toEqual(expect.any(String));
      const record = await host.waitFinal(ids[0]!, 60_000);
      expect(record.demands).toEqual([expect.objectContaining({ requested: 4, created: 4, jobId, placementGroupId: sets[0]!.placementGroupId })]);
      const groups = new Set((await simNodes()).filter((n) => names.includes(n.Name)).map((n) => n.PlacementGroupId));
      expect([...groups]).toEqual([sets[0]!.placementGroupId]);
      // Repeating the call (as slurmctld may after a restart) queues nothing new; unsigned, it is refused.
      const body = JSON.stringify({ cluster: 'hpc', nodes, resumeFile: { all_nodes: nodes, jobs: [{ job_id: Number(jobId), nodes }] } });
      const unsigned = await host.api('/slurm/resume', { method: 'POST', body });
      expect(unsigned.status).toBe(401);
      const { signature, timestamp } = signRequest(SIGNING_SECRET, { method: 'POST', path: '/api/slurm/resume', body }, Date.now());
      const again = await host.api('/slurm/resume', { method: 'POST', body, headers: { 'x-scaler-signature': signature, 'x-scaler-timestamp': timestamp } });
      expect(again.status).toBe(202);
      expect(((await again.json()) as { requestIds: string[] }).requestIds).toEqual(ids);
      expect((await creates()).slice(createsBefore)).toHaveLength(1);

      // No slurmd ever starts for them: after ResumeTimeout slurmctld calls ResumeFailProgram and the
      // scaler terminates exactly those nodes.
      const failIds = await eventually(async () => acceptedIds('resume-fail', nodes), (RESUME_TIMEOUT_SEC + 40) * 1000, 'slurmctld to call the resume-fail program').catch(
        (e: Error) => {
          throw new Error(`${e.message}\n${diagnostics()}`);
        },
      );
      timings.mpiResumeFailCalledMs = Date.now() - mpiSubmittedAt;
      const failed = await host.waitFinal(failIds[0]!, 60_000);
      expect(failed).toMatchObject({ kind: 'terminate', state: 'fulfilled' });
      expect(failed.nodes.map((n) => n.name).sort()).toEqual([...names].sort());
      await eventually(async () => ((await simNodes()).some((n) => names.includes(n.Name)) ? undefined : true), 30_000, 'the MPI nodes to be gone from the simulator');
      // Slurm requeued the job and left the nodes down~; the program powered them down instead, so
      // they come back idle~ after SuspendTimeout (never resumed while their VMs may still be deleted),
      // and the requeued job is scheduled again (Slurm picked other idle~ nodes here): a new power
      // cycle, a new request, a second create of 4 in one placement group.
      expect(jobState(jobId)).toBe('PENDING');
      const [again2, retried] = await eventually(
        async () => {
          const lines = powerLog()
            .split('\n')
            .filter((l) => / resume: accepted mpi-/.test(l));
          if (lines.length < 2) return undefined;
          const m = / resume: accepted (mpi-\S+): (\{.*)$/.exec(lines[1]!)!;
          return [m[1]!, (JSON.parse(m[2]!) as { requestIds: string[] }).requestIds] as const;
        },
        60_000,
        'the requeued job to resume nodes again',
      ).catch((e: Error) => {
        throw new Error(`${e.message}: ${sh('sinfo', ['-h', '-N', '-p', 'mpi', '-t', 'alloc,idle,down', '-o', '%N %t %E'])}\n${diagnostics()}`);
      });
      timings.mpiResumedAgainMs = Date.now() - mpiSubmittedAt;
      expect(retried).not.toEqual(ids);
      expect(
        await eventually(
          async () => {
            const list = (await creates()).slice(createsBefore);
            return list.length === 2 ? list[1] : undefined;
          },
          30_000,
          'the second create',
        ),
      ).toMatchObject({
        body: {
          sets: [
            expect.objectContaining({
              nodearray: 'mpi',
              count: 4,
              nameFormat: 'mpi-%d',
              nameOffset: Number(expandHostlist(again2)[0]!.slice(4)),
              placementGroupId: expect.any(String),
            }),
          ],
        },
      });
      // Back in service: each failed node is idle~ again, or Slurm already gave it to the requeued job
      // (it may pick them again once they are idle~, as it did in one CI run).
      const reused = new Set(expandHostlist(again2));
      await eventually(
        async () => {
          const states = sh('sinfo', ['-h', '-N', '-n', nodes, '-o', '%N %t'])
            .trim()
            .split('\n')
            .map((l) => l.trim().split(/\s+/));
          return states.length === names.length && states.every(([n, t]) => t === 'idle~' || reused.has(n!)) ? true : undefined;
        },
        30_000,
        `${nodes} idle~ again or taken by the requeued job`,
      ).catch((e: Error) => {
        throw new Error(`${e.message}: ${sh('sinfo', ['-h', '-N', '-n', nodes, '-o', '%N %t %E'])}; resumed again: ${again2}`);
      });
    } finally {
      spawnSync('scancel', [jobId], { env });
    }
  }, 300_000);

  it('starts a node CycleCloud holds deallocated instead of creating it', async () => {
    // Prepare: ondemand-2 exists in CycleCloud, deallocated (as ShutdownPolicy=Deallocate leaves it)
    const node = 'ondemand-2';
    expect(
      (
        await host.sim$('/clusters/hpc/nodes/create', {
          method: 'POST',
          body: JSON.stringify({ sets: [{ nodearray: 'ondemand', count: 1, nameFormat: 'ondemand-%d', nameOffset: 2 }] }),
        })
      ).status,
    ).toBe(202);
    await eventually(async () => ((await simNodes()).find((n) => n.Name === node)?.Status === 'Ready' ? true : undefined), 30_000, `${node} Ready`);
    expect((await host.sim$('/clusters/hpc/nodes/deallocate', { method: 'POST', body: JSON.stringify({ names: [node] }) })).status).toBe(202);
    await eventually(async () => ((await simNodes()).find((n) => n.Name === node)?.Status === 'Deallocated' ? true : undefined), 30_000, `${node} Deallocated`);
    const createsBefore = (await creates()).length;

    // Act: an admin powers it up (the same path as a job)
    const startedAt = Date.now();
    sh('scontrol', ['update', `nodename=${node}`, 'state=power_up']);

    // Assess: resume → a start request, CycleCloud's nodes/start by name, Ready; no create
    const ids = await eventually(async () => acceptedIds('resume', node), 30_000, `slurmctld to resume ${node}`).catch((e: Error) => {
      throw new Error(`${e.message}\n${diagnostics()}`);
    });
    const record = await host.waitFinal(ids[0]!, 60_000);
    timings.deallocatedStartedMs = Date.now() - startedAt;
    expect(record).toMatchObject({ kind: 'start', state: 'fulfilled', nodes: [expect.objectContaining({ name: node, status: 'Ready' })] });
    const starts = (await host.simCalls()).filter((c) => c.path.endsWith('/nodes/start'));
    expect(starts.map((c) => (c.body as { names?: string[] }).names)).toEqual([[node]]);
    expect((await creates()).length).toBe(createsBefore);
  }, 120_000);

  it('exits non-zero and says why in the log when the scaler refuses', async () => {
    // A node name no nodearray has: the scaler refuses with 400; the program exits 1 and logs it.
    const run = spawnSync(join(T, 'programs', 'resume.sh'), ['nosuch-[1-2]'], { env: { SLURM_CONF: join(T, 'slurm.conf') }, encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(powerLog()).toMatch(/resume: scaler refused nosuch-\[1-2\] \(HTTP 400\): .*match no nodearray of cluster hpc/);
    // A settings file others can read is refused before anything is sent.
    chmodSync(join(T, 'scaler.conf'), 0o644);
    try {
      const refused = spawnSync(join(T, 'programs', 'suspend.sh'), ['ondemand-1'], { env: { SLURM_CONF: join(T, 'slurm.conf') }, encoding: 'utf8' });
      expect(refused.status).toBe(2);
      expect(powerLog()).toMatch(/refusing to use .*scaler\.conf: mode 644/);
    } finally {
      chmodSync(join(T, 'scaler.conf'), 0o600);
    }
  });
});
