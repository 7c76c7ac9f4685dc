/**
 * The cost meter (docs/api.md, Cost), run by the snapshot timer after each capture.
 *
 * Per cluster, one partition of the state table (`meter~<cluster>`) holds:
 * - `live`: the scaler's nodes the last sweep saw running (by node key: requestId, tenant, how they
 *   are priced) and when that sweep's snapshot was taken;
 * - `day~<YYYY-MM-DD>`: per tenant, the cost and node-seconds accrued that UTC day.
 * Each sweep accrues the time since the last one to every node running in both snapshots, half of it
 * to a node seen in only one (it started or stopped in between), split at UTC midnight, and writes
 * `live` and the touched days in ONE entity-group transaction conditional on `live`'s ETag: two
 * instances, or a sweep repeated after a crash, never accrue one interval twice. A gap longer than
 * {@link MAX_GAP_MS} (the timer was down) accrues only that much.
 *
 * A request's own cost comes from its record's node times (src/ledger/cost.ts), not from here. This
 * sweep also gives those times their end for final requests whose nodes went without the scaler (a
 * shutdown from CycleCloud's UI, a lease's shutdown, Azure): a node that was running at the last
 * sweep and is no longer is marked gone in its record, as of this snapshot.
 */
import type { TableClient, TableEntityResult, TransactionAction } from '@azure/data-tables';
import type { Prices } from '../platform/prices.ts';
import { round4 } from '../ledger/cost.ts';
import { applyNodeStates, isFinal, nodeKey, outcomeOf, type NodeStateUpdate } from '../ledger/record.ts';
import type { RequestLedgerApi } from '../ledger/types.ts';
import type { Logger } from '../platform/log.ts';
import { packJson, unpackJson } from '../platform/table-json.ts';
import { statusOf } from '../platform/storage.ts';
import { DEFAULT_TENANT } from '../platform/tenants.ts';
import type { ClusterSnapshot, SnapshotNodeRef } from '../snapshots/model.ts';
import { toTableKey } from '../snapshots/table-keys.ts';

/** The longest interval one sweep accrues: past it the timer was down and what ran is unknown. */
export const MAX_GAP_MS = 15 * 60_000;
/** CycleCloud statuses of a node that no longer runs (no VM billed for compute). */
const STOPPED = new Set(['terminated', 'off', 'deallocated', 'failed']);
const DAY_MS = 86_400_000;

interface LiveNode {
  r: string;
  t: string;
  m: string | null;
  g: string | null;
  s?: 1;
}
interface LiveDoc {
  sweptAtMs: number;
  nodes: Record<string, LiveNode>;
}

export interface MeterDeps {
  table: () => TableClient;
  ledger: Pick<RequestLedgerApi, 'update'>;
  prices: () => Prices | undefined;
  logger: Logger;
}

export interface MeterResult {
  /** Node-seconds accrued by this sweep. */
  nodeSeconds: number;
  /** Nodes of final requests marked gone. */
  ended: number;
}

export const meterPartition = (cluster: string): string => `meter~${toTableKey(cluster)}`;
const dayKey = (ms: number): string => `day~${new Date(ms).toISOString().slice(0, 10)}`;

/** Running nodes the scaler created, by node key. */
function running(nodes: readonly SnapshotNodeRef[]): Map<string, LiveNode> {
  const out = new Map<string, LiveNode>();
  for (const n of nodes) {
    if (!n.mark || STOPPED.has(n.status.toLowerCase())) continue;
    out.set(nodeKey(n), { r: n.mark.requestId, t: n.mark.tenant ?? DEFAULT_TENANT, m: n.machineType ?? null, g: n.region ?? null, ...(n.spot ? { s: 1 as const } : {}) });
  }
  return out;
}

/** `[fromMs, toMs)` split at UTC midnights: `[dayKey, ms]` pairs. */
function byDay(fromMs: number, toMs: number): [string, number][] {
  const out: [string, number][] = [];
  for (let a = fromMs; a < toMs; ) {
    const b = Math.min(toMs, (Math.floor(a / DAY_MS) + 1) * DAY_MS);
    out.push([dayKey(a), b - a]);
    a = b;
  }
  return out;
}

