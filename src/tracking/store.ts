/**
 * Tracker records in Table storage: one entity per operation (PartitionKey cluster, RowKey the
 * operation's CycleCloud requestId: always known, while CycleCloud's operation id is lost with a
 * lost answer and cannot be looked up, reference §3.10), the machine state packed as gzip JSON (thousands of nodes fit), and a few plain columns the
 * sweeper filters on. Every write is conditional on the ETag read (STYLE: claimed by one
 * conditional write), so two instances can never both believe they hold the poll lease.
 *
 * Wake-up discipline (why both a lease and a token):
 * - `leaseUntilMs` — the poll lease. A wake-up takes it with an ETag write before calling
 *   CycleCloud; a second wake-up for the same operation finds it held (or loses the ETag race) and
 *   drops out, so at most one poll per operation is in flight.
 * - `wakeToken` — names the one live chain of wake-up messages. Each scheduled message carries the
 *   token written with it; a message with an older token (a chain the sweeper replaced, a late
 *   duplicate) is dropped, so a lost-and-found message can never start a second polling loop.
 */
import type { TableEntity, TableEntityResult } from '@azure/data-tables';
import { statusOf, type Storage } from '../platform/storage.ts';
import { ContentionError, readRow } from '../platform/conditional.ts';
import type { StorageNames } from '../platform/names.ts';
import { packJson, unpackJson } from '../platform/table-json.ts';
import type { TrackerAction, TrackerState } from './machine.ts';

/** An action decided by a poll, kept until performed so a crash between steps repeats it. */
export type OutboxItem = Exclude<TrackerAction, { type: 'schedule' }> | { type: 'ledger' };

export interface TrackerRecord {
  state: TrackerState;
  /** Actions decided but not yet confirmed done. */
  outbox: OutboxItem[];
  wakeToken: string;
  /** 0 when no poll holds the lease. */
  leaseUntilMs: number;
  /**
   * When the node list of the last poll was asked for (epoch ms): a later poll never uses a list
   * older than this (a cluster list shared between polls must not take the operation back in time).
   */
  observedAtMs?: number;
  /** Table ETag of the row this was read from (absent before the first write). */
  etag?: string;
}

export class TrackerStoreError extends ContentionError<'TRACKER_CONFLICT'> {
  override name = 'TrackerStoreError';
}

interface Columns {
  requestId: string;
  action: string;
  final: boolean;
  nextPollAtMs: bigint;
  leaseUntilMs: bigint;
  wakeToken: string;
}

const key = (s: string): string => encodeURIComponent(s);

function toEntity(r: TrackerRecord): TableEntity<Record<string, unknown>> {
  const columns: Columns = {
    requestId: r.state.requestId,
    action: r.state.action,
    final: isFinalRecord(r),
    nextPollAtMs: BigInt(Math.trunc(r.state.nextPollAtMs)),
    leaseUntilMs: BigInt(Math.trunc(r.leaseUntilMs)),
    wakeToken: r.wakeToken,
  };
  return {
    partitionKey: key(r.state.cluster),
    rowKey: key(r.state.cycleCloudRequestId),
    ...columns,
    ...packJson({
      state: r.state,
      outbox: r.outbox,
      wakeToken: r.wakeToken,
      leaseUntilMs: r.leaseUntilMs,
      ...(r.observedAtMs !== undefined ? { observedAtMs: r.observedAtMs } : {}),
    }),
  };
}

function fromEntity(e: TableEntityResult<Record<string, unknown>>): TrackerRecord {
  const doc = unpackJson<Omit<TrackerRecord, 'etag'>>(e);
  return { ...doc, ...(e.etag ? { etag: e.etag } : {}) };
}

/**
 * The active index: one small row per operation that is not final, in a partition of its own
 * (`$` never starts an encoded cluster name), RowKey `<cluster>|<cycleCloudRequestId>` (both
 * encoded, so `|` separates them and one cluster's rows are one key range). The sweeper and
 * {@link TrackerStore.listActive} read this partition, never the whole table: final operations
 * (history) are never read by a periodic query. Written before a record is created (a crash in
 * between leaves a row without a record, which the sweeper drops once it is old) and removed after
 * the write that makes it final (a crash in between leaves a row of a final record: healed alike).
 */
const ACTIVE_PK = '$active';
const activeKey = (cluster: string, cc: string): string => `${key(cluster)}|${key(cc)}`;
/** An index row whose record does not exist is dropped only after this long (its create may be under way). */
const ORPHAN_INDEX_AFTER_MS = 10 * 60_000;
const isFinalRecord = (r: TrackerRecord): boolean => r.state.final && r.outbox.length === 0;

export interface TrackerStoreOptions {
  storage: Storage;
  names: StorageNames;
}

export class TrackerStore {
  readonly #storage: Storage;
  readonly #table: string;

  constructor(options: TrackerStoreOptions) {
    this.#storage = options.storage;
    this.#table = options.names.operationsTable;
  }

