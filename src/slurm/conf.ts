/**
 * The Slurm configuration for a cluster (`ccscale slurm conf --cluster C`), the three files azslurm's
 * `azslurm scale` and `azslurm topology` write (docs/slurm.md compares them):
 *
 * - {@link slurmConf}: the `slurm.conf` lines. Per nodearray one `NodeName` line (`State=CLOUD`,
 *   named as CycleCloud names the nodes, `<nodearray>-<n>`, so the Slurm node name is the CycleCloud
 *   node name; `CPUs`, `RealMemory` less a reserve, `Gres` for GPUs, `Feature=cloud,<VM size>,
 *   spot|regular,<nodearray>`) and one `PartitionName` line with its own `ResumeTimeout`; plus the
 *   power-saving settings that hand resume and suspend to the scaler through contrib/slurm.
 *   Defaults follow reference/slurm-power-saving.md §1.
 * - {@link gresConf}: `gres.conf`, the GPU device files of each GPU nodearray (Slurm 22.05 drops a
 *   GPU declared without `File=`, and then refuses the node: "gres/gpu count reported lower than
 *   configured").
 * - {@link topologyConf}: `topology.conf` for `TopologyPlugin=topology/tree`. A tightly coupled
 *   nodearray (its bucket has InfiniBand: `isTightlyCoupled` of src/slurm/requests.ts) gets one leaf switch per
 *   placement group: its nodes in hostlist order, in chunks of `maxPlacementGroupSize`, the same
 *   chunks a resume groups a tightly coupled job's nodes into (src/slurm/requests.ts). Slurm's
 *   tree topology keeps a job inside the lowest switch that fits it, so a job of at most one
 *   placement group stays inside one switch = one placement group. Every other nodearray is one
 *   switch; one top switch joins them all.
 *
 * Pure: the cluster status in, text out. The bucket of a nodearray is the one resume creates its
 * nodes in: the first valid one (the rule of `slurmBucket` in src/slurm/requests.ts, over the status's buckets).
 */
import type { ClusterStatus } from '../http/schemas.ts';
import { formatHostlist } from './hostlist.ts';

export interface SlurmConfOptions {
  /** Where resume.sh, suspend.sh and resume-fail.sh (contrib/slurm) are installed. Default `/opt/cyclecloud-scaler/slurm`. */
  programsDir?: string;
  /** `ResumeTimeout`, seconds: must cover create + boot + slurmd start. Default 1800 (the scaler's boot deadline is 30 min). Also each partition's, unless {@link resumeTimeoutFor} names it. */
  resumeTimeoutSec?: number;
  /** A partition's own `ResumeTimeout`, seconds, by nodearray name (e.g. a GPU or HPC image that boots slower). */
  resumeTimeoutFor?: Readonly<Record<string, number>>;
  /** `SuspendTime`, seconds a node stays idle before it is suspended. Default 300. */
  suspendTimeSec?: number;
  /** `SuspendTimeout`, seconds: at least a delete, so a re-resume never meets a VM of the same name still terminating. Default 600. */
  suspendTimeoutSec?: number;
  /** GPUs per node by nodearray name, instead of the bucket's `gpuCount` (0 = none). */
  gpusFor?: Readonly<Record<string, number>>;
  /** Add `TopologyPlugin=topology/tree`: {@link topologyConf}'s file must then be beside slurm.conf. */
  topology?: boolean;
  /** Say in slurm.conf that gres.conf is written beside it (else a GPU nodearray gets a warning comment). */
  gresConfWritten?: boolean;
}

export const DEFAULT_PROGRAMS_DIR = '/opt/cyclecloud-scaler/slurm';
export const DEFAULT_RESUME_TIMEOUT_SEC = 1800;

/** A bucket of the status, with the documented `virtualMachine.gpuCount` when the status carries it. */
type Bucket = ClusterStatus['nodearrays'][number]['buckets'][number] & { gpuCount?: number };

