/**
 * The files of `ccscale slurm conf` (src/slurm/conf.ts makes their text): slurm.conf lines on
 * stdout, and with `--gres-conf <file>` / `--topology-conf <file>` gres.conf and topology.conf
 * written where Slurm reads them (slurm.conf's folder). Each file is written whole or not at all
 * (a temporary file beside it, then renamed), so slurmctld never reads half a file.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import type { ClusterStatus } from '../http/schemas.ts';
import { gresConf, slurmConf, topologyConf, type SlurmConfOptions } from '../slurm/conf.ts';
import { codeOf } from '../platform/errors.ts';
import { CliError } from './client.ts';

export interface SlurmConfFlags {
  cluster: string;
  programsDir: string;
  resumeTimeout: number;
  resumeTimeoutFor?: Record<string, number>;
  suspendTime: number;
  suspendTimeout: number;
  gpusFor?: Record<string, number>;
  gresConf?: string;
  topologyConf?: string;
}

/**
 * A repeatable `<nodearray>=<n>` flag into a record; `min` is the smallest n allowed. The last
 * value for a nodearray wins.
 */
export function perNodearray(flag: string, min: number): (value: string, previous?: Record<string, number>) => Record<string, number> {
  return (value, previous = {}) => {
    const m = /^([^=\s]+)=(\d+)$/.exec(value.trim());
    if (!m || Number(m[2]) < min) throw new InvalidArgumentError(`${flag} takes <nodearray>=<${min > 0 ? 'positive' : 'whole'} number>, e.g. ${flag} gpu=${min > 0 ? 3600 : 4}`);
    return { ...previous, [m[1]!]: Number(m[2]) };
  };
}

async function writeWhole(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw new CliError('CLI_USAGE', `cannot write ${path}: ${codeOf(error) ?? (error instanceof Error ? error.message : String(error))}`);
  }
}

/** Checks the per-nodearray flags against the status, writes the side files, and answers the slurm.conf text. */
export async function slurmConfFiles(status: ClusterStatus, flags: SlurmConfFlags): Promise<string> {
  const known = new Set(status.nodearrays.map((na) => na.name));
  for (const [flag, values] of [
    ['--resume-timeout-for', flags.resumeTimeoutFor],
    ['--gpus-for', flags.gpusFor],
  ] as const) {
    const unknown = Object.keys(values ?? {}).filter((n) => !known.has(n));
    if (unknown.length > 0)
      throw new CliError('CLI_USAGE', `${flag} names ${unknown.join(', ')}: cluster ${status.cluster} has no such nodearray (it has ${[...known].join(', ') || 'none'})`);
  }
  const options: SlurmConfOptions = {
    programsDir: flags.programsDir,
    resumeTimeoutSec: flags.resumeTimeout,
    suspendTimeSec: flags.suspendTime,
    suspendTimeoutSec: flags.suspendTimeout,
    ...(flags.resumeTimeoutFor ? { resumeTimeoutFor: flags.resumeTimeoutFor } : {}),
    ...(flags.gpusFor ? { gpusFor: flags.gpusFor } : {}),
    topology: flags.topologyConf !== undefined,
    gresConfWritten: flags.gresConf !== undefined,
  };
  if (flags.gresConf !== undefined) await writeWhole(flags.gresConf, gresConf(status, options));
  if (flags.topologyConf !== undefined) await writeWhole(flags.topologyConf, topologyConf(status, options));
  return slurmConf(status, options);
}
