/**
 * The shared memory of capacity failures: one Table row per (cluster, nodearray, machine type) with
 * the backoff state of `planning/backoff.ts`, updated under ETag so concurrent function instances
 * never lose a failure. Every instance plans with the same backoffs, and they outlive CycleCloud's
 * own 5-minute `ThrottleCapacity` window when failures repeat.
 */
import type { TableClient } from '@azure/data-tables';
import { ContentionError, conditionalUpdate } from '../platform/conditional.ts';
import { abortOption, type Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import type { CapacityBackoff } from '../planning/types.ts';
import { isBackingOff, nextBackoff, snapshotCapacityFailures, toCapacityBackoff, type BackoffPolicy, type BackoffState, type CapacityFailure } from '../planning/backoff.ts';
import type { ClusterSnapshot } from './model.ts';
import { toTableKey } from './table-keys.ts';

export interface CapacityMemoryOptions {
  policy?: BackoffPolicy;
  /** Snapshot `lastCapacityFailureSec` younger than this counts as a failure. Default 300 s. */
  snapshotWindowSec?: number;
}

export interface CapacityFailureInput extends CapacityFailure {
  cluster: string;
}

export interface CapacityCallOptions {
  abortSignal?: AbortSignal;
}

export class CapacityMemoryError extends ContentionError<'CAPACITY_MEMORY_CONTENDED'> {
  override name = 'CapacityMemoryError';
}

type Row = BackoffState & { partitionKey: string; rowKey: string };

const MAX_ATTEMPTS = 8;
const MAX_REASON = 500;

export class CapacityMemory {
  readonly #table: TableClient;
  readonly #tableName: string;
  readonly #storage: Pick<Storage, 'table' | 'ensure'>;
  readonly #policy: BackoffPolicy;
  readonly #windowSec: number;

  constructor(storage: Pick<Storage, 'table' | 'ensure'>, names: Pick<StorageNames, 'capacityTable'>, options: CapacityMemoryOptions = {}) {
    this.#storage = storage;
    this.#tableName = names.capacityTable;
    this.#table = storage.table(names.capacityTable);
    this.#policy = options.policy ?? {};
    this.#windowSec = options.snapshotWindowSec ?? 300;
  }

  /** Creates the table if missing. */
  async ensure(): Promise<void> {
    await this.#storage.ensure({ tables: [this.#tableName] });
  }

  /**
   * Records one capacity failure and returns the bucket's backoff. A failure already recorded (same
   * `failedAtMs` within seconds, as repeated snapshots report it) changes nothing and writes nothing.
   */
  async recordFailure(failure: CapacityFailureInput, nowMs: number, options: CapacityCallOptions = {}): Promise<BackoffState> {
    const pk = toTableKey(failure.cluster);
    // Machine types are case-insensitive in Azure: one row per bucket however it is spelled.
    const rk = toTableKey(`${failure.nodearray}|${failure.machineType.toLowerCase()}`);
    const input: CapacityFailure = {
      nodearray: failure.nodearray,
      machineType: failure.machineType,
      reason: failure.reason.slice(0, MAX_REASON),
      ...(failure.failedAtMs !== undefined ? { failedAtMs: failure.failedAtMs } : {}),
    };
    const { result } = await conditionalUpdate<Row, BackoffState>({
      table: this.#table,
      partitionKey: pk,
      rowKey: rk,
      maxAttempts: MAX_ATTEMPTS,
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
      decide: (current) => {
        const prev = current ? fromRow(current) : null;
        const next = nextBackoff(prev, input, nowMs, this.#policy);
        return next === prev ? { result: next } : { write: { ...next }, result: next };
      },
      contention: (attempts, cause) =>
        new CapacityMemoryError(
          'CAPACITY_MEMORY_CONTENDED',
          `could not record a capacity failure of ${failure.nodearray}/${failure.machineType}: ${attempts} concurrent writers in a row`,
          { cause },
        ),
    });
    return result;
  }

  /** Records the fresh `lastCapacityFailureSec`s a snapshot shows (deduplicated across snapshots). */
  async recordSnapshotFailures(snapshot: ClusterSnapshot, nowMs: number, options: CapacityCallOptions = {}): Promise<BackoffState[]> {
    const failures = snapshotCapacityFailures(snapshot, this.#windowSec);
    return Promise.all(failures.map((f) => this.recordFailure({ ...f, cluster: snapshot.cluster }, nowMs, options)));
  }

  /** The buckets of `cluster` backing off at `nowMs`, for the planner. */
  async active(cluster: string, nowMs: number, options: CapacityCallOptions = {}): Promise<CapacityBackoff[]> {
    const pk = toTableKey(cluster);
    const out: CapacityBackoff[] = [];
    // One row per bucket that ever failed: few, so filter the time here rather than in OData (where
    // the stored number type decides how a comparison behaves). toTableKey never yields a quote.
    const rows = this.#table.listEntities<Row>({ queryOptions: { filter: `PartitionKey eq '${pk}'` }, ...abortOption(options) });
    for await (const row of rows) {
      const state = fromRow(row);
      if (isBackingOff(state, nowMs)) out.push(toCapacityBackoff(state));
    }
    return out.sort((a, b) => (a.nodearray + a.machineType < b.nodearray + b.machineType ? -1 : 1));
  }
}

function fromRow(row: Partial<Row>): BackoffState {
  return {
    nodearray: String(row.nodearray ?? ''),
    machineType: String(row.machineType ?? ''),
    failures: Number(row.failures ?? 0),
    lastFailureAtMs: Number(row.lastFailureAtMs ?? 0),
    durationMs: Number(row.durationMs ?? 0),
    untilMs: Number(row.untilMs ?? 0),
    reason: String(row.reason ?? ''),
  };
}
