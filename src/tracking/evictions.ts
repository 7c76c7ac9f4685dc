/**
 * Spot evictions (issue 20 part 5), found in each snapshot. What CycleCloud reports for an evicted
 * spot VM is UNCONFIRMED (docs/cyclecloud.md): the scaler takes a node it created that is `Failed`
 * with a StatusMessage speaking of eviction or preemption as evicted, whatever its request's state.
 *
 * For each such node its request's record says `Evicted` (the node no longer counts: a demand's
 * `created`/`ready` drop), the node is terminated (it holds the slot, and its VM is gone anyway),
 * and the callback fires with the changed record. With `replaceEvicted: true` on its demand the
 * request is opened again (a fresh deadline) and the pipeline asked to plan the missing nodes: a
 * new generation, so a replacement is created exactly once like any create. A colocated demand is
 * not topped up inside its old placement group: the gang is broken, so the rest of it is
 * compensated and the demand re-planned whole (the tracker's broken-gang rule).
 */
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import type { Logger } from '../platform/log.ts';
import { silentLogger } from '../platform/log.ts';
import type { LedgerEntry, RequestLedgerApi } from '../ledger/types.ts';
import { applyNodeStates, derivedRequestId, isFinal, markCompensated, nodeKey, outcomeOf } from '../ledger/record.ts';
import type { SnapshotNodeRef } from '../snapshots/model.ts';
import { sendTerminate } from './terminate.ts';
import type { Tracker } from './tracker.ts';

/** The status a record shows for an evicted node. */
export const EVICTED_STATUS = 'Evicted';

/** A StatusMessage that says the VM was evicted (Azure Spot) or preempted. */
export function isEvictionMessage(message: string | null | undefined): boolean {
  return /\b(evict|preempt)/i.test(message ?? '');
}

export interface EvictionDeps {
  ledger: Pick<RequestLedgerApi, 'get' | 'update'>;
  cyclecloud: CycleCloudApi;
  tracker?: Pick<Tracker, 'sendContinue'>;
  logger?: Logger;
  /** `REQUEST_DEADLINE_MINUTES`: a request opened again to replace evicted nodes gets this long. */
  deadlineMs: number;
  /** The entries already read this tick. */
  open?: readonly LedgerEntry[];
  /** Queues the callback of a record that changed while final (the sender skips records without a callbackUrl). */
  onFinal?: (entry: LedgerEntry) => Promise<void>;
}

export interface EvictionResult {
  evicted: number;
  replaced: number;
}

export async function reconcileEvictions(deps: EvictionDeps, cluster: string, nodes: SnapshotNodeRef[], nowMs: number): Promise<EvictionResult> {
  const log = (deps.logger ?? silentLogger).child({ cluster });
  const result: EvictionResult = { evicted: 0, replaced: 0 };
  const evicted = nodes.filter((n) => n.mark && n.status === 'Failed' && isEvictionMessage(n.statusMessage));
  if (evicted.length === 0) return result;
  const byRequest = new Map<string, SnapshotNodeRef[]>();
  for (const n of evicted) byRequest.set(n.mark!.requestId, [...(byRequest.get(n.mark!.requestId) ?? []), n]);
  const open = new Map((deps.open ?? []).map((e) => [e.record.requestId, e]));

  for (const [requestId, mine] of byRequest) {
    const known = open.get(requestId) ?? (await deps.ledger.get(requestId));
    if (known?.request?.kind !== 'scale') continue;
    let fresh: SnapshotNodeRef[] = [];
    let replace = false;
    const entry = await deps.ledger.update(
      requestId,
      (e) => {
        fresh = mine.filter((n) => {
          const ref = e.record.nodes.findLast((r) => (r.id && n.id ? r.id === n.id : r.name === n.name));
          const outcome = ref ? outcomeOf(e, ref) : undefined;
          return outcome === 'pending' || outcome === 'ready';
        });
        if (fresh.length === 0) return e;
        const demandOf = (n: SnapshotNodeRef) => e.record.nodes.findLast((r) => (r.id && n.id ? r.id === n.id : r.name === n.name))?.demand ?? null;
        let x = applyNodeStates(
          e,
          '',
          fresh.map((n) => ({ name: n.name, id: n.id, status: EVICTED_STATUS, demand: demandOf(n), outcome: 'failed' as const })),
          nowMs,
        );
        const spec = e.request?.kind === 'scale' ? e.request.demands : [];
        const replaced = [...new Set(fresh.map(demandOf))].filter((d): d is number => d !== null && spec[d]?.replaceEvicted === true);
        replace = replaced.length > 0 && !e.record.released;
        for (const d of replaced) {
          // A gang with an evicted member is broken: its other members are written off so the
          // demand is re-planned whole, never topped up across two groups.
          if (spec[d]?.colocated || spec[d]?.placementGroupId !== undefined) {
            const gang = x.record.nodes.filter((r) => r.demand === d && ['pending', 'ready'].includes(outcomeOf(x, r) ?? ''));
            const group = x.record.demands[d]?.placementGroupId ?? null;
            x = markCompensated(
              x,
              { demandIndex: d, placementGroupId: group, nodeNames: gang.map((r) => r.name), nodeKeys: gang.map((r) => nodeKey(r)), reason: 'a member of the gang was evicted' },
              nowMs,
            );
          }
        }
        const note = `${fresh.length} node(s) evicted: ${fresh.map((n) => n.name).join(', ')}${replace ? '; replacing them' : ''}`;
        if (replace && isFinal(x)) {
          x.record.state = 'submitted';
          x.deadlineAtMs = nowMs + deps.deadlineMs;
          x.nextAttemptAtMs = null;
        }
        x.record.reason = note;
        x.record.updatedAt = new Date(nowMs).toISOString();
        return x;
      },
      known,
    );
    if (fresh.length === 0) continue;
    result.evicted += fresh.length;
    log.warn('spot nodes evicted', { requestId, nodes: fresh.map((n) => n.name), replace });
    // The evicted VMs hold their slots until terminated; gang members written off go with them.
    const gone = new Set(fresh.map((n) => nodeKey(n)));
    const writtenOff = (entry.compensations ?? []).flatMap((c) => c.nodeKeys ?? []).filter((k) => !gone.has(k));
    const targets = [
      ...fresh.map((n) => ({ name: n.name, id: n.id })),
      ...entry.record.nodes.filter((r) => writtenOff.includes(nodeKey(r))).map((r) => ({ name: r.name, id: r.id })),
    ];
    try {
      await sendTerminate(deps.cyclecloud, {
        cluster,
        requestId,
        // One terminate per eviction found (keyed by its first node): sent again on a retry, 409 then.
        cycleCloudRequestId: derivedRequestId(requestId, `-ev-${fresh[0]!.id ?? fresh[0]!.name}`),
        generation: 0,
        action: 'terminate',
        target: targets.every((t) => t.id) ? { ids: targets.map((t) => t.id!) } : { names: targets.map((t) => t.name) },
        follow: { names: targets.map((t) => t.name) },
      });
    } catch (error) {
      log.warn('could not terminate evicted nodes; the orphan sweep takes them later', { requestId, error });
    }
    if (replace) {
      result.replaced += fresh.length;
      await deps.tracker?.sendContinue(requestId, 'evicted nodes to replace');
    } else if (isFinal(entry)) {
      await deps.onFinal?.(entry);
    }
  }
  return result;
}
