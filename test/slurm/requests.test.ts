import { describe, expect, it } from 'vitest';
import { admitSlurmRequests, nodearrayOf, slurmRequestKey, translate, type SlurmAdmitDeps } from '../../src/slurm/requests.ts';
import type { RequestMessage, RequestRecord, ScaleRequest } from '../../src/ledger/schemas.ts';
import { seedSnapshot, T0 } from '../planning/fixtures.ts';

const ids = (i: number) => `id-${i}`;
const scale = (t: ReturnType<typeof translate>): ScaleRequest => {
  if (!t.ok) throw new Error(JSON.stringify(t.errors));
  return t.messages[0] as ScaleRequest;
};

describe('Slurm resume → scale request', () => {
  it('names exactly the nodes, in the bucket slurm.conf declared them with', () => {
    const req = scale(translate('resume', { cluster: 'hpc', nodes: 'ondemand-[1-2]' }, seedSnapshot(), ids));
    expect(req).toEqual({
      kind: 'scale',
      requestId: 'id-0',
      cluster: 'hpc',
      demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'], names: ['ondemand-1', 'ondemand-2'] }],
      // Slurm has its own ResumeTimeout: a node with no room is reported down at once, not waited for.
      onNoCapacity: 'fail',
    });
  });

  it('makes each job of the resume file one colocated demand in a tightly coupled nodearray', () => {
    const resumeFile = {
      all_nodes: 'mpi-[1-6],ondemand-1',
      jobs: [
        { job_id: 12, nodes: 'mpi-[5-6]' },
        { job_id: 11, nodes: 'mpi-[1-3],ondemand-1' },
      ],
      future_key: true,
    };
    const req = scale(translate('resume', { cluster: 'hpc', nodes: 'mpi-[1-6],ondemand-1', resumeFile }, seedSnapshot(), ids));
    expect(req.demands).toEqual([
      { nodearray: 'mpi', machineTypes: ['Standard_HB120rs_v3'], count: 2, names: ['mpi-5', 'mpi-6'], colocated: true, jobId: '12' },
      { nodearray: 'mpi', machineTypes: ['Standard_HB120rs_v3'], count: 3, names: ['mpi-1', 'mpi-2', 'mpi-3'], colocated: true, jobId: '11' },
      { nodearray: 'mpi', machineTypes: ['Standard_HB120rs_v3'], count: 1, names: ['mpi-4'], colocated: true },
      { nodearray: 'ondemand', machineTypes: ['Standard_F32s_v2'], count: 1, names: ['ondemand-1'] },
    ]);
  });

  it('reads the 23.02 resume file shape (nodes_resume)', () => {
    const resumeFile = { all_nodes_resume: 'mpi-[1-2]', jobs: [{ job_id: 3, nodes_alloc: 'mpi-[1-2]', nodes_resume: 'mpi-[1-2]', partition: 'mpi', oversubscribe: 'NO' }] };
    expect(scale(translate('resume', { cluster: 'hpc', nodes: 'mpi-[1-2]', resumeFile }, seedSnapshot(), ids)).demands).toEqual([
      expect.objectContaining({ names: ['mpi-1', 'mpi-2'], colocated: true, jobId: '3' }),
    ]);
  });

  it('without a resume file groups a tightly coupled nodearray up to the placement-group size, in hostlist order', () => {
    const req = scale(translate('resume', { cluster: 'hpc', nodes: 'mpi-[1-10]' }, seedSnapshot(), ids));
    expect(req.demands.map((d) => [d.count, d.names![0], d.colocated])).toEqual([
      [4, 'mpi-1', true],
      [4, 'mpi-5', true],
      [2, 'mpi-9', true],
    ]);
  });

  it('skips names CycleCloud already runs and says so', () => {
    const snapshot = seedSnapshot({
      nodes: [
        { name: 'ondemand-1', id: 'a', status: 'Ready', nodearray: 'ondemand', placementGroupId: null },
        { name: 'ondemand-2', id: 'b', status: 'Terminated', nodearray: 'ondemand', placementGroupId: null },
      ],
    });
    const t = translate('resume', { cluster: 'hpc', nodes: 'ondemand-[1-2]' }, snapshot, ids);
    expect(t).toMatchObject({ ok: true, skipped: [{ names: ['ondemand-1'], reason: 'already running in CycleCloud' }] });
    expect(scale(t).demands).toEqual([expect.objectContaining({ names: ['ondemand-2'] })]);
    expect(translate('resume', { cluster: 'hpc', nodes: 'ondemand-1' }, snapshot, ids)).toMatchObject({ ok: true, messages: [] });
  });

  it('starts names CycleCloud holds deallocated instead of creating them', () => {
    const snapshot = seedSnapshot({ nodes: [{ name: 'mpi-2', id: 'a', status: 'Deallocated', nodearray: 'mpi', placementGroupId: 'pg' }] });
    const t = translate('resume', { cluster: 'hpc', nodes: 'mpi-[1-2]' }, snapshot, ids);
    expect(t.ok && t.messages).toEqual([
      { kind: 'scale', requestId: 'id-0', cluster: 'hpc', demands: [expect.objectContaining({ nodearray: 'mpi', count: 1, names: ['mpi-1'] })], onNoCapacity: 'fail' },
      { kind: 'terminate', action: 'start', requestId: 'id-1', cluster: 'hpc', names: ['mpi-2'] },
    ]);
    const only = translate('resume', { cluster: 'hpc', nodes: 'mpi-2' }, snapshot, ids);
    expect(only.ok && only.messages).toEqual([{ kind: 'terminate', action: 'start', requestId: 'id-0', cluster: 'hpc', names: ['mpi-2'] }]);
  });

  it('refuses names no nodearray has, and bad hostlists, naming them', () => {
    expect(translate('resume', { cluster: 'hpc', nodes: 'gpu-[1-2],ondemand-1' }, seedSnapshot(), ids)).toEqual({
      ok: false,
      errors: [{ path: 'nodes', message: expect.stringMatching(/^gpu-\[1-2\] match no nodearray of cluster hpc .*nodearrays: ondemand, mpi/) }],
    });
    expect(translate('resume', { cluster: 'hpc', nodes: 'ondemand-[2-1]' }, seedSnapshot(), ids)).toMatchObject({
      ok: false,
      errors: [{ path: 'nodes', message: expect.stringMatching(/invalid range/) }],
    });
    expect(translate('resume', { cluster: 'hpc', nodes: 'mpi-1', resumeFile: { jobs: [{ job_id: 1, nodes: 'mpi-[' }] } }, seedSnapshot(), ids)).toMatchObject({
      ok: false,
      errors: [{ path: 'resumeFile.jobs' }],
    });
  });

  it('matches the longest nodearray name', () => {
    const snapshot = seedSnapshot();
    snapshot.nodearrays.push({ ...snapshot.nodearrays[1]!, name: 'mpi-big' });
    expect(nodearrayOf('mpi-big-3', snapshot)?.name).toBe('mpi-big');
    expect(nodearrayOf('mpi-3', snapshot)?.name).toBe('mpi');
    expect(nodearrayOf('mpi-03', snapshot)).toBeNull();
  });
});

