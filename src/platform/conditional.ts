/**
 * The one read-modify-write of every store: read a Table row, decide, write it back conditionally
 * on the ETag read (or create it when it was absent), and on a lost race (412: changed meanwhile;
 * 409: created meanwhile; 404: deleted meanwhile) read again and decide again, a bounded number of
 * times with a growing random pause that spreads concurrent writers. No write is ever unconditional.
 */
import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { statusOf } from './storage.ts';
import { ScalerError } from './errors.ts';

/** A store gave up after losing every race for a row: the last lost write is the `cause`. Stores name their own `code`. */
export class ContentionError<C extends string = string> extends ScalerError<C> {
  override name = 'ContentionError';
}

/** What a decision writes: the whole entity (without keys), or nothing. */
export type Decision<R> = { write: Record<string, unknown>; result: R } | { result: R };

export interface ConditionalUpdateOptions<E extends object, R> {
  table: TableClient;
  partitionKey: string;
  rowKey: string;
  /** Decides from the current row (null when absent). May run several times: no side effects. */
  decide: (current: TableEntityResult<E> | null, attempt: number) => Decision<R>;
  /** Properties to read (all by default). The write is always the whole entity. */
  select?: string[];
  /** Attempts before giving up. Default 25. */
  maxAttempts?: number;
  /** Upper bound of the pause after the first lost race, grown linearly per attempt (capped at 10×). Default 10 ms. */
  jitterMs?: number;
  /** Jitter source in [0, 1). Default Math.random. */
  random?: () => number;
  abortSignal?: AbortSignal;
  /** The error thrown when every attempt lost its race (the last lost write is its cause). */
  contention: (attempts: number, cause: unknown) => Error;
}

export interface ConditionalUpdateResult<R> {
  result: R;
  /** Whether this call wrote the row. */
  written: boolean;
  /** ETag of the row written (or read, when nothing was written); null when absent and not written. */
  etag: string | null;
}

const LOST_RACE = new Set([404, 409, 412]);

/** Reads one row, or null when it does not exist. */
export async function readRow<E extends object>(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
  options: { select?: string[]; abortSignal?: AbortSignal } = {},
): Promise<TableEntityResult<E> | null> {
  try {
    return await table.getEntity<E>(partitionKey, rowKey, {
      ...(options.select ? { queryOptions: { select: options.select } } : {}),
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    });
  } catch (error) {
    if (statusOf(error) === 404) return null;
    throw error;
  }
}

export async function conditionalUpdate<E extends object, R>(o: ConditionalUpdateOptions<E, R>): Promise<ConditionalUpdateResult<R>> {
  const maxAttempts = Math.max(1, o.maxAttempts ?? 25);
  const random = o.random ?? Math.random;
  const jitterMs = o.jitterMs ?? 10;
  const signal = o.abortSignal ? { abortSignal: o.abortSignal } : {};
  for (let attempt = 1; ; attempt++) {
    const current = await readRow<E>(o.table, o.partitionKey, o.rowKey, { ...(o.select ? { select: o.select } : {}), ...signal });
    const decision = o.decide(current, attempt);
    if (!('write' in decision)) return { result: decision.result, written: false, etag: current?.etag ?? null };
    const entity = { ...decision.write, partitionKey: o.partitionKey, rowKey: o.rowKey };
    try {
      const res = current ? await o.table.updateEntity(entity, 'Replace', { etag: current.etag, ...signal }) : await o.table.createEntity(entity, signal);
      return { result: decision.result, written: true, etag: res.etag ?? null };
    } catch (error) {
      const status = statusOf(error);
      if (status === undefined || !LOST_RACE.has(status) || (status === 404 && !current)) throw error;
      if (attempt >= maxAttempts) throw o.contention(attempt, error);
      await new Promise((r) => setTimeout(r, Math.floor(random() * jitterMs * Math.min(attempt, 10))));
    }
  }
}
