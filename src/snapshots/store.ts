/**
 * The snapshot store: per cluster, in one Table partition,
 * - `latest`: the newest snapshot (with node list), replaced under ETag so an older capture never
 *   overwrites a newer one when two timer instances fire at once;
 * - `h-<inverted takenAt>`: the last `historySize` snapshots without node lists (newest sorts first,
 *   older rows are pruned: the table is replaced, never grown);
 * - `health`: consecutive capture failures and the last error, updated under ETag.
 *
 * Snapshot JSON is gzip-packed into Binary properties (`platform/table-json.ts`): a 200 × 5 snapshot
 * with 10,000 nodes is several MiB of JSON but fits one entity compressed.
 */
import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { packJson, unpackJson } from '../platform/table-json.ts';
import { ContentionError, conditionalUpdate, readRow } from '../platform/conditional.ts';
import { scrub } from '../platform/log.ts';
import type { Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import type { ClusterSnapshot } from './model.ts';
import { fromTableKey, toTableKey } from './table-keys.ts';
import { abortOption, statusOf } from '../platform/storage.ts';
import { codeOf } from '../platform/errors.ts';

export interface SnapshotStoreOptions {
  /** Epoch-ms clock for health ages. Default `Date.now`. */
  now?: () => number;
  /** History rows kept per cluster. Default 10. */
  historySize?: number;
  /** History rows older than this are deleted even within `historySize` (`RETENTION_DAYS`). Default: by count only. */
  retentionMs?: number;
  /** Consecutive capture failures that make a cluster stale. Default 3. */
  failureThreshold?: number;
  /** A snapshot older than this is stale whatever the failure count. Default: never by age alone. */
  staleAfterMs?: number;
}

export interface StoreCallOptions {
  abortSignal?: AbortSignal;
}

export interface SaveSnapshotResult {
  /** False when `latest` already held a snapshot at least as new (a concurrent capture won). */
  latestReplaced: boolean;
}

export interface FailureCount {
  consecutiveFailures: number;
  stale: boolean;
}

/** Per-cluster snapshot health, as `GET /api/health` reports it. */
export interface SnapshotHealth {
  /** ISO time of the latest snapshot; null when none was ever stored. */
  takenAt: string | null;
  ageSeconds: number | null;
  consecutiveFailures: number;
  stale: boolean;
  lastError: string | null;
}

export class SnapshotStoreError extends ContentionError<'SNAPSHOT_STORE_CONTENDED'> {
  override name = 'SnapshotStoreError';
}

const LATEST = 'latest';
const HEALTH = 'health';
const HISTORY_PREFIX = 'h-';
const INVERT_BASE = 9_999_999_999_999;
/** Conditional writes retried this often before giving up (only under heavy contention). */
const MAX_ATTEMPTS = 8;
const MAX_ERROR_TEXT = 500;
const signalOf = (o: StoreCallOptions): { abortSignal?: AbortSignal } => (o.abortSignal ? { abortSignal: o.abortSignal } : {});

interface HealthEntity {
  partitionKey: string;
  rowKey: string;
  consecutiveFailures: number;
  lastError: string;
  lastFailureAtMs: number;
  lastSuccessAtMs: number;
}

// Partition keys come from toTableKey, which never yields a quote: safe to put in a filter as is.
const historyFilter = (pk: string): string => `PartitionKey eq '${pk}' and RowKey ge '${HISTORY_PREFIX}' and RowKey lt 'h.'`;

function errorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = codeOf(error);
  const text = code ? `${code}: ${message}` : message;
  // Errors are ours or the client's (which already keep secrets out); scrub anyway, and bound it.
  return scrub(text).slice(0, MAX_ERROR_TEXT);
}

export class SnapshotStore {
  readonly #table: TableClient;
  readonly #tableName: string;
  readonly #storage: Pick<Storage, 'table' | 'ensure'>;
  readonly #now: () => number;
  readonly #historySize: number;
  readonly #retentionMs: number | undefined;
  readonly #threshold: number;
  readonly #staleAfterMs: number | undefined;