describe('Slurm suspend / resume-fail → terminate requests', () => {
  it("suspends by name with CycleCloud shutdown (each node's ShutdownPolicy decides), needing no snapshot", () => {
    expect(translate('suspend', { cluster: 'hpc', nodes: 'ondemand-[2,1]' }, null, ids)).toEqual({
      ok: true,
      skipped: [],
      names: ['ondemand-1', 'ondemand-2'],
      messages: [{ kind: 'terminate', requestId: 'id-0', cluster: 'hpc', names: ['ondemand-1', 'ondemand-2'], action: 'shutdown' }],
    });
  });

  it('skips, saying why, the nodes a live node list shows CycleCloud no longer runs (a suspend after a resume-fail)', () => {
    const snapshot = seedSnapshot({
      nodes: [
        { name: 'ondemand-1', id: 'a', status: 'Ready', nodearray: 'ondemand', placementGroupId: null },
        { name: 'ondemand-2', id: 'b', status: 'Terminating', nodearray: 'ondemand', placementGroupId: null },
      ],
    });
    expect(translate('suspend', { cluster: 'hpc', nodes: 'ondemand-[1-3]' }, snapshot, ids)).toEqual({
      ok: true,
      skipped: [{ names: ['ondemand-2', 'ondemand-3'], reason: 'CycleCloud no longer runs them (terminated, deallocated or going)' }],
      names: ['ondemand-1'],
      messages: [{ kind: 'terminate', requestId: 'id-0', cluster: 'hpc', names: ['ondemand-1'], action: 'shutdown' }],
    });
    // All gone: nothing to queue
    expect(translate('suspend', { cluster: 'hpc', nodes: 'ondemand-[2-3]' }, snapshot, ids)).toMatchObject({ ok: true, messages: [], names: [] });
  });

  it('terminates what failed to come up, whatever the ShutdownPolicy', () => {
    expect(translate('resume-fail', { cluster: 'hpc', nodes: 'mpi-1' }, null, ids)).toMatchObject({
      messages: [{ kind: 'terminate', names: ['mpi-1'] }],
    });
    expect((translate('resume-fail', { cluster: 'hpc', nodes: 'mpi-1' }, null, ids) as { messages: object[] }).messages[0]).not.toHaveProperty('action');
  });

  it('splits more than 10,000 names into several requests', () => {
    const t = translate('resume-fail', { cluster: 'hpc', nodes: 'n[1-25000]' }, null, ids);
    expect(t.ok && t.messages.map((m) => (m as { names: string[] }).names.length)).toEqual([10_000, 10_000, 5_000]);
  });
});

