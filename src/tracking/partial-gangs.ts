/**
 * Partial gangs: a colocated set CycleCloud filled only in part (`added` < `count` in the create's
 * answer) is useless to an MPI job. When the tracker takes a create over (at start, and again on
 * each poll until it is done: both are idempotent) it records the compensation (the set's nodes no
 * longer count, its group is never reused, the demand is closed once its re-plans are used up),
 * remembers the capacity failure, and terminates the partial set under `<requestId>-g<n>-c`
 * through the one terminate path. The submission then re-plans the demand under a new generation.
 *
 * CycleCloud's list may lag the create: a compensation may know fewer nodes than `added`. The
 * group is written off all the same, and members that show up later are terminated by the poll
 * (the machine's `written-off` action).
 */
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import { operationNodes } from '../cyclecloud/lookup.ts';
import type { NodeRecord } from '../cyclecloud/schemas.ts';
import type { Logger } from '../platform/log.ts';
import { addOperation, closeDemand, compensationRequestId, markCompensated, nodeKey } from '../ledger/record.ts';
import type { LedgerEntry, RequestLedgerApi, SubmissionAttempt } from '../ledger/types.ts';
import { compareNodeNames } from './machine.ts';
import type { TerminateOrder, TerminateResult, TrackStart } from './types.ts';

/** Records a bucket's capacity failure (the planner's capacity memory). */
export interface CapacityFailureSink {
  recordFailure(failure: { cluster: string; nodearray: string; machineType: string; reason: string; failedAtMs?: number }, nowMs: number): Promise<unknown> | unknown;
}

export interface PartialGangDeps {
  cyclecloud: CycleCloudApi;
  ledger: RequestLedgerApi;
  capacity?: CapacityFailureSink | undefined;
  now: () => number;
  /** Re-plans of one colocated demand (`MAX_REPLAN_ATTEMPTS`): one more partial group closes it. */
  maxReplanAttempts: number;
  /** The one terminate path (`terminateAndTrack`). */
  terminate: (order: TerminateOrder) => Promise<TerminateResult>;
}

type Create = Pick<TrackStart, 'cluster' | 'requestId' | 'operationId' | 'cycleCloudRequestId' | 'generation' | 'sets'>;

/** True when a colocated set of this create was filled only in part. */
export const hasPartialGang = (t: Pick<TrackStart, 'sets'>): boolean => t.sets.some((s) => s.colocated && s.placementGroupId !== null && s.added < s.count);

/**
 * Compensates every partial colocated set of the create `t` not yet compensated, then sends the
 * compensation terminate if it was not sent yet. Returns the ledger entry after it (null when the
 * request has no entry or nothing was partial).
 */
export async function compensatePartialGangs(deps: PartialGangDeps, t: Create, log: Logger): Promise<LedgerEntry | null> {
  if (!hasPartialGang(t)) return null;
  let entry = await deps.ledger.get(t.requestId);
  if (!entry) return null;
  // The sets as recorded with CycleCloud's answer (its message says why a set fell short).
  const attempt = entry.attempts.find((a) => a.cycleCloudRequestId === t.cycleCloudRequestId && a.state === 'accepted');
  const sets: SubmissionAttempt['sets'] = attempt?.sets ?? t.sets.map((s) => ({ ...s, message: null }));
  const ccTerminate = compensationRequestId(t.requestId, t.generation);
  for (const [i, s] of sets.entries()) {
    const added = s.added ?? 0;
    if (!t.sets[i]?.colocated || s.placementGroupId === null || added >= s.count) continue;
    const demandIndex = s.demands[0]?.index ?? 0;
    if ((entry.compensations ?? []).some((c) => c.placementGroupId === s.placementGroupId && c.demandIndex === demandIndex)) continue;
    let names: string[] = [];
    let keys: string[] = [];
    if (added > 0) {
      const list = await operationNodes(deps.cyclecloud, t.cluster, { operationId: t.operationId, cycleCloudRequestId: t.cycleCloudRequestId, tagged: true });
      const gang = gangNodes(list.nodes, sets, s);
      names = gang.map((n) => n.Name);
      keys = gang.map((n) => nodeKey({ name: n.Name, id: n.NodeId ?? null }));
    }
    const said = s.message ? `: ${s.message}` : '';
    const reason = `CycleCloud added only ${added} of ${s.count} nodes to placement group ${s.placementGroupId} (${s.nodearray}/${s.machineType})${said}; ${added > 0 ? 'the partial set is terminated and ' : ''}the demand is re-planned`;
    await deps.capacity?.recordFailure(
      {
        cluster: t.cluster,
        nodearray: s.nodearray,
        machineType: s.machineType,
        reason: `placement group ${s.placementGroupId}: CycleCloud added ${added} of ${s.count}${said}`,
        failedAtMs: deps.now(),
      },
      deps.now(),
    );
    entry = await deps.ledger.update(t.requestId, (e) => {
      let x = markCompensated(e, { demandIndex, placementGroupId: s.placementGroupId, nodeNames: names, nodeKeys: keys, reason, added }, deps.now());
      const comp = x.compensations!.find((c) => c.placementGroupId === s.placementGroupId && c.demandIndex === demandIndex)!;
      comp.cycleCloudRequestId = ccTerminate;
      if (names.length === 0) comp.operationId = null;
      const count = x.compensations!.filter((c) => c.demandIndex === demandIndex).length;
      if (count > deps.maxReplanAttempts) x = closeDemand(x, demandIndex, `gave up after ${count} partial placement groups: ${reason}`, deps.now());
      return x;
    });
    log.warn('partial colocated set compensated', { placementGroupId: s.placementGroupId, added, count: s.count, nodes: names.length });
  }
  return sendCompensation(deps, t, entry, ccTerminate);
}

