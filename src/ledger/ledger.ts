/**
 * The request ledger over Table storage: one row per caller requestId, claimed by one conditional
 * write and changed only by ETag-guarded read-modify-write.
 *
 * Layout of `names.requestsTable`:
 * - entry rows: PartitionKey = requestId, RowKey = `r`; the whole {@link LedgerEntry} packed with
 *   `packJson` (records can hold thousands of nodes), plus `state`, `cluster`, `kind` for humans.
 * - open index rows: PartitionKey = `~open~<encoded cluster>` (`~` cannot occur in a requestId),
 *   RowKey = requestId; one row per open entry, written at admission (before the entry row) and
 *   deleted when the entry becomes final: no other update touches it, so a request's claim and
 *   answer cost no index round trip. `listOpen` reads one small partition instead of scanning every
 *   record, double-checks each row against its entry and heals a row a crash left behind.
 *   (What in-flight creates hold is the cluster's reservation row's business, src/requests/reservations.ts.)
 * - tombstones: PartitionKey = requestId, RowKey = `x`: left by the retention sweep ({@link RequestLedger.expire})
 *   in place of a deleted final entry, so `GET` can say the request expired rather than never existed.
 * - the retention marker: PartitionKey = `~retention~`, RowKey = `marker`: the last listing day
 *   swept, and the few requests of swept days that were still open then (checked again each sweep).
 *   A sweep after the marker caught up is one point read.
 */
