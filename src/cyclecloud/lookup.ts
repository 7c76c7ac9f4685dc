/**
 * Finding the nodes of one operation with only what CycleCloud documents.
 *
 * `GET /clusters/{c}/nodes?operation=` needs the operation id, which only the 202 of the call
 * carries; after a lost answer the scaler knows just the CycleCloud requestId it sent, and
 * `?request_id=` (reference §2 E2) is the documented way back. Neither a node list's `operation`
 * nor `GET /operations/` says the id (OperationStatus is `{action, startTime}`, §3.10). A 404 is
 * not proof of absence: how long CycleCloud remembers request ids is not documented (§5.1) and a
 * list may lag a create by seconds. So a 404 is settled against the cluster's full node list, by the
 * NodeIds already known and by the scaler's tags (src/cyclecloud/tags.ts).
 */
import type { CallOptions, CycleCloudApi } from './api.ts';
import { isCycleCloudError } from './errors.ts';
import type { NodeRecord } from './schemas.ts';
import { markOf } from './tags.ts';

export interface OperationRefForLookup {
  /** Known from the 202, else null. */
  operationId: string | null;
  cycleCloudRequestId: string;
  /** NodeIds this operation is known to hold. */
  nodeIds?: Iterable<string>;
  /** Names of nodes whose id is unknown (a terminate given names). */
  namesWithoutId?: Iterable<string>;
  /** A create: nodes tagged with this request id are its own. */
  tagged?: boolean;
  /**
   * A create sent in a batch: the CycleCloud requestId the batch was sent under. The lookup asks for
   * it, and of its nodes keeps those tagged with `cycleCloudRequestId` (this attempt's share).
   */
  batchRequestId?: string;
}

export interface OperationNodes {
  nodes: NodeRecord[];
  /** How they were found: the operation or request id answered, or the full list after a 404. */
  via: 'operation' | 'request_id' | 'full_list';
  /** CycleCloud answered 404 to the lookup by id (the full list decided). */
  unknownById: boolean;
  /** CycleCloud calls made. */
  calls: number;
}

export async function operationNodes(api: CycleCloudApi, cluster: string, ref: OperationRefForLookup, options: CallOptions = {}): Promise<OperationNodes> {
  const by = ref.operationId !== null ? { operationId: ref.operationId } : { requestId: ref.batchRequestId ?? ref.cycleCloudRequestId };
  try {
    const list = await api.listNodes(cluster, { ...by, ...options });
    // A batch's operation holds other requests' nodes too: a create's are the ones with its tag (a
    // node that shows no scaler mark at all is kept: nothing says it is another request's).
    const mine = (n: NodeRecord): boolean => {
      const mark = markOf(n);
      return mark === null ? ref.batchRequestId === undefined : mark.cycleCloudRequestId === ref.cycleCloudRequestId;
    };
    const nodes = ref.tagged === true || ref.batchRequestId !== undefined ? list.nodes.filter(mine) : list.nodes;
    return { nodes, via: ref.operationId !== null ? 'operation' : 'request_id', unknownById: false, calls: 1 };
  } catch (error) {
    if (!isCycleCloudError(error) || error.code !== 'CC_NOT_FOUND') throw error;
  }
  const all = (await api.listNodes(cluster, options)).nodes;
  return { nodes: membersOf(all, ref), via: 'full_list', unknownById: true, calls: 2 };
}

/**
 * The nodes of one operation in a cluster's full node list: those with a NodeId it is known to
 * hold, those named (a terminate or start given names without ids) and, for a create, those tagged
 * with its CycleCloud requestId.
 */
export function membersOf(all: readonly NodeRecord[], ref: Omit<OperationRefForLookup, 'operationId'>): NodeRecord[] {
  const ids = new Set(ref.nodeIds ?? []);
  const names = new Set(ref.namesWithoutId ?? []);
  return all.filter(
    (n) => (n.NodeId !== undefined && ids.has(n.NodeId)) || names.has(n.Name) || (ref.tagged === true && markOf(n)?.cycleCloudRequestId === ref.cycleCloudRequestId),
  );
}
