import { describe, expect, it } from 'vitest';
import { realMemoryMb, slurmConf } from '../../src/slurm/conf.ts';
import type { ClusterStatus } from '../../src/http/schemas.ts';
import { seedSnapshot } from '../planning/fixtures.ts';

const status = (): ClusterStatus => {
  const s = seedSnapshot();
  return {
    cluster: s.cluster,
    takenAt: s.takenAt,
    ageSeconds: 3,
    stale: false,
    nodearrays: s.nodearrays.map((na) => ({ name: na.name, buckets: na.buckets.map((b) => ({ ...b, spot: b.spot === true })) })),
  };
};

describe('ccscale slurm conf', () => {
  it('declares one CLOUD partition per nodearray, named as CycleCloud names the nodes', () => {
    const conf = slurmConf(status(), { programsDir: '/opt/s/' });
    expect(conf).toContain('NodeName=ondemand-[1-3] CPUs=32 RealMemory=62259 Feature=cloud,Standard_F32s_v2 State=CLOUD\n');
    expect(conf).toContain('PartitionName=ondemand Nodes=ondemand-[1-3] Default=YES State=UP MaxTime=INFINITE\n');
    expect(conf).toContain('NodeName=mpi-[1-64] CPUs=120 RealMemory=435814 Feature=cloud,Standard_HB120rs_v3 State=CLOUD\n');
    expect(conf).toContain('PartitionName=mpi Nodes=mpi-[1-64] State=UP MaxTime=INFINITE OverSubscribe=EXCLUSIVE\n');
    expect(conf).toContain('ResumeProgram=/opt/s/resume.sh\nSuspendProgram=/opt/s/suspend.sh\nResumeFailProgram=/opt/s/resume-fail.sh\n');
    expect(conf).toMatch(/^ResumeTimeout=1800$/m);
    expect(conf).toMatch(/^SuspendTime=300$/m);
    expect(conf).toMatch(/^SuspendTimeout=600$/m);
    expect(conf).toMatch(/^SlurmctldParameters=idle_on_node_suspend,cloud_reg_addrs$/m);
    expect(conf).toMatch(/^PrivateData=cloud$/m);
    expect(conf).not.toMatch(/Gres/);
  });

  it('declares GPUs when the status reports them, and skips nodearrays that cannot have nodes', () => {
    const s = status();
    Object.assign(s.nodearrays[1]!.buckets[0]!, { gpuCount: 8 });
    for (const b of s.nodearrays[0]!.buckets) b.valid = false;
    const conf = slurmConf(s, { resumeTimeoutSec: 900, suspendTimeSec: 60, suspendTimeoutSec: 120 });
    expect(conf).toMatch(/^GresTypes=gpu$/m);
    expect(conf).toMatch(/^NodeName=mpi-\[1-64\] .*Gres=gpu:8 /m);
    expect(conf).toContain('# nodearray ondemand: no valid bucket, no nodes');
    expect(conf).toMatch(/^PartitionName=mpi .*Default=YES/m);
    expect(conf).toMatch(/^ResumeTimeout=900$/m);
  });

  it('holds back 5% of memory, at least 1 GiB, so Slurm does not drain a VM that reports a little less', () => {
    expect(realMemoryMb(64)).toBe(62259);
    expect(realMemoryMb(4)).toBe(3072);
    expect(realMemoryMb(0.5)).toBe(1);
  });
});
