/**
 * The one terminate-and-reconcile path. Every terminate the scaler sends (a caller's terminate
 * request, a compensation of a partial gang, a broken gang, nodes past the boot deadline) goes
 * through {@link terminateAndTrack}: sent under a CycleCloud requestId derived from the caller's
 * (`src/ledger/record.ts`), so sending it again is how an unknown outcome is resolved: CycleCloud
 * answers 409 when it already has it (then it is followed by its request id), and if CycleCloud had
 * forgotten the id, terminating the same nodes twice is harmless. Then its tracker is started.
 */
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import { isAmbiguous, isCycleCloudError } from '../cyclecloud/errors.ts';
import { operationNodes } from '../cyclecloud/lookup.ts';
import type { NodeRecord } from '../cyclecloud/schemas.ts';
import type { TerminateOrder, TerminateResult, TerminateTarget, TrackStart } from './types.ts';

/** Sends the order until its outcome is known (see the module comment); does not start a tracker. */
export async function sendTerminate(cyclecloud: CycleCloudApi, order: TerminateOrder, signal?: () => AbortSignal): Promise<TerminateResult> {
  const { cluster, action, target } = order;
  const rounds = order.rounds ?? 3;
  const request = { ...target, requestId: order.cycleCloudRequestId };
  let lastError: unknown;
  let calls = 0;
  for (let round = 0; round < rounds; round++) {
    try {
      calls += 1;
      const options = signal ? { abortSignal: signal() } : undefined;
      const res =
        action === 'shutdown'
          ? await cyclecloud.shutdownNodes(cluster, request, options)
          : action === 'start'
            ? await cyclecloud.startNodes(cluster, request, options)
            : await cyclecloud.terminateNodes(cluster, request, options);
      return {
        operationId: res.operationId,
        nodes: res.nodes.map((n) => ({ id: n.id, name: n.name, status: n.status === 'Error' ? 'Error' : action === 'start' ? 'Starting' : 'Terminating', error: n.error ?? null })),
        calls,
      };
    } catch (error) {
      if (!isCycleCloudError(error)) throw error;
      if (error.code === 'CC_CONFLICT') {
        // Sent before: the tracker follows it by its request id. Without names to follow, the nodes
        // CycleCloud holds under the id are what was terminated.
        if (order.follow) return { operationId: null, nodes: [], calls };
        const found = await sentTerminateNodes(cyclecloud, order);
        return {
          operationId: null,
          nodes: found.nodes.map((n) => ({ id: n.NodeId ?? null, name: n.Name, status: n.Status ?? (action === 'start' ? 'Starting' : 'Terminating'), error: null })),
          calls: calls + found.calls,
        };
      }
      if (!isAmbiguous(error)) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

/** The nodes of a terminate CycleCloud already has: by its request id, else its targets in the full list. */
async function sentTerminateNodes(cyclecloud: CycleCloudApi, order: TerminateOrder): Promise<{ nodes: NodeRecord[]; calls: number }> {
  const target: TerminateTarget = order.target;
  const ids = new Set(target.ids ?? []);
  const names = new Set(target.names ?? []);
  const hosts = new Set(target.hostnames ?? []);
  const ips = new Set(target.ip_addresses ?? []);
  const found = await operationNodes(cyclecloud, order.cluster, { operationId: null, cycleCloudRequestId: order.cycleCloudRequestId });
  if (!found.unknownById) return { nodes: found.nodes, calls: found.calls };
  const all = (await cyclecloud.listNodes(order.cluster)).nodes;
  return {
    nodes: all.filter(
      (n) =>
        (n.NodeId !== undefined && ids.has(n.NodeId)) ||
        names.has(n.Name) ||
        (n.Hostname !== undefined && hosts.has(n.Hostname)) ||
        (n.PrivateIp !== undefined && ips.has(n.PrivateIp)),
    ),
    calls: found.calls + 1,
  };
}

/**
 * Sends the order ({@link sendTerminate}) and starts its tracker on the nodes it follows: the names
 * of `order.follow` that CycleCloud did not refuse (with their NodeIds: a name may already be
 * another node's by the time it is followed), else every node CycleCloud took.
 */
export async function terminateAndTrack(
  cyclecloud: CycleCloudApi,
  start: (t: TrackStart) => Promise<void>,
  order: TerminateOrder,
  signal?: () => AbortSignal,
): Promise<TerminateResult> {
  const result = await sendTerminate(cyclecloud, order, signal);
  const refused = new Set(result.nodes.filter((n) => n.status === 'Error').map((n) => n.name));
  const names = order.follow ? order.follow.names.filter((n) => !refused.has(n)) : result.nodes.filter((n) => n.status !== 'Error').map((n) => n.name);
  // By NodeId, always where known: once CycleCloud removes a terminated node it gives the name to the
  // next node it creates, and following the name would then wait for that new node to go.
  const taken = Object.fromEntries(result.nodes.flatMap((n) => (n.status !== 'Error' && n.id ? [[n.name, n.id] as const] : [])));
  const known = { ...taken, ...(order.follow?.nodeIds ?? {}) };
  const nodeIds = Object.fromEntries(Object.entries(known).filter(([name]) => names.includes(name)));
  await start({
    cluster: order.cluster,
    operationId: result.operationId,
    cycleCloudRequestId: order.cycleCloudRequestId,
    requestId: order.requestId,
    action: order.action === 'start' ? 'start' : 'terminate',
    generation: order.generation,
    sets: [],
    nodeNames: names,
    ...(Object.keys(nodeIds).length > 0 ? { nodeIds } : {}),
  });
  return result;
}