  constructor(storage: Pick<Storage, 'table' | 'ensure'>, names: Pick<StorageNames, 'snapshotsTable'>, options: SnapshotStoreOptions = {}) {
    this.#storage = storage;
    this.#tableName = names.snapshotsTable;
    this.#table = storage.table(names.snapshotsTable);
    this.#now = options.now ?? Date.now;
    this.#historySize = Math.max(0, options.historySize ?? 10);
    this.#retentionMs = options.retentionMs;
    this.#threshold = Math.max(1, options.failureThreshold ?? 3);
    this.#staleAfterMs = options.staleAfterMs;
  }

  /** Creates the table if missing. */
  async ensure(): Promise<void> {
    await this.#storage.ensure({ tables: [this.#tableName] });
  }

  /** Stores `snapshot` as the cluster's latest (unless a newer one is there) and as a history row. */
  async saveSnapshot(snapshot: ClusterSnapshot, options: StoreCallOptions = {}): Promise<SaveSnapshotResult> {
    const pk = toTableKey(snapshot.cluster);
    const takenAtMs = Date.parse(snapshot.takenAt);
    const latestReplaced = await this.#replaceLatest(pk, snapshot, takenAtMs, options);
    if (this.#historySize > 0) {
      const { nodes: _nodes, ...compact } = snapshot;
      const rowKey = `${HISTORY_PREFIX}${String(INVERT_BASE - takenAtMs).padStart(13, '0')}`;
      await this.#table.upsertEntity({ partitionKey: pk, rowKey, takenAtMs, ...packJson(compact) }, 'Replace', { ...abortOption(options) });
      await this.#pruneHistory(pk, options);
    }
    return { latestReplaced };
  }

