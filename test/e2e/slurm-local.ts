/**
 * A real Slurm 22.05 "cluster" in one temp folder, for end-to-end tests (the recipe of
 * reference/slurm-power-saving.md §5, as tried on Debian 12): why it cannot run here, the processes
 * it starts (killed by their process group on every exit path), the local slurm.conf settings (free
 * ports, state and logs in the folder) to put before the generated lines, and munged + slurmctld.
 *
 * @example
 * const why = slurmUnavailable(['curl']);
 * const procs = new ProcessGroups();
 * writeFileSync(join(T, 'slurm.conf'), `${(await localSlurmSettings(T, 'mycluster')).join('\n')}\n${generated}`);
 * await startSlurm(T, env, procs);
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/net.ts';
import { eventually } from './harness.ts';

const SLURM_BINARIES = ['slurmctld', 'slurmd', 'munged', 'mungekey', 'sbatch', 'scontrol', 'sinfo', 'scancel'];

/** Why the real-Slurm tests cannot run here (a missing binary, not root), or null when they can. */
export function slurmUnavailable(extra: readonly string[] = []): string | null {
  const which = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`], { env: { PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).status === 0;
  const missing = [...SLURM_BINARIES, ...extra].filter((b) => !which(b));
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  return process.getuid?.() === 0 ? null : 'not running as root';
}

/** Processes started detached (each its own process group), killed together. */
export class ProcessGroups {
  readonly #started: ChildProcess[] = [];

  constructor() {
    // A crash or Ctrl-C of the test run must not leave slurmctld, slurmd or munged behind.
    process.once('exit', () => this.killAll());
  }

  launch(cmd: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
    const child = spawn(cmd, args, { env, detached: true, stdio: 'ignore' });
    this.#started.push(child);
    return child;
  }

  killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
    for (const child of this.#started) {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

/** The slurm.conf settings of a cluster living in folder `T` (free ports; state, spool, pids and logs in `T`). */
export async function localSlurmSettings(T: string, clusterName: string): Promise<string[]> {
  const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
  for (const d of ['state', 'spool']) mkdirSync(join(T, d), { recursive: true });
  return [
    `ClusterName=${clusterName}`,
    `SlurmctldHost=${hostname().split('.')[0]!}(127.0.0.1)`,
    'SlurmUser=root',
    `SlurmctldPort=${ctldPort}`,
    `SlurmdPort=${slurmdPort}`,
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${join(T, 'munge.sock')},cred_expire=5`,
    `StateSaveLocation=${join(T, 'state')}`,
    `SlurmdSpoolDir=${join(T, 'spool')}/%n`,
    `SlurmctldPidFile=${join(T, 'slurmctld.pid')}`,
    `SlurmdPidFile=${join(T, 'slurmd-%n.pid')}`,
    `SlurmctldLogFile=${join(T, 'slurmctld.log')}`,
    `SlurmdLogFile=${join(T, 'slurmd-%n.log')}`,
    'SlurmctldDebug=info',
    'DebugFlags=Power',
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_CPU',
    'AccountingStorageType=accounting_storage/none',
    'JobAcctGatherType=jobacct_gather/none',
    'MpiDefault=none',
    // This machine stands in for every VM size: slurmd reports the configured CPUs and memory.
    'SlurmdParameters=config_overrides',
  ];
}

/** What a Slurm command says when slurmctld is busy (it stalls ~10 s resolving each cloud node name that does not resolve, e.g. to kill a job's steps there). */
const BUSY = /Socket timed out on send\/recv operation|Unable to contact slurm controller|Zero Bytes were transmitted or received/;

/**
 * Runs a Slurm command and returns its trimmed output. While slurmctld is busy the command is tried
 * again (up to 4 times, 1 s apart), as a user at the prompt would; any other failure is thrown.
 */
export function slurmCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv): string {
  for (let attempt = 1; ; attempt++) {
    try {
      return execFileSync(cmd, args, { env, encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (error) {
      const said = `${(error as { stderr?: string }).stderr ?? ''}${(error as Error).message}`;
      if (attempt >= 4 || !BUSY.test(said)) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);
    }
  }
}

/** Generated lines with the power thread reacting within a second instead of the default 10 s scan (test speed only). */
export function fastPowerSave(conf: string): string {
  return conf.replace(/^SlurmctldParameters=(.*)$/m, 'SlurmctldParameters=$1,power_save_interval=1,power_save_min_interval=0');
}

/** munged with its own key and socket in `T`, then `slurmctld -D -c` on `T/slurm.conf`, answering `scontrol ping`. */
export async function startSlurm(T: string, env: NodeJS.ProcessEnv, procs: ProcessGroups): Promise<void> {
  execFileSync('mungekey', ['-c', '-k', join(T, 'munge.key')], { env });
  chmodSync(join(T, 'munge.key'), 0o600);
  procs.launch(
    'munged',
    [
      ...['-F', '--force', '--key-file', join(T, 'munge.key'), '--socket', join(T, 'munge.sock')],
      ...['--pid-file', join(T, 'munged.pid'), '--log-file', join(T, 'munged.log'), '--seed-file', join(T, 'munged.seed')],
    ],
    env,
  );
  await eventually(async () => (existsSync(join(T, 'munge.sock')) ? true : undefined), 10_000, 'munged socket');
  procs.launch('slurmctld', ['-D', '-c', '-f', join(T, 'slurm.conf')], env);
  await eventually(async () => (spawnSync('scontrol', ['ping'], { env }).status === 0 ? true : undefined), 30_000, 'slurmctld to answer');
}
