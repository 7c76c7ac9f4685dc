import { describe, expect, it } from 'vitest';
import { slurmResume, slurmResumeFail, slurmSuspend } from '../../src/http/routes.ts';
import { BASE, bodyOf, fakeDeps, httpRequest, signedHeaders, T0 } from './fakes.ts';

const post = (path: string, body: unknown, headers: Record<string, string> = {}) => httpRequest('POST', `/api/slurm/${path}`, { body, headers });

describe('POST /api/slurm/*', () => {
  it('queues one named scale request for a resume and answers 202 with its id', async () => {
    // Prepare
    const { deps, world } = fakeDeps();

    // Act
    const res = await slurmResume(
      deps,
      post('resume', { cluster: 'hpc', nodes: 'ondemand-[1-2]', resumeFile: { all_nodes: 'ondemand-[1-2]', jobs: [{ job_id: 7, nodes: 'ondemand-[1-2]' }] } }),
    );

    // Assess
    expect(res.status).toBe(202);
    const body = bodyOf(res) as { requestIds: string[]; statusUrls: string[]; nodes: string; skipped: unknown[] };
    expect(body).toEqual({
      requestIds: [expect.stringMatching(/^slurm-resume-/)],
      statusUrls: [`${BASE}/api/scale-requests/${body.requestIds[0]}`],
      nodes: 'ondemand-[1-2]',
      skipped: [],
    });
    expect(world.submitted).toEqual([
      {
        kind: 'scale',
        requestId: body.requestIds[0],
        cluster: 'hpc',
        demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'], names: ['ondemand-1', 'ondemand-2'] }],
        onNoCapacity: 'fail',
      },
    ]);
  });

  it('is harmless to repeat', async () => {
    const { deps, world } = fakeDeps();
    const call = { cluster: 'hpc', nodes: 'mpi-[1-4]' };
    const first = bodyOf(await slurmResume(deps, post('resume', call)));
    const again = bodyOf(await slurmResume(deps, post('resume', call)));
    expect(again).toEqual(first);
    expect(world.submitted).toHaveLength(1);
  });

  it('queues terminates for suspend (shutdown) and resume-fail (terminate), with no snapshot needed', async () => {
    const { deps, world } = fakeDeps();
    world.snapshots.clear();
    expect((await slurmSuspend(deps, post('suspend', { cluster: 'hpc', nodes: 'ondemand-1' }))).status).toBe(202);
    expect((await slurmResumeFail(deps, post('resume-fail', { cluster: 'hpc', nodes: 'ondemand-1' }))).status).toBe(202);
    expect(world.submitted.map((m) => [m.kind, (m as { action?: string }).action, (m as { names?: string[] }).names])).toEqual([
      ['terminate', 'shutdown', ['ondemand-1']],
      ['terminate', undefined, ['ondemand-1']],
    ]);
  });

  it('answers 400 naming the field for a bad hostlist, an unknown node or an unknown key', async () => {
    const { deps, world } = fakeDeps();
    const cases: [unknown, string, RegExp][] = [
      [{ cluster: 'hpc', nodes: 'ondemand-[3-1]' }, 'nodes', /invalid range/],
      [{ cluster: 'hpc', nodes: 'gpu-1' }, 'nodes', /match no nodearray/],
      [{ cluster: 'hpc', nodes: 'ondemand-1', colour: 'red' }, 'colour', /not a known field/],
      [{ cluster: 'hpc' }, 'nodes', /./],
      [{ cluster: 'hpc', nodes: 'ondemand-1', resumeFile: { jobs: [{ nodes: 'x' }] } }, 'resumeFile.jobs.0.job_id', /./],
    ];
    for (const [body, path, message] of cases) {
      const res = await slurmResume(deps, post('resume', body));
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((bodyOf(res) as { errors: { path: string; message: string }[] }).errors).toContainEqual({ path, message: expect.stringMatching(message) });
    }
    expect(world.submitted).toEqual([]);
  });

  it('answers 404 for a resume in a cluster with no snapshot', async () => {
    const { deps } = fakeDeps();
    expect((await slurmResume(deps, post('resume', { cluster: 'nope', nodes: 'a-1' }))).status).toBe(404);
  });

  it('applies the signature rule like every other POST', async () => {
    const { deps, world } = fakeDeps({ requireSignatures: true });
    world.secret = 'slurm-signing-secret-0123456789';
    const body = { cluster: 'hpc', nodes: 'ondemand-1' };
    expect((await slurmSuspend(deps, post('suspend', body))).status).toBe(401);
    const raw = JSON.stringify(body);
    expect((await slurmSuspend(deps, post('suspend', body, signedHeaders(world.secret, raw, T0 + 30_000, '/api/slurm/suspend')))).status).toBe(202);
  });
});
