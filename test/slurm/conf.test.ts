import { describe, expect, it } from 'vitest';
import { gpuDeviceFiles, gresConf, realMemoryMb, slurmConf, slurmSwitches, topologyConf } from '../../src/slurm/conf.ts';
import { expandHostlist } from '../../src/slurm/hostlist.ts';
import { translate } from '../../src/slurm/requests.ts';
import type { ClusterStatus } from '../../src/http/schemas.ts';
import type { ScaleRequest } from '../../src/ledger/schemas.ts';
import { bucket, seedSnapshot } from '../planning/fixtures.ts';

/** The seed's cluster as `GET /api/clusters/hpc/status` answers it, plus a spot GPU nodearray `gpu` (2 GPUs per node) when asked. */
const status = (options: { gpu?: boolean } = {}): ClusterStatus => {
  const s = seedSnapshot();
  if (options.gpu) {
    s.nodearrays.push({
      name: 'gpu',
      maxCount: 4,
      maxCoreCount: 4 * 48,
      buckets: [{ ...bucket({ machineType: 'Standard_NC48ads_A100_v4', vcpuCount: 48, memoryGB: 440, maxCount: 4, availableCount: 4, quotaCount: 4 }), gpuCount: 2, spot: true }],
    });
  }
  return {
    cluster: s.cluster,
    takenAt: s.takenAt,
    ageSeconds: 3,
    stale: false,
    nodearrays: s.nodearrays.map((na) => ({ name: na.name, buckets: na.buckets.map((b) => ({ ...b, spot: b.spot === true })) })),
  };
};

