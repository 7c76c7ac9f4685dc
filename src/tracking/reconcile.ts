/**
 * Reconciliation against a cluster snapshot (run by the snapshot timer after `captureSnapshots`):
 * the ledger's open requests are compared with the nodes CycleCloud actually has.
 *
 * - A node the ledger counts as pending or Ready that CycleCloud no longer lists (or lists under the
 *   same name with another NodeId: names are reused) is marked gone, and the request's trackers are
 *   woken; with none pending, the pipeline is asked to look again (the demand may need new nodes).
 * - A node the ledger still thinks pending that CycleCloud shows Failed is marked failed; if its
 *   StatusMessage says capacity, the bucket's failure goes into the capacity memory. Only such
 *   fresh transitions are recorded: a Failed node lingering in every snapshot must not keep
 *   re-arming the backoff.
 *
 * Requests with a create submitted less than `graceMs` before the snapshot are skipped: their
 * nodes may be newer than the snapshot.
 */
import type { Logger } from '../platform/log.ts';
import { silentLogger } from '../platform/log.ts';
import type { LedgerEntry, RequestLedgerApi } from '../ledger/types.ts';
import { applyNodeStates, outcomeOf, type NodeStateUpdate } from '../ledger/record.ts';
import { REMOVED_STATUS, createOutcome, isCapacityFailureMessage, type ObservedNode } from './machine.ts';
import type { CapacityFailureSink, Tracker } from './tracker.ts';

/** One node of the snapshot (`GET /clusters/{c}/status?nodes=true`), mapped from the wire record. */
export type SnapshotNode = Pick<ObservedNode, 'name' | 'id' | 'status' | 'statusMessage' | 'nodearray' | 'machineType'>;

export interface ReconcileDeps {
  ledger: RequestLedgerApi;
  /** Wakes trackers and nudges the pipeline. Optional: without it only the records change. */
  tracker?: Pick<Tracker, 'wake' | 'sendContinue'>;
  capacity?: CapacityFailureSink;
  logger?: Logger;
  /** Skip requests with a create this recent relative to the snapshot. Default 120 000. */
  graceMs?: number;
  /** The open entries, when the caller has read them already this tick (else read here). */
  open?: readonly LedgerEntry[];
}

export interface ReconcileResult {
  /** Open requests looked at. */
  requests: number;
  /** Requests whose record changed. */
  updated: number;
  gone: number;
  failed: number;
  /** Trackers woken. */
  woken: number;
  capacityFailures: number;
}

/** `nowMs` is when the snapshot was taken. */
export async function reconcileSnapshot(deps: ReconcileDeps, cluster: string, nodes: SnapshotNode[], nowMs: number): Promise<ReconcileResult> {
  const log = (deps.logger ?? silentLogger).child({ cluster });
  const graceMs = deps.graceMs ?? 120_000;
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const result: ReconcileResult = { requests: 0, updated: 0, gone: 0, failed: 0, woken: 0, capacityFailures: 0 };
  const entries = deps.open ?? (await deps.ledger.listOpen(cluster));
  const capacityRecorded = new Set<string>();

  for (const entry of entries) {
    if (entry.record.cluster !== cluster) continue;
    result.requests += 1;
    if (entry.attempts.some((a) => a.submittedAtMs > nowMs - graceMs)) continue;
    const changes = diff(entry, byName);
    if (changes.length === 0) continue;

    await deps.ledger.update(entry.record.requestId, (e) =>
      applyNodeStates(
        e,
        '',
        diff(e, byName).map((c) => c.update),
        nowMs,
      ),
    );
    result.updated += 1;
    for (const c of changes) {
      if (c.update.outcome === 'gone') result.gone += 1;
      else result.failed += 1;
    }
    log.warn('request record reconciled with CycleCloud', {
      requestId: entry.record.requestId,
      gone: changes
        .filter((c) => c.update.outcome === 'gone')
        .map((c) => c.update.name)
        .slice(0, 20),
      failed: changes
        .filter((c) => c.update.outcome === 'failed')
        .map((c) => c.update.name)
        .slice(0, 20),
    });

    for (const c of changes) {
      const n = c.node;
      if (c.update.outcome !== 'failed' || !n?.nodearray || !n.machineType || !isCapacityFailureMessage(n.statusMessage) || !deps.capacity) continue;
      const k = `${n.nodearray}|${n.machineType}`.toLowerCase();
      if (capacityRecorded.has(k)) continue;
      capacityRecorded.add(k);
      await deps.capacity.recordFailure({ cluster, nodearray: n.nodearray, machineType: n.machineType, reason: `node ${n.name} failed: ${n.statusMessage}` }, nowMs);
      result.capacityFailures += 1;
    }

    if (!deps.tracker) continue;
    const pending = entry.record.operations.filter((o) => o.state === 'pending');
    for (const op of pending) if (await deps.tracker.wake(cluster, op.cycleCloudRequestId)) result.woken += 1;
    if (pending.length === 0) await deps.tracker.sendContinue(entry.record.requestId, 'nodes lost outside the scaler (reconciliation)');
  }
  return result;
}

function diff(entry: LedgerEntry, present: Map<string, SnapshotNode>): { update: NodeStateUpdate; node: SnapshotNode | undefined }[] {
  const out: { update: NodeStateUpdate; node: SnapshotNode | undefined }[] = [];
  for (const ref of entry.record.nodes) {
    const outcome = outcomeOf(entry, ref);
    if (outcome !== 'pending' && outcome !== 'ready') continue;
    const node = present.get(ref.name);
    if (!node || (ref.id && node.id && ref.id !== node.id)) {
      out.push({ update: { name: ref.name, id: ref.id, status: REMOVED_STATUS, demand: null, outcome: 'gone' }, node: undefined });
    } else if (outcome === 'pending' && createOutcome(node.status) === 'failed') {
      out.push({ update: { name: ref.name, id: ref.id, status: node.status, demand: null, outcome: 'failed' }, node });
    }
  }
  return out;
}