/** One sweep of `cluster` against a snapshot that carries its node list. */
export async function meterSweep(deps: MeterDeps, cluster: string, snapshot: ClusterSnapshot): Promise<MeterResult> {
  const result: MeterResult = { nodeSeconds: 0, ended: 0 };
  if (!snapshot.nodes) return result;
  const table = deps.table();
  const pk = meterPartition(cluster);
  const atMs = Date.parse(snapshot.takenAt);
  const now = running(snapshot.nodes);
  for (let attempt = 0; attempt < 3; attempt++) {
    let stored: TableEntityResult<Record<string, unknown>> | null = null;
    try {
      stored = await table.getEntity<Record<string, unknown>>(pk, 'live');
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
    const before: LiveDoc | null = stored ? unpackJson<LiveDoc>(stored) : null;
    // A snapshot no newer than the last sweep's: nothing to accrue (another instance was first).
    if (before && atMs <= before.sweptAtMs) return result;

    // What ran between the two snapshots, per day and tenant.
    const add = new Map<string, Map<string, { cost: number; seconds: number }>>();
    const prices = deps.prices();
    const accrue = (n: LiveNode, fromMs: number, toMs: number) => {
      const hourly = prices?.hourly({ machineType: n.m, region: n.g, spot: n.s === 1 }) ?? 0;
      for (const [day, ms] of byDay(fromMs, toMs)) {
        const tenants = add.get(day) ?? new Map<string, { cost: number; seconds: number }>();
        add.set(day, tenants);
        const t = tenants.get(n.t) ?? { cost: 0, seconds: 0 };
        t.cost += (hourly * ms) / 3_600_000;
        t.seconds += ms / 1000;
        tenants.set(n.t, t);
        result.nodeSeconds += ms / 1000;
      }
    };
    const gone: [string, LiveNode][] = [];
    if (before) {
      const gap = Math.min(atMs - before.sweptAtMs, MAX_GAP_MS);
      const from = atMs - gap;
      const mid = atMs - gap / 2;
      for (const [key, n] of now) accrue(n, before.nodes[key] ? from : mid, atMs);
      for (const [key, n] of Object.entries(before.nodes)) {
        if (now.has(key)) continue;
        accrue(n, from, mid);
        gone.push([key, n]);
      }
    }

    // Ends first (idempotent): a crash after them and before the write below repeats them harmlessly.
    result.ended = await endNodes(deps, gone, snapshot.nodes, atMs);

    const days = [...add.keys()];
    const actions: TransactionAction[] = [];
    for (const day of days) {
      let row: TableEntityResult<Record<string, unknown>> | null = null;
      try {
        row = await table.getEntity<Record<string, unknown>>(pk, day);
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
      const costs = JSON.parse(String(row?.costs ?? '{}')) as Record<string, number>;
      const seconds = JSON.parse(String(row?.seconds ?? '{}')) as Record<string, number>;
      for (const [tenant, x] of add.get(day)!) {
        costs[tenant] = (costs[tenant] ?? 0) + x.cost;
        seconds[tenant] = (seconds[tenant] ?? 0) + x.seconds;
      }
      const entity = { partitionKey: pk, rowKey: day, costs: JSON.stringify(costs), seconds: JSON.stringify(seconds), currency: prices?.currency ?? '' };
      actions.push(row ? ['update', entity, 'Replace', { etag: row.etag }] : ['create', entity]);
    }
    const live = { partitionKey: pk, rowKey: 'live', ...packJson({ sweptAtMs: atMs, nodes: Object.fromEntries(now) } satisfies LiveDoc) };
    actions.push(stored ? ['update', live, 'Replace', { etag: stored.etag }] : ['create', live]);
    try {
      await table.submitTransaction(actions);
      return result;
    } catch (error) {
      const status = statusOf(error);
      // Another sweep wrote first: read again (it may have covered this interval).
      if (status !== 409 && status !== 412) throw error;
      result.nodeSeconds = 0;
    }
  }
  deps.logger.warn('cost meter: gave up after 3 concurrent sweeps', { cluster });
  return result;
}

/** Marks nodes that stopped running since the last sweep as gone in their final request's record. */
async function endNodes(deps: MeterDeps, gone: [string, LiveNode][], nodes: readonly SnapshotNodeRef[], atMs: number): Promise<number> {
  const byRequest = new Map<string, string[]>();
  for (const [key, n] of gone) byRequest.set(n.r, [...(byRequest.get(n.r) ?? []), key]);
  let ended = 0;
  for (const [requestId, keys] of byRequest) {
    try {
      await deps.ledger.update(requestId, (e) => {
        // An open request's nodes are the reconciliation's and the tracker's to judge.
        if (!isFinal(e)) return e;
        const updates: NodeStateUpdate[] = [];
        for (const key of keys) {
          const ref = e.record.nodes.find((r) => nodeKey(r) === key);
          if (!ref || ref.endedAt) continue;
          const outcome = outcomeOf(e, ref);
          if (outcome !== 'ready' && outcome !== 'pending') continue;
          const seen = nodes.find((n) => nodeKey(n) === key);
          updates.push({ name: ref.name, id: ref.id, status: seen?.status ?? 'Terminated', demand: null, outcome: 'gone' });
        }
        ended += updates.length;
        return updates.length > 0 ? applyNodeStates(e, '', updates, atMs) : e;
      });
    } catch (error) {
      deps.logger.warn('cost meter: could not record the end of nodes in their request', { requestId, error });
    }
  }
  return ended;
}

/** Per tenant: cost accrued today and this month (UTC) on `cluster`, from the meter's day rows. */
export async function meterSpend(table: TableClient, cluster: string, nowMs: number): Promise<Map<string, { today: number; month: number }>> {
  const pk = meterPartition(cluster);
  const today = dayKey(nowMs);
  const month = today.slice(0, 'day~YYYY-MM'.length);
  const out = new Map<string, { today: number; month: number }>();
  const rows = table.listEntities<Record<string, unknown>>({
    queryOptions: { filter: `PartitionKey eq '${pk.replaceAll("'", "''")}' and RowKey ge '${month}-01' and RowKey le '${month}-31'` },
  });
  for await (const row of rows) {
    const costs = JSON.parse(String(row.costs ?? '{}')) as Record<string, number>;
    for (const [tenant, cost] of Object.entries(costs)) {
      const t = out.get(tenant) ?? { today: 0, month: 0 };
      t.month += cost;
      if (row.rowKey === today) t.today += cost;
      out.set(tenant, t);
    }
  }
  for (const t of out.values()) {
    t.today = round4(t.today);
    t.month = round4(t.month);
  }
  return out;
}