describe('ccscale slurm conf: slurm.conf', () => {
  it('declares one CLOUD partition per nodearray with its own ResumeTimeout, named as CycleCloud names the nodes', () => {
    const conf = slurmConf(status(), { programsDir: '/opt/s/' });
    expect(conf).toContain('NodeName=ondemand-[1-3] CPUs=32 RealMemory=62259 Feature=cloud,Standard_F32s_v2,regular,ondemand State=CLOUD\n');
    expect(conf).toContain('PartitionName=ondemand Nodes=ondemand-[1-3] Default=YES State=UP MaxTime=INFINITE DefMemPerCPU=1945 ResumeTimeout=1800\n');
    expect(conf).toContain('NodeName=mpi-[1-64] CPUs=120 RealMemory=435814 Feature=cloud,Standard_HB120rs_v3,regular,mpi State=CLOUD\n');
    expect(conf).toContain('PartitionName=mpi Nodes=mpi-[1-64] State=UP MaxTime=INFINITE DefMemPerCPU=3631 ResumeTimeout=1800 OverSubscribe=EXCLUSIVE\n');
    expect(conf).toContain('ResumeProgram=/opt/s/resume.sh\nSuspendProgram=/opt/s/suspend.sh\nResumeFailProgram=/opt/s/resume-fail.sh\n');
    expect(conf).toMatch(/^ResumeTimeout=1800$/m);
    expect(conf).toMatch(/^SuspendTime=300$/m);
    expect(conf).toMatch(/^SuspendTimeout=600$/m);
    expect(conf).toMatch(/^SlurmctldParameters=idle_on_node_suspend,cloud_reg_addrs$/m);
    expect(conf).toMatch(/^PrivateData=cloud$/m);
    expect(conf).not.toMatch(/Gres|Topology/);
  });

  it('gives a partition named by resumeTimeoutFor its own ResumeTimeout, the rest the default', () => {
    const conf = slurmConf(status(), { resumeTimeoutSec: 900, resumeTimeoutFor: { mpi: 2400 } });
    expect(conf).toMatch(/^ResumeTimeout=900$/m);
    expect(conf).toMatch(/^PartitionName=ondemand .* ResumeTimeout=900$/m);
    expect(conf).toMatch(/^PartitionName=mpi .* ResumeTimeout=2400 OverSubscribe=EXCLUSIVE$/m);
  });

  it("declares GPUs from the bucket's gpuCount, spot as a feature, and says gres.conf is needed", () => {
    const conf = slurmConf(status({ gpu: true }));
    expect(conf).toMatch(/^GresTypes=gpu$/m);
    expect(conf).toContain('NodeName=gpu-[1-4] CPUs=48 RealMemory=428032 Gres=gpu:2 Feature=cloud,Standard_NC48ads_A100_v4,spot,gpu State=CLOUD\n');
    expect(conf).toMatch(/^# WARNING: gpu declare GPUs: put the gres.conf .*--gres-conf/m);
    // Told that gres.conf is written beside it: no warning.
    expect(slurmConf(status({ gpu: true }), { gresConfWritten: true })).not.toMatch(/WARNING/);
  });

  it('takes GPU counts from gpusFor over the status (0 = none), and skips nodearrays that cannot have nodes', () => {
    const s = status({ gpu: true });
    for (const b of s.nodearrays[0]!.buckets) b.valid = false;
    const conf = slurmConf(s, { gpusFor: { mpi: 8, gpu: 0 }, suspendTimeSec: 60, suspendTimeoutSec: 120 });
    expect(conf).toMatch(/^NodeName=mpi-\[1-64\] .*Gres=gpu:8 /m);
    expect(conf).toMatch(/^NodeName=gpu-\[1-4\] CPUs=48 RealMemory=428032 Feature=/m);
    expect(conf).toContain('# nodearray ondemand: no valid bucket, no nodes');
    expect(conf).toMatch(/^PartitionName=mpi .*Default=YES/m);
  });

  it('reads the per-nodearray options by own key only (a nodearray named constructor gets the defaults)', () => {
    const s = status();
    s.nodearrays[0]!.name = 'constructor';
    const conf = slurmConf(s, { resumeTimeoutFor: {}, gpusFor: {} });
    expect(conf).toMatch(/^PartitionName=constructor .* ResumeTimeout=1800$/m);
    expect(conf).not.toMatch(/Gres|function/);
  });

  it('adds TopologyPlugin=topology/tree only when asked (slurmctld refuses to start without the file)', () => {
    expect(slurmConf(status(), { topology: true })).toMatch(/^TopologyPlugin=topology\/tree$/m);
    expect(slurmConf(status())).not.toMatch(/^TopologyPlugin/m);
  });

  it('holds back 5% of memory, at least 1 GiB, so Slurm does not drain a VM that reports a little less', () => {
    expect(realMemoryMb(64)).toBe(62259);
    expect(realMemoryMb(4)).toBe(3072);
    expect(realMemoryMb(0.5)).toBe(1);
  });
});

describe('ccscale slurm conf: gres.conf', () => {
  it('names each GPU nodearray with its count and device files', () => {
    const gres = gresConf(status({ gpu: true }));
    expect(gres).toContain('\nNodeName=gpu-[1-4] Name=gpu Count=2 File=/dev/nvidia[0-1]\n');
    expect(gres.split('\n').filter((l) => l.startsWith('NodeName='))).toHaveLength(1);
    expect(gresConf(status())).toContain('# No nodearray has GPUs.');
  });

  it('uses NVIDIA device files, and AMD render nodes for MI300X sizes', () => {
    expect(gpuDeviceFiles('Standard_NC24ads_A100_v4', 1)).toBe('/dev/nvidia0');
    expect(gpuDeviceFiles('Standard_ND96isr_H100_v5', 8)).toBe('/dev/nvidia[0-7]');
    expect(gpuDeviceFiles('Standard_ND96isr_MI300X_v5', 8)).toBe('/dev/dri/renderD[128,136,144,152,160,168,176,184]');
    expect(gpuDeviceFiles('Standard_ND96isr_MI300X_v5', 1)).toBe('/dev/dri/renderD128');
  });
});

describe('ccscale slurm conf: topology.conf', () => {
  it('gives a tightly coupled nodearray one switch per placement group, others one switch, and one top switch', () => {
    const topo = topologyConf(status({ gpu: true }));
    const lines = topo.split('\n').filter((l) => l.startsWith('SwitchName='));
    expect(lines[0]).toBe('SwitchName=ondemand Nodes=ondemand-[1-3]');
    expect(lines[1]).toBe('SwitchName=mpi-pg0 Nodes=mpi-[1-4]');
    expect(lines[2]).toBe('SwitchName=mpi-pg1 Nodes=mpi-[5-8]');
    expect(lines[16]).toBe('SwitchName=mpi-pg15 Nodes=mpi-[61-64]');
    expect(lines[17]).toBe('SwitchName=gpu Nodes=gpu-[1-4]');
    expect(lines[18]).toBe('SwitchName=top Switches=ondemand,mpi-pg[0-15],gpu');
    expect(lines).toHaveLength(19);
  });

  it('has the switches of the chunks a resume makes of a tightly coupled nodearray, job by job and without a resume file', () => {
    const snapshot = seedSnapshot();
    const switches = slurmSwitches(status()).filter((s) => s.nodearray === 'mpi');
    const namesOf = (nodes: string, resumeFile?: { jobs: { job_id: number; nodes: string }[] }) => {
      const t = translate('resume', { cluster: 'hpc', nodes, ...(resumeFile ? { resumeFile } : {}) }, snapshot, (i) => `r${i}`);
      if (!t.ok) throw new Error(JSON.stringify(t.errors));
      return (t.messages as ScaleRequest[]).flatMap((m) => m.demands.map((d) => d.names));
    };
    // Every node of the nodearray resumed at once: one colocated demand per switch.
    expect(namesOf('mpi-[1-64]')).toEqual(switches.map((s) => expandHostlist(s.nodes)));
    // A job Slurm kept inside one switch is one demand = one placement group.
    expect(namesOf('mpi-[5-8]', { jobs: [{ job_id: 7, nodes: 'mpi-[5-8]' }] })).toEqual([expandHostlist(switches[1]!.nodes)]);
    expect(namesOf('mpi-[9-10]', { jobs: [{ job_id: 8, nodes: 'mpi-[9-10]' }] })).toEqual([['mpi-9', 'mpi-10']]);
    // A job over two whole switches: two demands, one per switch.
    expect(namesOf('mpi-[1-8]', { jobs: [{ job_id: 9, nodes: 'mpi-[1-8]' }] })).toEqual([expandHostlist(switches[0]!.nodes), expandHostlist(switches[1]!.nodes)]);
  });

  it('keeps switch names unique when a nodearray is named like a placement-group switch', () => {
    const s = status();
    s.nodearrays.push(
      { name: 'mpi-pg0', buckets: [{ ...s.nodearrays[0]!.buckets[0]!, maxCount: 2 }] },
      { name: 'top', buckets: [{ ...s.nodearrays[0]!.buckets[0]!, maxCount: 1 }] },
    );
    const names = slurmSwitches(s).map((x) => x.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('mpi-pg0-sw');
    expect(topologyConf(s)).toMatch(/^SwitchName=top2 Switches=/m);
  });
});
