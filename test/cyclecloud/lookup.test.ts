import { describe, expect, it } from 'vitest';
import { operationNodes } from '../../src/cyclecloud/lookup.ts';
import type { CycleCloudApi, ListNodesOptions } from '../../src/cyclecloud/api.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import type { NodeRecord } from '../../src/cyclecloud/schemas.ts';
import { CREATE_TAG, REQUEST_TAG } from '../../src/cyclecloud/tags.ts';

const node = (name: string, cc?: string): NodeRecord =>
  ({ Name: name, NodeId: `id-${name}`, Status: 'Ready', ...(cc ? { Tags: { [REQUEST_TAG]: cc.replace(/-g\d+$/, ''), [CREATE_TAG]: cc } } : {}) }) as NodeRecord;

/** A CycleCloud whose every list answers `byId` (or 404 when null), and `all` without a filter. */
function fake(byId: NodeRecord[] | null, all: NodeRecord[] = []) {
  const asked: ListNodesOptions[] = [];
  const api = {
    listNodes: async (_cluster: string, options: ListNodesOptions = {}) => {
      asked.push(options);
      if (options.operationId === undefined && options.requestId === undefined) return { nodes: all };
      if (byId === null) throw new CycleCloudError('CC_NOT_FOUND', 'unknown request id', { status: 404 });
      return { nodes: byId };
    },
  } as unknown as CycleCloudApi;
  return { api, asked };
}

describe('operationNodes', () => {
  it("keeps, of a batch operation's nodes, only the create's own (its ccscale-create tag), and unmarked ones outside a batch", async () => {
    const { api } = fake([node('mpi-1', 'a-g0'), node('mpi-2', 'b-g0'), node('mpi-3')]);
    const r = await operationNodes(api, 'hpc', { operationId: 'op-1', cycleCloudRequestId: 'a-g0', tagged: true });
    expect(r.nodes.map((n) => n.Name)).toEqual(['mpi-1', 'mpi-3']);
    expect(r.via).toBe('operation');
  });

  it("asks a batch member's nodes by the batch's request id and keeps only those with its tag", async () => {
    const { api, asked } = fake([node('mpi-1', 'a-g0'), node('mpi-2', 'b-g0'), node('mpi-3')]);
    const r = await operationNodes(api, 'hpc', { operationId: null, cycleCloudRequestId: 'b-g0', tagged: true, batchRequestId: 'ccb-1' });
    expect(asked[0]).toEqual({ requestId: 'ccb-1' });
    expect(r.nodes.map((n) => n.Name)).toEqual(['mpi-2']);
  });

  it('keeps every node of a terminate (no tags to go by)', async () => {
    const { api } = fake([node('mpi-1', 'a-g0'), node('mpi-2')]);
    const r = await operationNodes(api, 'hpc', { operationId: 'op-2', cycleCloudRequestId: 'a-g0-c' });
    expect(r.nodes.map((n) => n.Name)).toEqual(['mpi-1', 'mpi-2']);
  });

  it('settles an unknown request id against the full list by the create tag', async () => {
    const { api } = fake(null, [node('mpi-1', 'a-g0'), node('mpi-2', 'b-g0')]);
    const r = await operationNodes(api, 'hpc', { operationId: null, cycleCloudRequestId: 'b-g0', tagged: true, batchRequestId: 'ccb-1' });
    expect(r).toMatchObject({ via: 'full_list', unknownById: true, calls: 2 });
    expect(r.nodes.map((n) => n.Name)).toEqual(['mpi-2']);
  });
});
