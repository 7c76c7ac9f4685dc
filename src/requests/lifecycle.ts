/**
 * Leases, releases and max lifetimes carried out (issue 20; the rules are in `src/ledger/lease.ts`).
 *
 * How a due lease is found, durably: a leased request has a row in the lease index (the state
 * table, partition `lease`, one row per request with the time it is due). Two things look at it:
 * a `{ $scaler: "lease" }` message on the scale queue, sent invisible until the lease is due (on
 * acceptance; a reminder that finds the lease renewed sends the next, so one chain per request),
 * which makes expiry act within seconds; and the snapshot timer,
 * which reads every row due by now on each tick, so a lost message or a crash delays the release by
 * at most one snapshot period. The ledger entry is the truth: a row is only a reminder, and a row
 * whose request was renewed (or no longer exists) is corrected (or dropped) when read.
 *
 * A release is carried out in rounds (`ReleaseRound`): the live nodes are written as an intent,
 * then shut down under a CycleCloud requestId derived from the round (each node by its nodearray's
 * ShutdownPolicy), then marked sent. A run that dies between intent and send leaves the intent;
 * the next run sends it again under the same id, and CycleCloud answers 409 if it already had it:
 * no node is shut down twice. The shutdown is tracked like any terminate and its nodes' states are
 * applied to the request's own record, so the record never shows a shut-down node as Ready.
 */
import type { TableClient } from '@azure/data-tables';
import { isCycleCloudError, isPermanent } from '../cyclecloud/errors.ts';
import type { Logger } from '../platform/log.ts';
import type { StorageNames } from '../platform/names.ts';
import { statusOf, type Storage } from '../platform/storage.ts';
import type { LedgerEntry, RequestLedgerApi } from '../ledger/types.ts';
import type { ReleaseReason } from '../ledger/schemas.ts';
import type { TrackerApi } from '../tracking/types.ts';
import { addReleaseRound, dueReason, LeaseRefused, lifecycleDueAtMs, markReleased, releaseRoundSent, releaseSettled, releaseTargets, renewLease } from '../ledger/lease.ts';
import type { QueueSender } from './context.ts';
import { summaryOf, type RequestSummary } from '../ledger/listing.ts';

export { LeaseRefused } from '../ledger/lease.ts';

const LEASE_PK = 'lease';
/** Azure caps a message's initial invisibility at 7 days; a lease due later gets its reminder re-sent then. */
const MAX_DELAY_MS = 7 * 86_400_000 - 60_000;
/** After a look that could not finish (CycleCloud throttled or down, storage failing), the next one comes this soon. */
const RETRY_MS = 15_000;

/** The queue's reminder that a request's lease or lifetime may be due. Internal, like `continue`. */
export interface LeaseMessage {
  $scaler: 'lease';
  requestId: string;
  /** When the entry was due as this reminder was sent (for the logs: the entry decides). */
  dueAtMs?: number;
}

export function isLeaseMessage(m: unknown): m is LeaseMessage {
  return !!m && typeof m === 'object' && (m as { $scaler?: unknown }).$scaler === 'lease' && typeof (m as { requestId?: unknown }).requestId === 'string';
}

interface LeaseRow {
  partitionKey?: string;
  rowKey?: string;
  cluster?: string;
  dueAtMs?: number;
}

/** The lease index: which requests have a lease or lifetime that will need acting on, and when. */
export class LeaseIndex {
  readonly #table: TableClient;

  constructor(storage: Pick<Storage, 'table'>, names: Pick<StorageNames, 'stateTable'>) {
    this.#table = storage.table(names.stateTable);
  }

  /** Remembers (or moves) the time `requestId` is due; `dueAtMs` now = look at it on the next sweep. */
  async note(requestId: string, cluster: string, dueAtMs: number): Promise<void> {
    await this.#table.upsertEntity({ partitionKey: LEASE_PK, rowKey: requestId, cluster, dueAtMs }, 'Replace');
  }