  #client() {
    return this.#storage.table(this.#table);
  }

  /** Creates the table if missing. */
  async ensure(): Promise<void> {
    await this.#storage.ensure({ tables: [this.#table] });
  }

  /** Writes a new record; when one exists for the operation, returns it instead (`created: false`). */
  async create(record: TrackerRecord): Promise<{ created: boolean; record: TrackerRecord }> {
    if (!isFinalRecord(record)) await this.#index(record.state.cluster, record.state.cycleCloudRequestId, true);
    try {
      const res = await this.#client().createEntity(toEntity(record));
      return { created: true, record: { ...record, ...(res.etag ? { etag: res.etag } : {}) } };
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
      const existing = await this.get(record.state.cluster, record.state.cycleCloudRequestId);
      if (!existing) throw new TrackerStoreError('TRACKER_CONFLICT', `tracker record ${record.state.cycleCloudRequestId} exists but cannot be read`, { cause: e });
      if (isFinalRecord(existing)) await this.#index(record.state.cluster, record.state.cycleCloudRequestId, false);
      return { created: false, record: existing };
    }
  }

  async #index(cluster: string, cc: string, active: boolean): Promise<void> {
    if (active) {
      await this.#client().upsertEntity({ partitionKey: ACTIVE_PK, rowKey: activeKey(cluster, cc), cluster, cycleCloudRequestId: cc, atMs: Date.now() }, 'Replace');
      return;
    }
    await this.#client()
      .deleteEntity(ACTIVE_PK, activeKey(cluster, cc))
      .catch((e: unknown) => {
        if (statusOf(e) !== 404) throw e;
      });
  }

  /** The record of the operation created under `cycleCloudRequestId` in `cluster`. */
  async get(cluster: string, cycleCloudRequestId: string): Promise<TrackerRecord | null> {
    const entity = await readRow<Record<string, unknown>>(this.#client(), key(cluster), key(cycleCloudRequestId));
    return entity ? fromEntity(entity) : null;
  }

  /**
   * Replaces the record if its ETag still matches; {@link TrackerStoreError} when another writer won,
   * or when the record carries no ETag (never written: there is nothing to be conditional on).
   */
  async replace(record: TrackerRecord): Promise<TrackerRecord> {
    if (!record.etag) throw new TrackerStoreError('TRACKER_CONFLICT', `tracker record ${record.state.cycleCloudRequestId} has no ETag: read it before replacing it`);
    try {
      const res = await this.#client().updateEntity(toEntity(record), 'Replace', { etag: record.etag });
      if (isFinalRecord(record)) await this.#index(record.state.cluster, record.state.cycleCloudRequestId, false);
      return { ...record, ...(res.etag ? { etag: res.etag } : {}) };
    } catch (e) {
      if (statusOf(e) === 412 || statusOf(e) === 404)
        throw new TrackerStoreError('TRACKER_CONFLICT', `tracker record ${record.state.cycleCloudRequestId} changed concurrently`, { cause: e });
      throw e;
    }
  }

  /** Deletes the record of an operation and its index row (retention). */
  async delete(cluster: string, cycleCloudRequestId: string): Promise<void> {
    await this.#client()
      .deleteEntity(key(cluster), key(cycleCloudRequestId))
      .catch((e: unknown) => {
        if (statusOf(e) !== 404) throw e;
      });
    await this.#index(cluster, cycleCloudRequestId, false);
  }

  /**
   * Takes the poll lease until `nowMs + leaseMs` when no live lease is held. Returns the leased
   * record, or null when another poll holds it (or took it first).
   */
  async tryLease(record: TrackerRecord, nowMs: number, leaseMs: number): Promise<TrackerRecord | null> {
    if (record.leaseUntilMs > nowMs) return null;
    try {
      return await this.replace({ ...record, leaseUntilMs: nowMs + leaseMs });
    } catch (e) {
      if (e instanceof TrackerStoreError) return null;
      throw e;
    }
  }

  /** The active index rows (all, or one cluster's key range). */
  async #activeRows(cluster?: string): Promise<{ cluster: string; cycleCloudRequestId: string; atMs: number }[]> {
    const pk = `PartitionKey eq '${ACTIVE_PK}'`;
    const filter = cluster === undefined ? pk : `${pk} and RowKey ge '${key(cluster).replace(/'/g, "''")}|' and RowKey lt '${key(cluster).replace(/'/g, "''")}}'`;
    const out: { cluster: string; cycleCloudRequestId: string; atMs: number }[] = [];
    for await (const e of this.#client().listEntities<{ cluster?: string; cycleCloudRequestId?: string; atMs?: number }>({ queryOptions: { filter } })) {
      if (typeof e.cluster === 'string' && typeof e.cycleCloudRequestId === 'string')
        out.push({ cluster: e.cluster, cycleCloudRequestId: e.cycleCloudRequestId, atMs: Number(e.atMs ?? 0) });
    }
    return out;
  }

  /** The records the active index names (all, or one cluster's), healing rows left behind by a crash. */
  async #active(cluster: string | undefined, nowMs: number): Promise<TrackerRecord[]> {
    const rows = await this.#activeRows(cluster);
    const records = await Promise.all(
      rows.map(async (row) => {
        const rec = await this.get(row.cluster, row.cycleCloudRequestId);
        if (rec && !isFinalRecord(rec)) return rec;
        if (rec || nowMs - row.atMs > ORPHAN_INDEX_AFTER_MS) await this.#index(row.cluster, row.cycleCloudRequestId, false);
        return null;
      }),
    );
    return records.filter((r): r is TrackerRecord => r !== null);
  }

  /**
   * Records the sweeper should wake: not final, not under a live lease, and either polled late by
   * more than `overdueMs` (a lost message) or left with an expired lease (a crash mid-poll). Reads
   * the active index and the records it names (as many as operations in flight), never history.
   */
  async listOverdue(nowMs: number, overdueMs: number): Promise<TrackerRecord[]> {
    const active = await this.#active(undefined, nowMs);
    return active.filter((r) => r.leaseUntilMs <= nowMs && (r.state.nextPollAtMs < nowMs - overdueMs || r.leaseUntilMs > 0));
  }

  /** Every record of a cluster that is not final (for reconciliation). */
  async listActive(cluster: string): Promise<TrackerRecord[]> {
    return this.#active(cluster, Date.now());
  }
}