  async #replaceLatest(pk: string, snapshot: ClusterSnapshot, takenAtMs: number, options: StoreCallOptions): Promise<boolean> {
    const entity = { partitionKey: pk, rowKey: LATEST, takenAtMs, takenAt: snapshot.takenAt, ...packJson(snapshot) };
    const { result } = await conditionalUpdate<{ takenAtMs?: number }, boolean>({
      table: this.#table,
      partitionKey: pk,
      rowKey: LATEST,
      select: ['takenAtMs'],
      maxAttempts: MAX_ATTEMPTS,
      ...signalOf(options),
      // An older capture never overwrites a newer one (two timer instances at once).
      decide: (current) => (current && Number(current.takenAtMs ?? 0) >= takenAtMs ? { result: false } : { write: entity, result: true }),
      contention: (attempts, cause) =>
        new SnapshotStoreError('SNAPSHOT_STORE_CONTENDED', `could not store the snapshot of ${snapshot.cluster}: ${attempts} concurrent writers in a row`, { cause }),
    });
    return result;
  }

  async #pruneHistory(pk: string, options: StoreCallOptions): Promise<void> {
    const keys: string[] = [];
    const rows = this.#table.listEntities<{ rowKey: string }>({
      queryOptions: { filter: historyFilter(pk), select: ['RowKey'] },
      ...abortOption(options),
    });
    for await (const row of rows) keys.push(row.rowKey);
    keys.sort();
    // Newest first: beyond the count, and past the retention (a larger inverted time is older).
    const oldest = this.#retentionMs === undefined ? null : `${HISTORY_PREFIX}${String(INVERT_BASE - (this.#now() - this.#retentionMs)).padStart(13, '0')}`;
    const kept = oldest === null ? this.#historySize : Math.min(this.#historySize, keys.filter((k) => k <= oldest).length);
    await Promise.all(
      keys.slice(kept).map(async (rowKey) => {
        try {
          await this.#table.deleteEntity(pk, rowKey, { ...abortOption(options) });
        } catch (error) {
          if (statusOf(error) !== 404) throw error; // a concurrent prune got there first
        }
      }),
    );
  }

  /** The cluster's newest snapshot (with node list), or null. */
  async latest(cluster: string, options: StoreCallOptions = {}): Promise<ClusterSnapshot | null> {
    const entity = await readRow<Record<string, unknown>>(this.#table, toTableKey(cluster), LATEST, signalOf(options));
    return entity ? unpackJson<ClusterSnapshot>(entity) : null;
  }

  /** Stored history, newest first, without node lists. */
  async history(cluster: string, options: StoreCallOptions = {}): Promise<ClusterSnapshot[]> {
    const pk = toTableKey(cluster);
    const out: { rowKey: string; snapshot: ClusterSnapshot }[] = [];
    const rows = this.#table.listEntities({
      queryOptions: { filter: historyFilter(pk) },
      ...abortOption(options),
    });
    for await (const row of rows) out.push({ rowKey: row.rowKey!, snapshot: unpackJson<ClusterSnapshot>(row) });
    return out.sort((a, b) => (a.rowKey < b.rowKey ? -1 : 1)).map((r) => r.snapshot);
  }

  /** Counts one more failed capture; `stale` once the count reaches the threshold (default 3). */
  async recordFailure(cluster: string, error: unknown, nowMs: number, options: StoreCallOptions = {}): Promise<FailureCount> {
    const pk = toTableKey(cluster);
    const lastError = errorText(error);
    const { result } = await conditionalUpdate<HealthEntity, FailureCount>({
      table: this.#table,
      partitionKey: pk,
      rowKey: HEALTH,
      maxAttempts: MAX_ATTEMPTS,
      ...signalOf(options),
      decide: (current) => {
        const consecutiveFailures = Number(current?.consecutiveFailures ?? 0) + 1;
        const write = { consecutiveFailures, lastError, lastFailureAtMs: nowMs, lastSuccessAtMs: Number(current?.lastSuccessAtMs ?? 0) };
        return { write, result: { consecutiveFailures, stale: consecutiveFailures >= this.#threshold } };
      },
      contention: (attempts, cause) =>
        new SnapshotStoreError('SNAPSHOT_STORE_CONTENDED', `could not count a capture failure for ${cluster}: ${attempts} concurrent writers in a row`, { cause }),
    });
    return result;
  }

  /** A successful capture: the failure count starts again at 0. */
  async recordSuccess(cluster: string, nowMs: number, options: StoreCallOptions = {}): Promise<void> {
    const pk = toTableKey(cluster);
    await this.#table.upsertEntity({ partitionKey: pk, rowKey: HEALTH, consecutiveFailures: 0, lastError: '', lastSuccessAtMs: nowMs }, 'Merge', { ...abortOption(options) });
  }

  /** Age, failures and staleness of a cluster's snapshots; null when the cluster was never captured or attempted. */
  async health(cluster: string, options: StoreCallOptions = {}): Promise<SnapshotHealth | null> {
    const pk = toTableKey(cluster);
    const get = async <T extends object>(rowKey: string, select?: string[]): Promise<TableEntityResult<T> | null> =>
      readRow<T>(this.#table, pk, rowKey, { ...(select ? { select } : {}), ...signalOf(options) });
    const [latest, health] = await Promise.all([get<{ takenAtMs: number; takenAt: string }>(LATEST, ['takenAtMs', 'takenAt']), get<HealthEntity>(HEALTH)]);
    if (!latest && !health) return null;
    const consecutiveFailures = Number(health?.consecutiveFailures ?? 0);
    const ageMs = latest ? Math.max(0, this.#now() - Number(latest.takenAtMs)) : null;
    const tooOld = ageMs !== null && this.#staleAfterMs !== undefined && ageMs > this.#staleAfterMs;
    return {
      takenAt: latest?.takenAt ?? null,
      ageSeconds: ageMs === null ? null : Math.round(ageMs / 1000),
      consecutiveFailures,
      stale: consecutiveFailures >= this.#threshold || tooOld,
      lastError: health?.lastError ? health.lastError : null,
    };
  }

  /** Every cluster with a stored snapshot or a recorded capture attempt, sorted. */
  async listClusters(options: StoreCallOptions = {}): Promise<string[]> {
    const names = new Set<string>();
    const rows = this.#table.listEntities({
      queryOptions: { filter: `RowKey eq '${LATEST}' or RowKey eq '${HEALTH}'`, select: ['PartitionKey'] },
      ...abortOption(options),
    });
    for await (const row of rows) names.add(fromTableKey(row.partitionKey!));
    return [...names].sort();
  }
}