  async drop(requestId: string): Promise<void> {
    try {
      await this.#table.deleteEntity(LEASE_PK, requestId);
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }

  /** Rows due by `nowMs` (all rows when absent), soonest first. */
  async due(nowMs?: number): Promise<{ requestId: string; cluster: string; dueAtMs: number }[]> {
    const filter = nowMs === undefined ? `PartitionKey eq '${LEASE_PK}'` : `PartitionKey eq '${LEASE_PK}' and dueAtMs le ${Math.floor(nowMs)}`;
    const out: { requestId: string; cluster: string; dueAtMs: number }[] = [];
    try {
      for await (const row of this.#table.listEntities<LeaseRow>({ queryOptions: { filter } })) {
        if (row.rowKey) out.push({ requestId: row.rowKey, cluster: String(row.cluster ?? ''), dueAtMs: Number(row.dueAtMs ?? 0) });
      }
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
    return out.sort((a, b) => a.dueAtMs - b.dueAtMs);
  }
}

export interface LifecycleDeps {
  ledger: Pick<RequestLedgerApi, 'get' | 'update'>;
  tracker: Pick<TrackerApi, 'terminate'>;
  leases: LeaseIndex;
  /** The scale queue (for the `lease` reminders). */
  queue: QueueSender;
  now: () => number;
  logger: Logger;
}

/** After acceptance or a renew: the index row and the reminder for when the entry is next due. No-op without a lease or lifetime. */
export async function scheduleLifecycle(deps: LifecycleDeps, entry: LedgerEntry): Promise<void> {
  const dueAtMs = lifecycleDueAtMs(entry);
  if (dueAtMs === null) return;
  const requestId = entry.record.requestId;
  await deps.leases.note(requestId, entry.record.cluster, dueAtMs);
  const delayMs = Math.min(MAX_DELAY_MS, Math.max(0, dueAtMs - deps.now()));
  await deps.queue.send({ $scaler: 'lease', requestId, dueAtMs } satisfies LeaseMessage, { visibilityDelayMs: delayMs });
}

/**
 * A `lease` reminder came due: enforce the entry. One that finds it not yet due (renewed since, or
 * its delay was capped at 7 days) sends the next reminder for the current due time: one chain of
 * reminders per request, however often it is renewed.
 */
export async function onLeaseReminder(deps: LifecycleDeps, message: LeaseMessage): Promise<LedgerEntry | null> {
  let entry: LedgerEntry | null;
  try {
    entry = await enforce(deps, message.requestId);
  } catch (error) {
    // Not a failure of the message: the look is due again soon (never the host's few quick retries
    // and then the poison queue, which would leave the release to the next snapshot tick).
    await remindSoon(deps, message.requestId, error);
    return null;
  }
  if (entry && !entry.record.released) await scheduleLifecycle(deps, entry);
  return entry;
}

/** A reminder in {@link RETRY_MS}, or when CycleCloud's Retry-After says, after a look that could not finish. */
async function remindSoon(deps: LifecycleDeps, requestId: string, error: unknown): Promise<void> {
  const retryAfterMs = isCycleCloudError(error) ? (error.retryAfterMs ?? 0) : 0;
  deps.logger.warn('lease look did not finish; looking again soon', { requestId, error });
  await deps.queue.send({ $scaler: 'lease', requestId } satisfies LeaseMessage, { visibilityDelayMs: Math.max(RETRY_MS, retryAfterMs) });
}

export type RenewOutcome = { ok: true; entry: LedgerEntry } | { ok: false; status: 404 | 409; message: string };

/** `POST /api/scale-requests/{id}/renew` and the queue's `renew`: moves the lease, or says why not. */
export async function renew(deps: LifecycleDeps, requestId: string, seconds: number | undefined): Promise<RenewOutcome> {
  const known = await deps.ledger.get(requestId);
  if (!known?.request) return { ok: false, status: 404, message: `no request with requestId "${requestId}"` };
  let entry: LedgerEntry;
  let before: number | null = null;
  try {
    entry = await deps.ledger.update(
      requestId,
      (e) => {
        before = lifecycleDueAtMs(e);
        return renewLease(e, seconds, deps.now());
      },
      known,
    );
  } catch (error) {
    if (error instanceof LeaseRefused) return { ok: false, status: 409, message: error.message };
    throw error;
  }
  const after = lifecycleDueAtMs(entry);
  // Later than before (the usual renew): the reminder already on its way finds it not due and sends
  // the next. Sooner (a shorter renew): that one would come late, so a reminder of its own.
  if (after !== null && before !== null && after < before) await scheduleLifecycle(deps, entry);
  else if (after !== null) await deps.leases.note(requestId, entry.record.cluster, after);
  deps.logger.info('lease renewed', { requestId, expiresAt: entry.record.lease?.expiresAt });
  return { ok: true, entry };
}

export type ReleaseOutcome = { ok: true; entry: LedgerEntry } | { ok: false; status: 404 | 409; message: string };

/**
 * `POST /api/scale-requests/{id}/release` and the queue's `release`: marks the request released
 * (the first release stands; repeating it answers the same) and shuts its nodes down now. A failure
 * after the mark is left to the reminder and the sweep.
 */
export async function release(deps: LifecycleDeps, requestId: string): Promise<ReleaseOutcome> {
  const known = await deps.ledger.get(requestId);
  if (!known?.request) return { ok: false, status: 404, message: `no request with requestId "${requestId}"` };
  if (known.record.kind !== 'scale') return { ok: false, status: 409, message: `request "${requestId}" is a ${known.record.kind} request; only scale requests can be released` };
  // The reminder first: if this run dies after the mark, the index still brings it back.
  await deps.leases.note(requestId, known.record.cluster, deps.now());
  const entry = await deps.ledger.update(requestId, (e) => markReleased(e, 'released', deps.now()), known);
  try {
    return { ok: true, entry: (await enforce(deps, requestId, entry)) ?? entry };
  } catch (error) {
    // Marked: the shutdown follows on a reminder (and the sweep, should that be lost).
    await remindSoon(deps, requestId, error).catch(() => undefined);
    return { ok: true, entry };
  }
}

/**
 * Looks at one request: releases it if its lease or lifetime has passed, carries out a release
 * (the next round of shutdowns), and keeps the index row in step. Idempotent; safe to run anywhere
 * at any time (the reminder, the sweep, a release, two instances at once).
 */
export async function enforce(deps: LifecycleDeps, requestId: string, known?: LedgerEntry): Promise<LedgerEntry | null> {
  let entry = known ?? (await deps.ledger.get(requestId));
  if (!entry?.request || entry.record.kind !== 'scale') {
    await deps.leases.drop(requestId);
    return entry ?? null;
  }
  const log = deps.logger.child({ requestId, cluster: entry.record.cluster });
  const reason = dueReason(entry, deps.now());
  if (reason) {
    // Decided again on the stored entry: a renew written since wins.
    entry = await deps.ledger.update(
      requestId,
      (e) => {
        const why: ReleaseReason | null = dueReason(e, deps.now());
        return why ? markReleased(e, why, deps.now()) : e;
      },
      entry,
    );
    if (entry.record.released) log.info('request released', { reason: entry.record.released.reason });
  }
  if (!entry.record.released) {
    const dueAtMs = lifecycleDueAtMs(entry);
    if (dueAtMs === null) await deps.leases.drop(requestId);
    else await deps.leases.note(requestId, entry.record.cluster, dueAtMs);
    return entry;
  }
  entry = await carryOut(deps, entry, log);
  if (releaseSettled(entry)) await deps.leases.drop(requestId);
  else await deps.leases.note(requestId, entry.record.cluster, deps.now());
  return entry;
}

/** Sends what a released entry still needs: rounds left as intents, then a round for live nodes no round covers. */
async function carryOut(deps: LifecycleDeps, start: LedgerEntry, log: Logger): Promise<LedgerEntry> {
  let entry = start;
  const requestId = entry.record.requestId;
  for (const round of entry.releases ?? []) {
    // Sent again at once: under the same CycleCloud requestId a second send is a 409, never a second shutdown.
    if (round.state === 'intent') entry = await send(deps, entry, round.round, log);
  }
  if (releaseTargets(entry).length === 0) return entry;
  let added: number | null = null;
  entry = await deps.ledger.update(
    requestId,
    (e) => {
      added = null;
      const targets = releaseTargets(e);
      if (targets.length === 0) return e;
      const next = addReleaseRound(e, targets, deps.now());
      added = next.round.round;
      return next.entry;
    },
    entry,
  );
  if (added !== null) entry = await send(deps, entry, added, log);
  return entry;
}

async function send(deps: LifecycleDeps, entry: LedgerEntry, number: number, log: Logger): Promise<LedgerEntry> {
  const round = entry.releases?.find((r) => r.round === number);
  if (!round) return entry;
  const allIds = round.names.every((n) => round.nodeIds[n] !== undefined);
  let note: string | null = null;
  try {
    await deps.tracker.terminate({
      cluster: entry.record.cluster,
      requestId: entry.record.requestId,
      cycleCloudRequestId: round.cycleCloudRequestId,
      generation: round.round,
      action: 'shutdown',
      target: allIds ? { ids: round.names.map((n) => round.nodeIds[n]!) } : { names: round.names },
      follow: { names: round.names, nodeIds: round.nodeIds },
    });
    log.info('released nodes shut down', { cycleCloudRequestId: round.cycleCloudRequestId, nodes: round.names.length });
  } catch (error) {
    // Unknown outcome, throttled or unavailable: the intent stays and is sent again under the same
    // id. Only a refusal (4xx) is final for this round (its nodes are gone, or CycleCloud will not
    // shut them down): said in the record.
    if (!isCycleCloudError(error) || !isPermanent(error)) throw error;
    note = `CycleCloud refused the shutdown of ${round.names.length} released node(s): ${error.message}`;
    log.warn('release shutdown refused', { cycleCloudRequestId: round.cycleCloudRequestId, code: error.code });
  }
  return deps.ledger.update(
    entry.record.requestId,
    (e) => {
      const x = releaseRoundSent(e, number, deps.now());
      if (note) x.record.reason = x.record.reason ? `${x.record.reason}; ${note}` : note;
      return x;
    },
    entry,
  );
}

/** What health says of leases: how many requests are tracked, how many are due, and their nodes still alive. */
export interface LeaseView {
  /** Requests with a lease, lifetime or unfinished release. */
  tracked: number;
  /** Of those, due by now (expired, past their lifetime, or released with a shutdown still to finish). */
  due: number;
  /** Live nodes of the due ones (read for the first 50): nodes that should be shutting down and are not yet. */
  nodesPastLease: number;
}

export async function leaseView(deps: Pick<LifecycleDeps, 'ledger' | 'leases'>, nowMs: number): Promise<LeaseView> {
  const rows = await deps.leases.due();
  const due = rows.filter((r) => r.dueAtMs <= nowMs);
  const entries = await Promise.all(due.slice(0, 50).map((r) => deps.ledger.get(r.requestId)));
  let nodesPastLease = 0;
  for (const e of entries) {
    if (!e) continue;
    // Not yet released (the sweep has not acted): every live node is past its lease.
    nodesPastLease += e.record.released ? releaseTargets(e).length : releaseTargets(markReleased(e, 'lease expired', nowMs)).length;
  }
  return { tracked: rows.length, due: due.length, nodesPastLease };
}

/** The leased requests' list rows, the soonest due first (at most `limit`). */
export async function soonestLeases(deps: Pick<LifecycleDeps, 'ledger' | 'leases'>, limit: number): Promise<RequestSummary[]> {
  const rows = (await deps.leases.due()).slice(0, limit);
  const entries = await Promise.all(rows.map((r) => deps.ledger.get(r.requestId)));
  return entries.flatMap((e) => (e ? [summaryOf(e)] : []));
}

/** The snapshot timer's pass: every request whose lease, lifetime or release is due by `nowMs`. */
export async function sweepLeases(deps: LifecycleDeps, nowMs: number): Promise<{ looked: number; released: number; failed: number }> {
  const due = await deps.leases.due(nowMs);
  let released = 0;
  let failed = 0;
  for (let i = 0; i < due.length; i += 8) {
    await Promise.all(
      due.slice(i, i + 8).map(async (row) => {
        try {
          const entry = await enforce(deps, row.requestId);
          if (entry?.record.released) released += 1;
        } catch (error) {
          failed += 1;
          await remindSoon(deps, row.requestId, error).catch(() => undefined);
        }
      }),
    );
  }
  return { looked: due.length, released, failed };
}
