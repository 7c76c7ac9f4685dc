/**
 * No orphan node: every node the scaler creates carries its tags (src/cyclecloud/tags.ts), so each
 * snapshot can tell whose a live node is. A tagged node that no record accounts for — its create's
 * answer was lost and the request ended, a record's tracker finished before a lagging list showed
 * it, a terminate that never happened — is given {@link OrphanDeps.graceMs} (ORPHAN_GRACE_MINUTES,
 * default 10) to be claimed by the normal path, then:
 * - adopted into its record when the record is still open, the node came from one of its accepted
 *   creates and its demand still lacks nodes (the tracker and the pipeline are woken);
 * - otherwise terminated (CycleCloud requestId `ccscale-orphan-<NodeId>`: a repeat is a 409).
 * Each event is logged, counted (`orphanNodesAdopted`, `orphanNodesTerminated` in /api/health) and
 * emitted as a metric. When a node was first seen unaccounted is kept in `names.stateTable`
 * (PartitionKey `orphans~<cluster>`, one row per node): orphans are rare, so the rows are few.
 */
import type { TableClient } from '@azure/data-tables';
import type { CycleCloudApi } from '../cyclecloud/api.ts';
import type { Logger } from '../platform/log.ts';
import { silentLogger } from '../platform/log.ts';
import type { StorageNames } from '../platform/names.ts';
import { statusOf, type Storage } from '../platform/storage.ts';
import type { LedgerEntry, RequestLedgerApi } from '../ledger/types.ts';
import { applyNodeStates, compensatedKeys, isFinal, nodeKey, outcomeOf } from '../ledger/record.ts';
import type { SnapshotNodeRef } from '../snapshots/model.ts';
import { createOutcome } from './machine.ts';
import { sendTerminate } from './terminate.ts';
import type { Tracker } from './tracker.ts';
import { recordMetric } from '../platform/metrics.ts';

/**
 * Final entries that accounted for their nodes, kept per process for {@link FINAL_KEEP_MS}: a
 * fulfilled request's nodes live on, and without this every snapshot read each one's entry again
 * (1,000 reads a tick for 1,000 one-node requests). A final entry does not take nodes back, so the
 * worst a kept one does is notice a node it stopped accounting for that much later (it is re-read
 * as soon as it does not account for a node; the default grace period, 10 min, is longer).
 */
export const FINAL_KEEP_MS = 5 * 60_000;
const FINAL_KEEP_MAX = 20_000;

