/**
 * Small shared scaler state in `names.stateTable`: the scale-out pause switch and counters that
 * health reports (`rejectedMessages`, `poisonedMessages`, …). Every write is ETag-guarded, so
 * concurrent function instances never lose an increment.
 */
import type { TableClient } from '@azure/data-tables';
import { statusOf, type Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';

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
    try {
      const row = await this.#table.getEntity<{ paused?: boolean }>(SWITCH_PK, PAUSE_RK);
      return row.paused === true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw error;
    }
  }

  /** Flips the switch (the setting, if set, still wins). `by` is recorded for operators. */
  async setPaused(paused: boolean, by?: string): Promise<void> {
    await this.#table.upsertEntity({ partitionKey: SWITCH_PK, rowKey: PAUSE_RK, paused, by: by ?? '', atMs: this.#now() }, 'Replace');
  }

  /** Adds `by` (default 1) to a counter; safe under concurrency. Returns the new value. */
  async increment(counter: 'rejectedMessages' | 'poisonedMessages' | (string & {}), by = 1): Promise<number> {
    const rowKey = encodeURIComponent(counter);
    for (let attempt = 1; ; attempt++) {
      try {
        const row = await this.#table.getEntity<{ value?: number }>(COUNTER_PK, rowKey);
        const value = Number(row.value ?? 0) + by;
        await this.#table.updateEntity({ partitionKey: COUNTER_PK, rowKey, name: counter, value }, 'Replace', { etag: row.etag });
        return value;
      } catch (error) {
        const status = statusOf(error);
        if (status === 404) {
          try {
            await this.#table.createEntity({ partitionKey: COUNTER_PK, rowKey, name: counter, value: by });
            return by;
          } catch (createError) {
            if (statusOf(createError) !== 409) throw createError;
          }
        } else if (status !== 412) throw error;
        if (attempt >= 50) throw new Error(`counter ${counter}: too many concurrent increments`, { cause: error });
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5 * attempt)));
      }
    }
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