/** What the three files need of one nodearray that can have nodes. */
interface SlurmPartition {
  nodearray: string;
  bucket: Bucket;
  /** `<nodearray>-1` … `<nodearray>-<maxCount>`, as one hostlist expression. */
  nodes: string;
  count: number;
  gpus: number;
  tight: boolean;
}

type Entry = { nodearray: string; skipped: string } | SlurmPartition;

/**
 * `RealMemory` in MB for a VM size: a node that reports less than its configured `RealMemory` is
 * drained by Slurm, and a VM reports less than its nominal size, so 5% (at least 1 GiB) is held back.
 */
export function realMemoryMb(memoryGB: number): number {
  const mb = memoryGB * 1024;
  return Math.max(1, Math.floor(mb - Math.max(mb * 0.05, 1024)));
}

/** `record[key]` when the record has it as its own key (a nodearray named `constructor` is no prototype lookup). */
const own = (record: Readonly<Record<string, number>> | undefined, key: string): number | undefined => (record && Object.hasOwn(record, key) ? record[key] : undefined);

const rangeOf = (nodearray: string, from: number, to: number): string => (from === to ? `${nodearray}-${from}` : `${nodearray}-[${from}-${to}]`);

function entries(status: ClusterStatus, options: SlurmConfOptions): Entry[] {
  return status.nodearrays.map((na): Entry => {
    const bucket = na.buckets.find((b) => b.valid) as Bucket | undefined;
    if (!bucket) return { nodearray: na.name, skipped: 'no valid bucket, no nodes' };
    if (bucket.maxCount < 1) return { nodearray: na.name, skipped: `${bucket.machineType} allows no nodes now (maxCount 0)` };
    return {
      nodearray: na.name,
      bucket,
      nodes: rangeOf(na.name, 1, bucket.maxCount),
      count: bucket.maxCount,
      gpus: own(options.gpusFor, na.name) ?? bucket.gpuCount ?? 0,
      tight: bucket.infiniband,
    };
  });
}

const isPartition = (e: Entry): e is SlurmPartition => !('skipped' in e);