class FinalEntries {
  readonly #kept = new Map<string, { entry: LedgerEntry; atMs: number }>();
  get(requestId: string, nowMs: number): LedgerEntry | undefined {
    const k = this.#kept.get(requestId);
    if (!k) return undefined;
    if (nowMs - k.atMs > FINAL_KEEP_MS) {
      this.#kept.delete(requestId);
      return undefined;
    }
    return k.entry;
  }
  keep(entry: LedgerEntry, nowMs: number): void {
    if (this.#kept.has(entry.record.requestId)) return;
    if (this.#kept.size >= FINAL_KEEP_MAX) this.#kept.delete(this.#kept.keys().next().value!);
    this.#kept.set(entry.record.requestId, { entry, atMs: nowMs });
  }
  drop(requestId: string): void {
    this.#kept.delete(requestId);
  }
}
const finalCaches = new WeakMap<object, FinalEntries>();
function finalCacheOf(ledger: object): FinalEntries {
  let c = finalCaches.get(ledger);
  if (!c) finalCaches.set(ledger, (c = new FinalEntries()));
  return c;
}

/** Statuses of a node that holds no VM or is already going away: not an orphan to act on. */
const NOT_LIVE = new Set(['Terminating', 'Terminated', 'Off', 'Deallocated', 'Deallocating']);

export interface OrphanDeps {
  ledger: Pick<RequestLedgerApi, 'get' | 'update'>;
  cyclecloud: CycleCloudApi;
  storage: Storage;
  names: StorageNames;
  state: { increment(counter: string, by?: number): Promise<unknown> };
  tracker?: Pick<Tracker, 'wake' | 'sendContinue'>;
  logger?: Logger;
  /** ORPHAN_GRACE_MINUTES in ms. */
  graceMs: number;
  /** Open entries already read this tick: a node of one of them needs no ledger read. */
  open?: readonly LedgerEntry[];
}

export interface OrphanResult {
  /** Live tagged nodes no record accounts for (within or past the grace period). */
  unaccounted: number;
  adopted: number;
  terminated: number;
}

/** The CycleCloud requestId of the terminate of an orphan. */
export const orphanTerminateRequestId = (node: { id: string | null; name: string }): string => `ccscale-orphan-${node.id ?? node.name}`.slice(0, 128);

/** Whether the ledger entry accounts for this node (its record counts it, or its create is still being followed). */
export function accountsFor(entry: LedgerEntry | null, node: SnapshotNodeRef): boolean {
  if (!entry || !node.mark) return false;
  const key = nodeKey({ name: node.name, id: node.id });
  const compensated = compensatedKeys(entry);
  const ref = entry.record.nodes.findLast((r) => (r.id && node.id ? r.id === node.id : r.name === node.name));
  if (ref) {
    const outcome = outcomeOf(entry, ref);
    if ((outcome === 'pending' || outcome === 'ready') && !compensated.has(key) && !compensated.has(ref.name)) return true;
  }
  if (isFinal(entry)) return false;
  const attempt = entry.attempts.find((a) => a.cycleCloudRequestId === node.mark!.cycleCloudRequestId);
  if (!attempt) return false;
  // Still being resolved by the submission, or followed by a tracker that has not seen it yet.
  if (attempt.state === 'intent' || attempt.state === 'unknown') return true;
  if (attempt.state !== 'accepted' || ref) return false;
  return entry.record.operations.some((o) => o.cycleCloudRequestId === attempt.cycleCloudRequestId && o.state === 'pending');
}

/** The demand an unaccounted node of an accepted create can still join, or null. */
function adoptableDemand(entry: LedgerEntry, node: SnapshotNodeRef): number | null {
  if (isFinal(entry)) return null;
  const attempt = entry.attempts.find((a) => a.cycleCloudRequestId === node.mark?.cycleCloudRequestId && a.state === 'accepted');
  if (!attempt) return null;
  const lower = (s: string | null | undefined) => (s ?? '').toLowerCase();
  for (const set of attempt.sets) {
    if (node.nodearray && set.nodearray !== node.nodearray) continue;
    if (node.machineType && lower(set.machineType) !== lower(node.machineType)) continue;
    if ((node.placementGroupId ?? null) !== set.placementGroupId) continue;
    for (const part of set.demands) {
      const d = entry.record.demands[part.index];
      if (d && d.created < d.requested) return part.index;
    }
  }
  return null;
}

export async function reconcileOrphans(deps: OrphanDeps, cluster: string, nodes: SnapshotNodeRef[], nowMs: number): Promise<OrphanResult> {
  const log = (deps.logger ?? silentLogger).child({ cluster });
  const table = deps.storage.table(deps.names.stateTable);
  const pk = `orphans~${encodeURIComponent(cluster)}`;
  const firstSeen = await readFirstSeen(table, pk);
  const entries = new Map<string, LedgerEntry | null>((deps.open ?? []).map((e) => [e.record.requestId, e]));
  const finals = finalCacheOf(deps.ledger);
  const entryOf = async (requestId: string): Promise<LedgerEntry | null> => {
    if (!entries.has(requestId)) entries.set(requestId, finals.get(requestId, nowMs) ?? (await deps.ledger.get(requestId)));
    return entries.get(requestId)!;
  };
  const result: OrphanResult = { unaccounted: 0, adopted: 0, terminated: 0 };
  const stillOrphans = new Set<string>();

  for (const node of nodes) {
    if (!node.mark || NOT_LIVE.has(node.status)) continue;
    const entry = await entryOf(node.mark.requestId);
    if (accountsFor(entry, node)) {
      if (entry && isFinal(entry)) finals.keep(entry, nowMs);
      continue;
    }
    // Not accounted for: the next pass reads the entry again, whatever was kept of it.
    finals.drop(node.mark.requestId);
    const rk = encodeURIComponent(nodeKey({ name: node.name, id: node.id }));
    result.unaccounted += 1;
    const since = firstSeen.get(rk);
    if (since === undefined) {
      await table.upsertEntity({ partitionKey: pk, rowKey: rk, atMs: nowMs, name: node.name, requestId: node.mark.requestId }, 'Replace');
      stillOrphans.add(rk);
      log.warn('node with the scaler tags that no record accounts for; adopted or terminated after the grace period', {
        node: node.name,
        requestId: node.mark.requestId,
        cycleCloudRequestId: node.mark.cycleCloudRequestId,
        graceMs: deps.graceMs,
      });
      continue;
    }
    if (nowMs - since < deps.graceMs) {
      stillOrphans.add(rk);
      continue;
    }
    const demand = entry ? adoptableDemand(entry, node) : null;
    if (entry && demand !== null) {
      const outcome = createOutcome(node.status);
      await deps.ledger.update(entry.record.requestId, (e) =>
        applyNodeStates(e, node.mark!.cycleCloudRequestId, [{ name: node.name, id: node.id, status: node.status, demand, outcome }], nowMs),
      );
      entries.delete(entry.record.requestId);
      await deps.state.increment('orphanNodesAdopted');
      log.warn('orphan node adopted into its request', { node: node.name, requestId: entry.record.requestId, demand });
      log.metric('orphan_nodes_adopted', 1, { cluster });
      recordMetric('scaler.orphans', 1, { cluster, outcome: 'adopted' });
      result.adopted += 1;
      if (deps.tracker) {
        await deps.tracker.wake(cluster, node.mark.cycleCloudRequestId);
        await deps.tracker.sendContinue(entry.record.requestId, `orphan node ${node.name} adopted`);
      }
    } else {
      const sent = await terminateOrphan(deps, cluster, node, log);
      if (!sent) {
        stillOrphans.add(rk);
        continue;
      }
      await deps.state.increment('orphanNodesTerminated');
      log.warn('orphan node terminated', {
        node: node.name,
        requestId: node.mark.requestId,
        cycleCloudRequestId: node.mark.cycleCloudRequestId,
        recordState: entry?.record.state ?? 'none',
      });
      log.metric('orphan_nodes_terminated', 1, { cluster });
      recordMetric('scaler.orphans', 1, { cluster, outcome: 'terminated' });
      result.terminated += 1;
    }
    await table.deleteEntity(pk, rk).catch(() => undefined);
  }
  // Rows of nodes that were claimed, or are gone: nothing left to watch.
  for (const rk of firstSeen.keys()) if (!stillOrphans.has(rk)) await table.deleteEntity(pk, rk).catch(() => undefined);
  return result;
}

/**
 * Sent like every terminate (`terminate.ts`: a 409 means it was sent before), but not followed: no
 * record accounts for the node, so there is nothing to update when it is gone.
 */
async function terminateOrphan(deps: OrphanDeps, cluster: string, node: SnapshotNodeRef, log: Logger): Promise<boolean> {
  const target = node.id ? { ids: [node.id] } : { names: [node.name] };
  try {
    await sendTerminate(deps.cyclecloud, {
      cluster,
      requestId: node.mark?.requestId ?? '',
      cycleCloudRequestId: orphanTerminateRequestId(node),
      generation: 0,
      action: 'terminate',
      target,
      follow: { names: [node.name] },
    });
    return true;
  } catch (error) {
    log.warn('could not terminate an orphan node; the next snapshot tries again', { node: node.name, error });
    return false;
  }
}

async function readFirstSeen(table: TableClient, pk: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    for await (const row of table.listEntities<{ atMs?: number }>({ queryOptions: { filter: `PartitionKey eq '${pk.replace(/'/g, "''")}'` } })) {
      if (typeof row.atMs === 'number') out.set(row.rowKey!, row.atMs);
    }
  } catch (error) {
    if (statusOf(error) !== 404) throw error;
  }
  return out;
}