describe('idempotency of Slurm calls', () => {
  function fakeDeps(now: { ms: number }) {
    const records = new Map<string, RequestRecord>();
    const submitted: RequestMessage[] = [];
    const deps: SlurmAdmitDeps = {
      now: () => now.ms,
      getRecord: async (id) => records.get(id) ?? null,
      submitRequest: async (m) => {
        submitted.push(m);
        const existing = records.get(m.requestId);
        if (existing) return { outcome: 'duplicate', record: existing };
        const record = {
          requestId: m.requestId,
          cluster: m.cluster,
          kind: m.kind,
          state: 'queued',
          demands: [],
          operations: [],
          nodes: [],
          reason: null,
          createdAt: new Date(now.ms).toISOString(),
          updatedAt: new Date(now.ms).toISOString(),
        } as RequestRecord;
        records.set(m.requestId, record);
        return { outcome: 'created', record };
      },
    };
    const finish = (id: string) => Object.assign(records.get(id)!, { state: 'fulfilled', updatedAt: new Date(now.ms).toISOString() });
    return { deps, submitted, finish };
  }

  it('derives the key from the hostlist and the job ids, whatever their order', () => {
    const a = slurmRequestKey('resume', 'hpc', ['n1', 'n2'], [1, 2]);
    expect(a).toMatch(/^slurm-resume-[0-9a-f]{20}$/);
    expect(slurmRequestKey('resume', 'hpc', ['n1', 'n2'], [1, 3])).not.toBe(a);
    expect(slurmRequestKey('suspend', 'hpc', ['n1', 'n2'], [1, 2])).not.toBe(a);
  });

  it('answers a repeat with the same request, and a later power cycle with a new one', async () => {
    const now = { ms: T0 };
    const { deps, submitted, finish } = fakeDeps(now);
    const call = { cluster: 'hpc', nodes: 'ondemand-1' };

    const first = await admitSlurmRequests(deps, 'suspend', call, null);
    const repeat = await admitSlurmRequests(deps, 'suspend', { cluster: 'hpc', nodes: 'ondemand-[1]' }, null);
    expect(repeat).toEqual(first);
    finish((first as { requestIds: string[] }).requestIds[0]!);

    // Once final, the same call is the next power cycle: a new request (generation 2, then 3).
    now.ms += 1_000;
    const second = await admitSlurmRequests(deps, 'suspend', call, null);
    const key = (first as { requestIds: string[] }).requestIds[0]!;
    expect(second).toMatchObject({ requestIds: [`${key}.2`] });
    finish(`${key}.2`);
    now.ms += 3_600_000;
    expect(await admitSlurmRequests(deps, 'suspend', call, null)).toMatchObject({ requestIds: [`${key}.3`] });
    expect(new Set(submitted.map((m) => m.requestId))).toEqual(new Set([key, `${key}.2`, `${key}.3`]));
  });

  it('answers a resume of nodes that already run with the last request, queueing nothing', async () => {
    const now = { ms: T0 };
    const { deps, submitted, finish } = fakeDeps(now);
    const call = { cluster: 'hpc', nodes: 'ondemand-1' };
    const first = (await admitSlurmRequests(deps, 'resume', call, seedSnapshot())) as { requestIds: string[] };
    finish(first.requestIds[0]!);
    const running = seedSnapshot({ nodes: [{ name: 'ondemand-1', id: 'n1', status: 'Ready', nodearray: 'ondemand', placementGroupId: null }] });
    expect(await admitSlurmRequests(deps, 'resume', call, running)).toMatchObject({ requestIds: first.requestIds, skipped: [{ names: ['ondemand-1'] }] });
    expect(submitted).toHaveLength(1);
  });
});