/** The slurm.conf text: settings, then per nodearray a `NodeName` and a `PartitionName` line. */
export function slurmConf(status: ClusterStatus, options: SlurmConfOptions = {}): string {
  const dir = (options.programsDir ?? DEFAULT_PROGRAMS_DIR).replace(/\/+$/, '');
  const resumeTimeout = options.resumeTimeoutSec ?? DEFAULT_RESUME_TIMEOUT_SEC;
  const all = entries(status, options);
  const lines: string[] = [
    `# Slurm power saving through the CycleCloud scaler, for cluster ${status.cluster} (snapshot ${status.takenAt}).`,
    '# Generated by `ccscale slurm conf`; Slurm node name = CycleCloud node name (<nodearray>-<n>).',
    `ResumeProgram=${dir}/resume.sh`,
    `SuspendProgram=${dir}/suspend.sh`,
    `ResumeFailProgram=${dir}/resume-fail.sh`,
    '# The default; each partition below sets its own.',
    `ResumeTimeout=${resumeTimeout}`,
    `SuspendTime=${options.suspendTimeSec ?? 300}`,
    `SuspendTimeout=${options.suspendTimeoutSec ?? 600}`,
    '# The scaler throttles and batches; Slurm should hand every node over at once.',
    'ResumeRate=0',
    'SuspendRate=0',
    '# idle_on_node_suspend: a node that failed comes back as idle~ when suspended, not stuck down~.',
    "# cloud_reg_addrs: a cloud node's address is the one it registers from (no DNS needed).",
    'SlurmctldParameters=idle_on_node_suspend,cloud_reg_addrs',
    'ReturnToService=2',
    '# 22.05 hides powered-down cloud nodes from everyone without this.',
    'PrivateData=cloud',
    'TreeWidth=65533',
  ];
  const gpuArrays = all.filter(isPartition).filter((p) => p.gpus > 0);
  if (gpuArrays.length > 0) {
    lines.push('GresTypes=gpu');
    if (!options.gresConfWritten) {
      lines.push(
        `# WARNING: ${gpuArrays.map((p) => p.nodearray).join(', ')} declare GPUs: put the gres.conf of \`ccscale slurm conf --gres-conf <slurm.conf's folder>/gres.conf\` beside slurm.conf, or their nodes are refused when they register (Slurm drops a GPU without File=).`,
      );
    }
  }
  if (options.topology) {
    lines.push(
      '# topology.conf (`ccscale slurm conf --topology-conf`) beside slurm.conf: one switch per placement group of a tightly coupled partition.',
      'TopologyPlugin=topology/tree',
    );
  }
  const firstPartition = all.find(isPartition);
  for (const entry of all) {
    lines.push('');
    if (!isPartition(entry)) {
      lines.push(`# nodearray ${entry.nodearray}: ${entry.skipped}`);
      continue;
    }
    const { bucket, nodearray, nodes, gpus, tight } = entry;
    const memory = realMemoryMb(bucket.memoryGB);
    lines.push(
      `# nodearray ${nodearray}: ${bucket.machineType}${bucket.spot ? ' (spot)' : ''}, ${bucket.vcpuCount} vCPUs, ${bucket.memoryGB} GB${gpus > 0 ? `, ${gpus} GPU${gpus === 1 ? '' : 's'}` : ''}` +
        (tight ? `, InfiniBand: tightly coupled, one job per placement group of at most ${bucket.maxPlacementGroupSize}` : ''),
    );
    lines.push(
      [
        `NodeName=${nodes}`,
        `CPUs=${bucket.vcpuCount}`,
        `RealMemory=${memory}`,
        ...(gpus > 0 ? [`Gres=gpu:${gpus}`] : []),
        `Feature=${features(nodearray, bucket)}`,
        'State=CLOUD',
      ].join(' '),
    );
    lines.push(
      [
        `PartitionName=${nodearray}`,
        `Nodes=${nodes}`,
        ...(entry === firstPartition ? ['Default=YES'] : []),
        'State=UP',
        'MaxTime=INFINITE',
        `DefMemPerCPU=${Math.max(1, Math.floor(memory / Math.max(1, bucket.vcpuCount)))}`,
        `ResumeTimeout=${own(options.resumeTimeoutFor, nodearray) ?? resumeTimeout}`,
        ...(tight ? ['OverSubscribe=EXCLUSIVE'] : []),
      ].join(' '),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `cloud`, the VM size, `spot` or `regular`, and the nodearray: what `sbatch --constraint` can select on. */
function features(nodearray: string, bucket: Bucket): string {
  return [...new Set(['cloud', bucket.machineType, bucket.spot ? 'spot' : 'regular', nodearray])].join(',');
}

/**
 * The device files of a VM size's GPUs. NVIDIA: `/dev/nvidia0`…; AMD Instinct (MI300X sizes, told
 * from the VM size's name because the status names no GPU vendor; UNCONFIRMED beyond the ND MI300X
 * v5 size): the render nodes `/dev/dri/renderD128`, 136, … (8 apart), as azslurm writes them.
 */
export function gpuDeviceFiles(machineType: string, gpus: number): string {
  if (/mi300/i.test(machineType)) {
    return gpus === 1 ? '/dev/dri/renderD128' : `/dev/dri/renderD[${Array.from({ length: gpus }, (_, i) => 128 + 8 * i).join(',')}]`;
  }
  return gpus === 1 ? '/dev/nvidia0' : `/dev/nvidia[0-${gpus - 1}]`;
}

/** The gres.conf text: one `NodeName=… Name=gpu Count=N File=…` line per GPU nodearray. */
export function gresConf(status: ClusterStatus, options: SlurmConfOptions = {}): string {
  const lines = [
    `# gres.conf for cluster ${status.cluster} (snapshot ${status.takenAt}), generated by \`ccscale slurm conf --gres-conf\`.`,
    "# Slurm reads it from slurm.conf's folder, on slurmctld and on every node.",
  ];
  const gpuArrays = entries(status, options)
    .filter(isPartition)
    .filter((p) => p.gpus > 0);
  if (gpuArrays.length === 0) lines.push('# No nodearray has GPUs.');
  for (const p of gpuArrays) {
    lines.push(`# nodearray ${p.nodearray}: ${p.bucket.machineType}, ${p.gpus} GPU${p.gpus === 1 ? '' : 's'} per node`);
    lines.push(`NodeName=${p.nodes} Name=gpu Count=${p.gpus} File=${gpuDeviceFiles(p.bucket.machineType, p.gpus)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** One leaf switch of {@link topologyConf}: its name and nodes. */
export interface SlurmSwitch {
  name: string;
  nodearray: string;
  nodes: string;
  /** True: the switch of one placement group of a tightly coupled nodearray. */
  placementGroup: boolean;
}

/**
 * The leaf switches: per tightly coupled nodearray one per placement group (`<nodearray>-pg<k>`,
 * nodes `k·size+1 … (k+1)·size` in hostlist order, the chunks of a resume); per other nodearray one
 * (`<nodearray>`).
 */
export function slurmSwitches(status: ClusterStatus, options: SlurmConfOptions = {}): SlurmSwitch[] {
  const switches: SlurmSwitch[] = [];
  const taken = new Set<string>();
  // Switch names must be unique: a nodearray named like another's placement-group switch gets a suffix.
  const add = (name: string, nodearray: string, nodes: string, placementGroup: boolean) => {
    let unique = name;
    while (taken.has(unique)) unique = `${unique}-sw`;
    taken.add(unique);
    switches.push({ name: unique, nodearray, nodes, placementGroup });
  };
  for (const p of entries(status, options).filter(isPartition)) {
    if (!p.tight) {
      add(p.nodearray, p.nodearray, p.nodes, false);
      continue;
    }
    const size = Math.max(1, p.bucket.maxPlacementGroupSize);
    for (let k = 0; k * size < p.count; k++) add(`${p.nodearray}-pg${k}`, p.nodearray, rangeOf(p.nodearray, k * size + 1, Math.min(p.count, (k + 1) * size)), true);
  }
  return switches;
}

/** The topology.conf text for `TopologyPlugin=topology/tree`: the leaf switches and one top switch over them. */
export function topologyConf(status: ClusterStatus, options: SlurmConfOptions = {}): string {
  const lines = [
    `# topology.conf for cluster ${status.cluster} (snapshot ${status.takenAt}), generated by \`ccscale slurm conf --topology-conf\`; TopologyPlugin=topology/tree.`,
    '# A tightly coupled (InfiniBand) nodearray has one switch per placement group: its nodes in hostlist order, in chunks of the',
    "# bucket's maxPlacementGroupSize, as the scaler's resume groups a tightly coupled job. Slurm keeps a job inside the lowest",
    '# switch that fits it (`sbatch --switches=1` makes that a rule), so a job of at most one placement group stays in one.',
  ];
  const switches = slurmSwitches(status, options);
  if (switches.length === 0) {
    lines.push('# No nodearray can have nodes: no switches.');
    return `${lines.join('\n')}\n`;
  }
  let current = '';
  for (const s of switches) {
    if (s.nodearray !== current) {
      current = s.nodearray;
      const many = switches.filter((x) => x.nodearray === current).length;
      lines.push(`# nodearray ${current}: ${s.placementGroup ? `${many} placement group${many === 1 ? '' : 's'}` : 'one switch (not tightly coupled)'}`);
    }
    lines.push(`SwitchName=${s.name} Nodes=${s.nodes}`);
  }
  const names = new Set(switches.map((s) => s.name));
  let top = 'top';
  for (let n = 2; names.has(top); n++) top = `top${n}`;
  lines.push('# The top switch joins every leaf, so a job may still span them.');
  lines.push(`SwitchName=${top} Switches=${formatHostlist(switches.map((s) => s.name))}`);
  return `${lines.join('\n')}\n`;
}