/** Sends this create's compensation terminate (one per generation) unless it was sent, and records it. */
async function sendCompensation(deps: PartialGangDeps, t: Create, entry: LedgerEntry, cc: string): Promise<LedgerEntry> {
  const pending = (entry.compensations ?? []).filter((c) => c.cycleCloudRequestId === cc && c.operationId === undefined && c.nodeNames.length > 0);
  if (pending.length === 0) return entry;
  const names: string[] = [];
  const nodeIds: Record<string, string> = {};
  for (const c of pending) {
    c.nodeNames.forEach((name, i) => {
      names.push(name);
      const key = c.nodeKeys?.[i];
      if (key?.startsWith('id:')) nodeIds[name] = key.slice(3);
    });
  }
  // By NodeId wherever known: a name may already be another node's (CycleCloud reuses them).
  const ids = names.flatMap((n) => (nodeIds[n] ? [nodeIds[n]!] : []));
  const byName = names.filter((n) => !nodeIds[n]);
  const { operationId } = await deps.terminate({
    cluster: t.cluster,
    requestId: t.requestId,
    cycleCloudRequestId: cc,
    generation: t.generation,
    action: 'terminate',
    target: { ...(ids.length > 0 ? { ids } : {}), ...(byName.length > 0 ? { names: byName } : {}) },
    follow: { names, nodeIds },
  });
  return deps.ledger.update(t.requestId, (e) => {
    // A repeat that met CycleCloud's 409 knows no operation id: it does not erase the one recorded.
    for (const c of e.compensations ?? []) if (c.cycleCloudRequestId === cc && (c.operationId === undefined || operationId !== null)) c.operationId = operationId;
    addOperation(e.record, { operationId, cycleCloudRequestId: cc, state: 'pending', action: 'terminate' });
  });
}

/**
 * The nodes of set `s` among an operation's nodes. Colocated demands may share a placement group,
 * one set each: the group's nodes are shared out in name order, earlier sets first, each taking its
 * `added` (CycleCloud numbers a create's nodes set by set; the machine attributes them the same
 * way), so compensating one partial gang never touches another demand's nodes in the group.
 */
function gangNodes(nodes: NodeRecord[], sets: SubmissionAttempt['sets'], s: SubmissionAttempt['sets'][number]): NodeRecord[] {
  const sameGroup = (x: SubmissionAttempt['sets'][number]): boolean =>
    x.placementGroupId === s.placementGroupId && x.nodearray === s.nodearray && x.machineType.toLowerCase() === s.machineType.toLowerCase();
  const inGroup = nodes.filter((n) => (n.PlacementGroupId ?? null) === s.placementGroupId);
  const peers = sets.filter(sameGroup);
  if (peers.length <= 1) return inGroup;
  const sorted = inGroup
    .filter((n) => (!n.Template || n.Template === s.nodearray) && (!n.MachineType || n.MachineType.toLowerCase() === s.machineType.toLowerCase()))
    .sort((x, y) => compareNodeNames(x.Name, y.Name));
  let skip = 0;
  for (const x of peers) {
    if (x === s) break;
    skip += Math.max(0, x.added ?? 0);
  }
  return sorted.slice(skip, skip + Math.max(0, s.added ?? 0));
}