import type { TableClient } from '@azure/data-tables';
import { statusOf, type Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import { packJson, unpackJson } from '../platform/table-json.ts';
import { conditionalUpdate, readRow } from '../platform/conditional.ts';
import type { AdmitOptions, AdmitResult, LedgerEntry, RequestLedgerApi } from './types.ts';
import type { RequestMessage, RequestRecord } from './schemas.ts';
import { isFinal, newEntry, rejectedEntry } from './record.ts';
import { ScalerError } from '../platform/errors.ts';
import { LIST_PARTITION_PREFIX, listPartition, listRowKey, nextTransitions, RequestListing, summaryChanged } from './listing.ts';
import { recordMetric } from '../platform/metrics.ts';

export interface RequestLedgerOptions {
  storage: Storage;
  names: StorageNames;
  /** Epoch-ms clock. Default `Date.now`. */
  now?: () => number;
  /** Time budget of a new request (docs/api.md §2: REQUEST_DEADLINE_MINUTES). Default 30 minutes. */
  deadlineMs?: number;
  /** Attempts of a read-modify-write that keeps losing ETag races. Default 25. */
  maxUpdateAttempts?: number;
  /**
   * Called after an update makes an entry final (whoever made it so: tracker, deadline, rejection),
   * e.g. to queue its callback. Must not throw; it runs after the write has landed.
   */
  onFinal?: (entry: LedgerEntry) => Promise<void>;
}

/** Stable codes of ledger failures. */
export type LedgerErrorCode = 'LEDGER_NOT_FOUND' | 'LEDGER_CONTENTION';

export class LedgerError extends ScalerError<LedgerErrorCode> {
  override name = 'LedgerError' as const;
  constructor(code: LedgerErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

const ENTRY_ROW = 'r';
const TOMBSTONE_ROW = 'x';
/** The retention marker's keys, and the entries one sweep deletes at most (the rest wait for the next tick: a tick stays short). */
const [RETENTION_PK, RETENTION_RK, MAX_EXPIRED_PER_SWEEP] = ['~retention~', 'marker', 2_000] as const;
const DAY_MS = 86_400_000;
const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** What {@link RequestLedger.expire} did. */
export interface ExpireResult {
  /** Final entries deleted (a tombstone left for each). */
  expired: number;
  /** The last listing day fully swept (YYYY-MM-DD), or null when nothing is old enough yet. */
  throughDay: string | null;
}

/** What a tombstone says about a deleted request. */
export interface Tombstone {
  requestId: string;
  state: string;
  finalAt: string | null;
  expiredAt: string;
}
// `~` is encoded too so every index partition sorts between `~open~` and `~open~~`.
const indexPartition = (cluster: string): string => `~open~${encodeURIComponent(cluster).replace(/~/g, '%7E')}`;

function fromEntity(entity: Record<string, unknown> & { etag?: string }): LedgerEntry {
  const entry = unpackJson<LedgerEntry>(entity);
  if (entity.etag) entry.etag = String(entity.etag);
  return entry;
}

export class RequestLedger implements RequestLedgerApi {
  readonly #table: TableClient;
  readonly #now: () => number;
  readonly #deadlineMs: number;
  readonly #maxAttempts: number;
  readonly #onFinal: ((entry: LedgerEntry) => Promise<void>) | undefined;
  /** The request list (`listing.ts`): newest-first summaries by day, for the console and `GET /api/scale-requests`. */
  readonly listing: RequestListing;

  constructor(options: RequestLedgerOptions) {
    this.#table = options.storage.table(options.names.requestsTable);
    this.#now = options.now ?? Date.now;
    this.#deadlineMs = options.deadlineMs ?? 30 * 60_000;
    this.#maxAttempts = options.maxUpdateAttempts ?? 25;
    this.#onFinal = options.onFinal;
    this.listing = new RequestListing(this.#table, this.#now, (id) => this.get(id));
  }

  async get(requestId: string): Promise<LedgerEntry | null> {
    const entity = await readRow<Record<string, unknown>>(this.#table, requestId, ENTRY_ROW);
    return entity ? fromEntity(entity) : null;
  }

  /** The public record (docs/api.md §5), or null when unknown. */
  async getRecord(requestId: string): Promise<RequestRecord | null> {
    return (await this.get(requestId))?.record ?? null;
  }

  async admit(message: RequestMessage, nowMs: number, options: AdmitOptions = {}): Promise<AdmitResult> {
    const entry = newEntry(message, nowMs, this.#deadlineMs, options.lifecycleDefaults);
    if (options.traceparent) entry.traceparent = options.traceparent;
    if (options.readFirst) {
      const known = await this.get(message.requestId);
      if (known) return { outcome: known.bodyHash === entry.bodyHash ? 'duplicate' : 'conflict', entry: known };
    }
    const created = await this.#create(entry);
    if (created) return { outcome: 'created', entry: created };
    const existing = await this.get(message.requestId);
    if (!existing) throw new LedgerError('LEDGER_CONTENTION', `request ${message.requestId} exists but could not be read`);
    return { outcome: existing.bodyHash === entry.bodyHash ? 'duplicate' : 'conflict', entry: existing };
  }

  async reject(
    requestId: string,
    cluster: string | null,
    reason: string,
    errors: { path: string; message: string }[],
    nowMs: number,
    kind: 'scale' | 'terminate' = 'scale',
  ): Promise<LedgerEntry> {
    const created = await this.#create(rejectedEntry(requestId, cluster, reason, errors, nowMs, kind));
    if (created) {
      recordMetric('scaler.requests.completed', 1, { cluster: created.record.cluster, outcome: created.record.state });
      return created;
    }
    // A redelivery of the same bad message, or a bad message reusing a known id: the first record stands.
    const existing = await this.get(requestId);
    if (!existing) throw new LedgerError('LEDGER_CONTENTION', `request ${requestId} exists but could not be read`);
    return existing;
  }

  async update(requestId: string, mutate: (entry: LedgerEntry) => LedgerEntry | void, known?: LedgerEntry): Promise<LedgerEntry> {
    const fast = known?.etag ? await this.#updateKnown(requestId, mutate, known) : null;
    if (fast) return this.#afterWrite(fast.previous, fast.next);
    let previous: LedgerEntry | null = null;
    const {
      result: next,
      written,
      etag,
    } = await conditionalUpdate<Record<string, unknown>, LedgerEntry>({
      table: this.#table,
      partitionKey: requestId,
      rowKey: ENTRY_ROW,
      maxAttempts: this.#maxAttempts,
      decide: (entity) => {
        if (!entity) throw new LedgerError('LEDGER_NOT_FOUND', `request ${requestId} is not in the ledger`);
        const current = fromEntity(entity);
        previous = current;
        const before = JSON.stringify({ ...current, etag: undefined });
        const working = structuredClone(current);
        const changed = mutate(working) ?? working;
        delete changed.etag;
        if (JSON.stringify(changed) === before) return { result: current };
        changed.transitions = nextTransitions(current, changed, this.#now());
        return { write: this.#entity(changed), result: changed };
      },
      contention: (attempts, cause) => new LedgerError('LEDGER_CONTENTION', `request ${requestId}: gave up after ${attempts} concurrent updates`, { cause }),
    });
    if (!written || !previous) return next;
    if (etag) next.etag = etag;
    return this.#afterWrite(previous, next);
  }

  /**
   * The write of an update made on the entry the caller last saw, with its ETag and no read: it
   * lands only if nobody wrote since, which proves the entry was current. Anything else (the
   * mutation changes nothing or throws on it, or the ETag is old) returns null and the caller reads.
   */
  async #updateKnown(requestId: string, mutate: (entry: LedgerEntry) => LedgerEntry | void, known: LedgerEntry): Promise<{ previous: LedgerEntry; next: LedgerEntry } | null> {
    if (known.record.requestId !== requestId) return null;
    const current = structuredClone(known);
    const etag = current.etag!;
    delete current.etag;
    const before = JSON.stringify(current);
    let changed: LedgerEntry;
    try {
      const working = structuredClone(current);
      changed = mutate(working) ?? working;
    } catch {
      return null; // decided on what may be old: decide again on what is stored
    }
    delete changed.etag;
    if (JSON.stringify(changed) === before) return null;
    changed.transitions = nextTransitions(current, changed, this.#now());
    try {
      const res = await this.#table.updateEntity({ ...this.#entity(changed), partitionKey: requestId, rowKey: ENTRY_ROW }, 'Replace', { etag });
      if (res.etag) changed.etag = res.etag;
      return { previous: current, next: changed };
    } catch (error) {
      const status = statusOf(error);
      if (status === 412 || status === 404 || status === 409) return null;
      throw error;
    }
  }

  async #afterWrite(current: LedgerEntry, next: LedgerEntry): Promise<LedgerEntry> {
    // The open-index row says only that the entry is open: it goes when the entry becomes final, and
    // no other update (a claim, an answer, a node's status) touches it.
    if (isFinal(next) && !isFinal(current)) await this.#writeIndex(next);
    if (!isFinal(current) && isFinal(next)) {
      // After the conditional write that made it final: counted once, whichever instance wrote it.
      recordMetric('scaler.requests.completed', 1, { cluster: next.record.cluster, outcome: next.record.state });
      if (this.#onFinal) await this.#onFinal(next);
    }
    if (summaryChanged(current, next)) await this.#writeListing(next);
    return next;
  }

  async listOpen(cluster?: string): Promise<LedgerEntry[]> {
    const partitions = cluster === undefined ? await this.#indexPartitions() : [indexPartition(cluster)];
    const out: LedgerEntry[] = [];
    for (const pk of partitions) {
      const rows = (await this.#indexRowsOf(pk)).filter((row) => !row.final);
      // Point reads, a few at a time (as many as entries are open, never the history).
      for (let i = 0; i < rows.length; i += 16) {
        const entries = await Promise.all(rows.slice(i, i + 16).map((row) => this.get(row.requestId)));
        for (const entry of entries) {
          if (!entry) continue;
          if (isFinal(entry)) {
            await this.#writeIndex(entry); // heal a row left behind by a crash
            continue;
          }
          out.push(entry);
        }
      }
    }
    return out;
  }

  /** The tombstone of a request deleted by retention, or null (never known, or still kept). */
  async tombstone(requestId: string): Promise<Tombstone | null> {
    const row = await readRow<{ state?: string; finalAtMs?: number; expiredAtMs?: number }>(this.#table, requestId, TOMBSTONE_ROW);
    if (!row) return null;
    const finalAtMs = Number(row.finalAtMs ?? -1);
    return {
      requestId,
      state: String(row.state ?? ''),
      finalAt: finalAtMs >= 0 ? new Date(finalAtMs).toISOString() : null,
      expiredAt: new Date(Number(row.expiredAtMs ?? 0)).toISOString(),
    };
  }

  /**
   * Retention: deletes final entries created before `cutoffMs`'s day (with their list and index rows),
   * leaving a tombstone each; `onExpired` runs first for each (to delete what hangs off it, e.g.
   * tracker rows). Reads by key range only: the listing partitions of the days not swept yet (each
   * once), then the marker's late entries by point reads. Idempotent and safe to run twice at once.
   */
  async expire(cutoffMs: number, onExpired?: (entry: LedgerEntry) => Promise<void>): Promise<ExpireResult> {
    const lastDay = dayOf(Math.floor(cutoffMs / DAY_MS) * DAY_MS - DAY_MS); // the last whole day before the cutoff's
    const marker = await readRow<{ throughDay?: string; late?: string }>(this.#table, RETENTION_PK, RETENTION_RK);
    let throughDay = marker?.throughDay ?? null;
    const late = new Set<string>(JSON.parse(marker?.late ?? '[]') as string[]);
    if (throughDay !== null && throughDay >= lastDay && late.size === 0) return { expired: 0, throughDay };
    let expired = 0;
    const expireOne = async (requestId: string): Promise<'expired' | 'open' | 'gone'> => {
      const entry = await this.get(requestId);
      if (!entry) return 'gone';
      if (!isFinal(entry) || Date.parse(entry.record.createdAt) >= cutoffMs) return 'open';
      if (onExpired) await onExpired(entry);
      const finalAtMs = Date.parse(entry.record.updatedAt);
      await this.#table.upsertEntity(
        { partitionKey: requestId, rowKey: TOMBSTONE_ROW, state: entry.record.state, finalAtMs: Number.isNaN(finalAtMs) ? -1 : finalAtMs, expiredAtMs: this.#now() },
        'Replace',
      );
      const createdAtMs = Date.parse(entry.record.createdAt);
      const ignoreMissing = (e: unknown) => {
        if (statusOf(e) !== 404) throw e;
      };
      try {
        // Conditional: an entry changed since it was read is looked at again next time.
        await this.#table.deleteEntity(requestId, ENTRY_ROW, entry.etag ? { etag: entry.etag } : {});
      } catch (e) {
        if (statusOf(e) === 412) return 'open';
        ignoreMissing(e);
      }
      if (!Number.isNaN(createdAtMs)) await this.#table.deleteEntity(listPartition(createdAtMs), listRowKey(createdAtMs, requestId)).catch(ignoreMissing);
      if (entry.record.cluster) await this.#table.deleteEntity(indexPartition(entry.record.cluster), requestId).catch(ignoreMissing);
      expired += 1;
      return 'expired';
    };
    // Entries of swept days that were open then.
    for (const id of [...late]) {
      if (expired >= MAX_EXPIRED_PER_SWEEP) break;
      if ((await expireOne(id)) !== 'open') late.delete(id);
    }
    // Days not swept yet, oldest first: the first is found by one range read (no marker yet).
    let day = throughDay === null ? await this.#oldestListDay(lastDay) : dayOf(Date.parse(throughDay) + DAY_MS);
    while (day !== null && day <= lastDay && expired < MAX_EXPIRED_PER_SWEEP) {
      const ids: string[] = [];
      const filter = `PartitionKey eq '${LIST_PARTITION_PREFIX}${day}'`;
      for await (const row of this.#table.listEntities<{ requestId?: string }>({ queryOptions: { filter, select: ['requestId'] } })) if (row.requestId) ids.push(row.requestId);
      let done = true;
      for (let i = 0; i < ids.length; i += 16) {
        if (expired >= MAX_EXPIRED_PER_SWEEP) {
          done = false;
          break;
        }
        const batch = ids.slice(i, i + 16);
        const outcomes = await Promise.all(batch.map((id) => expireOne(id)));
        outcomes.forEach((o, k) => {
          if (o === 'open') late.add(batch[k]!);
        });
      }
      if (!done) break;
      throughDay = day;
      day = dayOf(Date.parse(day) + DAY_MS);
    }
    if (throughDay === null) throughDay = lastDay; // nothing was ever listed before the cutoff
    await this.#table.upsertEntity({ partitionKey: RETENTION_PK, rowKey: RETENTION_RK, throughDay, late: JSON.stringify([...late]) }, 'Replace');
    return { expired, throughDay };
  }

  /** The oldest listing day up to `lastDay`, or null. */
  async #oldestListDay(lastDay: string): Promise<string | null> {
    const filter = `PartitionKey ge '${LIST_PARTITION_PREFIX}' and PartitionKey le '${LIST_PARTITION_PREFIX}${lastDay}'`;
    const pages = this.#table.listEntities({ queryOptions: { filter, select: ['PartitionKey'] } }).byPage({ maxPageSize: 1 });
    for await (const page of pages) {
      const pk = page[0]?.partitionKey;
      return pk ? pk.slice(LIST_PARTITION_PREFIX.length) : null;
    }
    return null;
  }

  #entity(entry: LedgerEntry): Record<string, unknown> & { partitionKey: string; rowKey: string } {
    const { etag: _etag, ...body } = entry;
    return {
      partitionKey: entry.record.requestId,
      rowKey: ENTRY_ROW,
      state: entry.record.state,
      cluster: entry.record.cluster,
      kind: entry.record.kind,
      ...packJson(body),
    };
  }

  /** Creates the row; null when the requestId already exists. */
  async #create(entry: LedgerEntry): Promise<LedgerEntry | null> {
    entry.transitions ??= nextTransitions(null, entry, this.#now());
    // The open-index row first (only if absent).
    // Written after the entry, a worker dying in between left an open entry no sweeper could list:
    // a request admitted over HTTP whose enqueue never happened then waited for ever.
    await this.#createIndexRow(entry);
    try {
      const res = await this.#table.createEntity(this.#entity(entry));
      if (res.etag) entry.etag = res.etag;
    } catch (error) {
      if (statusOf(error) === 409) return null;
      throw error;
    }
    // An open entry's row was just created with what it says (nothing asked yet, not final); only
    // an entry born final (rejected) still needs its row written.
    if (isFinal(entry)) await this.#writeIndex(entry);
    await this.#writeListing(entry);
    return entry;
  }

  /**
   * The list row is a view for operators, derived from the entry: a failure to write it must not fail
   * the write that already landed (nor keep a caller retrying it); the next change rewrites it.
   */
  async #writeListing(entry: LedgerEntry): Promise<void> {
    await this.listing.write(entry).catch(() => undefined);
  }

  /** The index row of a new open entry, unless one exists (a row without entry is skipped by the readers). */
  async #createIndexRow(entry: LedgerEntry): Promise<void> {
    if (!entry.record.cluster || entry.request === null || isFinal(entry)) return;
    try {
      await this.#table.createEntity({
        partitionKey: indexPartition(entry.record.cluster),
        rowKey: entry.record.requestId,
        final: false,
      });
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
  }

  /** An open entry's index row exists (written at admission); a final entry's goes. */
  async #writeIndex(entry: LedgerEntry): Promise<void> {
    if (!entry.record.cluster || entry.request === null) return; // rejected-unparsed: never open
    const pk = indexPartition(entry.record.cluster);
    if (isFinal(entry)) {
      await this.#table.deleteEntity(pk, entry.record.requestId).catch((e: unknown) => {
        if (statusOf(e) !== 404) throw e;
      });
      return;
    }
    await this.#table.upsertEntity({ partitionKey: pk, rowKey: entry.record.requestId, final: false }, 'Replace');
  }

  async #indexRowsOf(pk: string): Promise<{ requestId: string; final: boolean }[]> {
    const out: { requestId: string; final: boolean }[] = [];
    const filter = `PartitionKey eq '${pk.replace(/'/g, "''")}'`;
    for await (const row of this.#table.listEntities<{ final?: boolean }>({ queryOptions: { filter } })) {
      if (row.final) {
        // A row an older version kept for its final entry: nobody reads it.
        await this.#table.deleteEntity(pk, row.rowKey!).catch(() => undefined);
        continue;
      }
      out.push({ requestId: row.rowKey!, final: false });
    }
    return out;
  }

  async #indexPartitions(): Promise<string[]> {
    const seen = new Set<string>();
    // Index partitions sort after every requestId partition (`~` is above the id alphabet).
    for await (const row of this.#table.listEntities({ queryOptions: { filter: "PartitionKey ge '~open~' and PartitionKey lt '~open~~'", select: ['PartitionKey'] } })) {
      if (row.partitionKey) seen.add(row.partitionKey);
    }
    return [...seen];
  }
}
