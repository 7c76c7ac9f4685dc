/**
 * Small shared scaler state in `names.stateTable`: the scale-out pause switch and counters that
 * health reports (`rejectedMessages`, `poisonedMessages`, …). Every write is ETag-guarded, so
 * concurrent function instances never lose an increment.
 */
import type { TableClient } from '@azure/data-tables';
import { statusOf, type Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import { ContentionError, conditionalUpdate, readRow } from '../platform/conditional.ts';
import { recordMetric } from '../platform/metrics.ts';

export interface ScalerStateOptions {
  storage: Storage;
  names: StorageNames;
  /** The `SCALE_OUT_PAUSED` setting: when true, scale-out is paused whatever the switch says. Default false. */
  pausedBySetting?: boolean;
  /** Epoch-ms clock. Default `Date.now`. */
  now?: () => number;
}

const SWITCH_PK = 'switch';
const PAUSE_RK = 'scale-out-paused';
const COUNTER_PK = 'counter';

export class ScalerState {
  readonly #table: TableClient;
  readonly #setting: boolean;
  readonly #now: () => number;

  constructor(options: ScalerStateOptions) {
    this.#table = options.storage.table(options.names.stateTable);
    this.#setting = options.pausedBySetting ?? false;
    this.#now = options.now ?? Date.now;
  }

  /** True when the setting or the HTTP switch holds scale-out. */
  async isPaused(): Promise<boolean> {
    if (this.#setting) return true;
    const row = await readRow<{ paused?: boolean }>(this.#table, SWITCH_PK, PAUSE_RK);
    return row?.paused === true;
  }

  /** Flips the switch (the setting, if set, still wins). `by` is recorded for operators. */
  async setPaused(paused: boolean, by?: string): Promise<void> {
    await this.#table.upsertEntity({ partitionKey: SWITCH_PK, rowKey: PAUSE_RK, paused, by: by ?? '', atMs: this.#now() }, 'Replace');
  }

  /** Adds `by` (default 1) to a counter; safe under concurrency. Returns the new value. */
  async increment(counter: 'rejectedMessages' | 'poisonedMessages' | (string & {}), by = 1): Promise<number> {
    // The same figures as OpenTelemetry metrics (this counter row is what /api/health reads).
    if (counter === 'rejectedMessages') recordMetric('scaler.messages.rejected', by);
    else if (counter === 'poisonedMessages') recordMetric('scaler.messages.poisoned', by);
    const rowKey = encodeURIComponent(counter);
    const { result } = await conditionalUpdate<{ value?: number }, number>({
      table: this.#table,
      partitionKey: COUNTER_PK,
      rowKey,
      maxAttempts: 50,
      jitterMs: 5,
      decide: (row) => {
        const value = Number(row?.value ?? 0) + by;
        return { write: { name: counter, value }, result: value };
      },
      contention: (attempts, cause) => new ContentionError('COUNTER_CONTENTION', `counter ${counter}: gave up after ${attempts} concurrent increments`, { cause }),
    });
    return result;
  }

  /** Every counter by name; absent counters are simply not listed (read them as 0). */
  async counters(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    try {
      for await (const row of this.#table.listEntities<{ name?: string; value?: number }>({ queryOptions: { filter: `PartitionKey eq '${COUNTER_PK}'` } })) {
        out[row.name ?? decodeURIComponent(row.rowKey ?? '')] = Number(row.value ?? 0);
      }
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
    return out;
  }
}
