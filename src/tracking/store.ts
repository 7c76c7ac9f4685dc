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
import type { Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import { packJson, unpackJson } from '../platform/table-json.ts';
import { ScalerError } from '../platform/errors.ts';
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
  /** Table ETag of the row this was read from (absent before the first write). */
  etag?: string;
}

export class TrackerStoreError extends ScalerError<'TRACKER_CONFLICT'> {
  override name = 'TrackerStoreError';
  constructor(message: string, options?: ErrorOptions) {
    super('TRACKER_CONFLICT', message, options);
  }
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
    final: r.state.final && r.outbox.length === 0,
    nextPollAtMs: BigInt(Math.trunc(r.state.nextPollAtMs)),
    leaseUntilMs: BigInt(Math.trunc(r.leaseUntilMs)),
    wakeToken: r.wakeToken,
  };
  return {
    partitionKey: key(r.state.cluster),
    rowKey: key(r.state.cycleCloudRequestId),
    ...columns,
    ...packJson({ state: r.state, outbox: r.outbox, wakeToken: r.wakeToken, leaseUntilMs: r.leaseUntilMs }),
  };
}

function fromEntity(e: TableEntityResult<Record<string, unknown>>): TrackerRecord {
  const doc = unpackJson<Omit<TrackerRecord, 'etag'>>(e);
  return { ...doc, ...(e.etag ? { etag: e.etag } : {}) };
}

const status = (e: unknown): number | undefined => (e as { statusCode?: number } | null)?.statusCode;

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
    try {
      const res = await this.#client().createEntity(toEntity(record));
      return { created: true, record: { ...record, ...(res.etag ? { etag: res.etag } : {}) } };
    } catch (e) {
      if (status(e) !== 409) throw e;
      const existing = await this.get(record.state.cluster, record.state.cycleCloudRequestId);
      if (!existing) throw new TrackerStoreError(`tracker record ${record.state.cycleCloudRequestId} exists but cannot be read`, { cause: e });
      return { created: false, record: existing };
    }
  }

  /** The record of the operation created under `cycleCloudRequestId` in `cluster`. */
  async get(cluster: string, cycleCloudRequestId: string): Promise<TrackerRecord | null> {
    try {
      return fromEntity(await this.#client().getEntity<Record<string, unknown>>(key(cluster), key(cycleCloudRequestId)));
    } catch (e) {
      if (status(e) === 404) return null;
      throw e;
    }
  }

  /** Replaces the record if its ETag still matches; {@link TrackerStoreError} when another writer won. */
  async replace(record: TrackerRecord): Promise<TrackerRecord> {
    try {
      const res = await this.#client().updateEntity(toEntity(record), 'Replace', { etag: record.etag ?? '*' });
      return { ...record, ...(res.etag ? { etag: res.etag } : {}) };
    } catch (e) {
      if (status(e) === 412) throw new TrackerStoreError(`tracker record ${record.state.cycleCloudRequestId} changed concurrently`, { cause: e });
      throw e;
    }
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

  /**
   * Records the sweeper should wake: not final, not under a live lease, and either polled late by
   * more than `overdueMs` (a lost message) or left with an expired lease (a crash mid-poll).
   */
  async listOverdue(nowMs: number, overdueMs: number): Promise<TrackerRecord[]> {
    const now = Math.trunc(nowMs);
    const late = Math.trunc(nowMs - overdueMs);
    const filter = `final eq false and leaseUntilMs le ${now}L and (nextPollAtMs lt ${late}L or leaseUntilMs gt 0L)`;
    const out: TrackerRecord[] = [];
    for await (const e of this.#client().listEntities<Record<string, unknown>>({ queryOptions: { filter } })) out.push(fromEntity(e));
    return out;
  }

  /** Every record of a cluster that is not final (for reconciliation). */
  async listActive(cluster: string): Promise<TrackerRecord[]> {
    const filter = `PartitionKey eq '${key(cluster).replace(/'/g, "''")}' and final eq false`;
    const out: TrackerRecord[] = [];
    for await (const e of this.#client().listEntities<Record<string, unknown>>({ queryOptions: { filter } })) out.push(fromEntity(e));
    return out;
  }
}
