/**
 * The fleet-wide CycleCloud governor: what every instance of the scaler agrees on through storage
 * (rows in `names.stateTable`, partition `governor`), so the fleet treats one CycleCloud server as
 * one. Two things:
 *
 * - **Slots.** At most `CYCLECLOUD_MAX_CONCURRENT_CREATES` creates in flight per cluster across all
 *   instances (pool `create`), and at most one batch per cluster being planned, reserved and sent
 *   (pool `batch`: no two instances race on the cluster's reservation row). A slot is a timestamped
 *   entry in the pool's row, taken and given back by ETag-guarded writes, and renewed by its live
 *   holder; a holder that dies (kill -9 mid-batch) loses it `slotTtlMs` (15 s) after its last renewal. A caller that cannot get one within `acquireWaitMs` gets `CC_THROTTLED`
 *   with a `retryAfterMs`: nothing was sent, the request waits and tries again (a Functions
 *   invocation never blocks for long).
 * - **Pause.** A 429 or 503 with `Retry-After` from CycleCloud, seen by any instance, pauses every
 *   instance's calls to it until then: the pause row is read at most every `pauseCacheMs` per
 *   instance, and a call made while paused fails at once with `CC_THROTTLED` (never sent).
 *
 * `governed(client, governor)` puts both in front of a CycleCloud client. `view()` is what
 * `/api/health` and the console show: paused until, slots in flight, creates in the last minute.
 */
import type { TableClient } from '@azure/data-tables';
import type { Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import type { Logger } from '../platform/log.ts';
import { ContentionError, conditionalUpdate, readRow, type Decision } from '../platform/conditional.ts';
import { CycleCloudError, isCycleCloudError } from './errors.ts';
import type { CycleCloudClient } from './client.ts';
import { recordMetric } from '../platform/metrics.ts';

export type GovernorPool = 'create' | 'batch';

export interface GovernorOptions {
  storage: Storage;
  names: StorageNames;
  /** `CYCLECLOUD_MAX_CONCURRENT_CREATES`: creates in flight per cluster across the fleet. */
  maxConcurrentCreates: number;
  /** Epoch-ms clock. Default `Date.now`. */
  now?: () => number;
  /**
   * How long a slot outlives a holder that died (ms). Default 15 000. A live holder renews its
   * slots every third of this (`renew`), so a slow create or batch keeps its slot however long it
   * takes, and a worker killed mid-batch frees its cluster within this time.
   */
  slotTtlMs?: number;
  /** Renews held slots every `slotTtlMs / 3` with a real timer. Default true (unit tests with a fake clock call `renew` themselves). */
  autoRenew?: boolean;
  /** How long one instance trusts its last read of the pause row (ms). Default 1 000. */
  pauseCacheMs?: number;
  /** How long `acquire` waits for a free slot before giving up with `CC_THROTTLED` (ms, real time). Default 2 000. */
  acquireWaitMs?: number;
  /** Real-time pause between tries for a slot. Default a timer. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface GovernorClusterView {
  cluster: string;
  createsInFlight: number;
  batchesInFlight: number;
  /** Creates sent across the fleet in the current and previous minute, per minute (the larger). */
  createsPerMinute: number;
}

export interface GovernorView {
  maxConcurrentCreates: number;
  /** ISO time until which every instance holds its CycleCloud calls, or null. */
  pausedUntil: string | null;
  pauseReason: string | null;
  clusters: GovernorClusterView[];
  /** CycleCloud calls this instance made in the last 60 s. */
  callsPerMinute: number;
}

interface Slot {
  id: string;
  untilMs: number;
}

interface PoolRow {
  slots?: string;
  minute?: number;
  creates?: number;
  createsPrevMinute?: number;
}

interface PauseRow {
  untilMs?: number;
  reason?: string;
}

const PK = 'governor';
const PAUSE_RK = 'pause';
const rowKey = (pool: GovernorPool, cluster: string): string => `${pool}|${encodeURIComponent(cluster)}`;
const parseSlots = (raw: unknown): Slot[] => {
  if (typeof raw !== 'string') return [];
  try {
    const v = JSON.parse(raw) as unknown;
    return Array.isArray(v) ? v.filter((s): s is Slot => typeof s?.id === 'string' && typeof s?.untilMs === 'number') : [];
  } catch {
    return [];
  }
};

export class Governor {
  readonly maxConcurrentCreates: number;
  readonly #table: TableClient;
  readonly #now: () => number;
  readonly #ttl: number;
  readonly #autoRenew: boolean;
  /** Slots this instance holds: pool, cluster and the renewal timer. */
  readonly #held = new Map<string, { pool: GovernorPool; cluster: string; timer?: ReturnType<typeof setInterval> }>();
  readonly #pauseCacheMs: number;
  readonly #waitMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  #pause: { untilMs: number; reason: string | null; readAtMs: number } | undefined;
  readonly #calls: number[] = [];
  #seq = 0;

  constructor(o: GovernorOptions) {
    this.#table = o.storage.table(o.names.stateTable);
    this.maxConcurrentCreates = Math.max(1, o.maxConcurrentCreates);
    this.#now = o.now ?? Date.now;
    this.#ttl = o.slotTtlMs ?? 15_000;
    this.#autoRenew = o.autoRenew ?? true;
    this.#pauseCacheMs = o.pauseCacheMs ?? 1_000;
    this.#waitMs = o.acquireWaitMs ?? 2_000;
    this.#sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.#random = o.random ?? Math.random;
  }

  #limit(pool: GovernorPool): number {
    return pool === 'create' ? this.maxConcurrentCreates : 1;
  }

  /**
   * Takes a slot of `pool` for `cluster`, waiting up to `acquireWaitMs` for one; returns its id.
   * Throws `CC_THROTTLED` (with `retryAfterMs`) when every slot stays taken.
   */
  async acquire(pool: GovernorPool, cluster: string): Promise<string> {
    const id = `${process.pid}-${Date.now().toString(36)}-${++this.#seq}-${Math.floor(this.#random() * 1e9).toString(36)}`;
    const limit = this.#limit(pool);
    const giveUpAt = performance.now() + this.#waitMs;
    for (let attempt = 1; ; attempt++) {
      const nowMs = this.#now();
      const result = await this.#updatePool<{ ok: true } | { ok: false; freeAtMs: number }>(pool, cluster, (row) => {
        const live = parseSlots(row?.slots).filter((s) => s.untilMs > nowMs);
        if (live.length >= limit) return { result: { ok: false, freeAtMs: Math.min(...live.map((s) => s.untilMs)) } };
        live.push({ id, untilMs: nowMs + this.#ttl });
        return { write: { ...poolFields(row), slots: JSON.stringify(live) }, result: { ok: true } };
      });
      if (result.ok) {
        const held: { pool: GovernorPool; cluster: string; timer?: ReturnType<typeof setInterval> } = { pool, cluster };
        if (this.#autoRenew) {
          held.timer = setInterval(() => void this.renew(id).catch(() => undefined), Math.max(50, Math.floor(this.#ttl / 3)));
          held.timer.unref?.();
        }
        this.#held.set(id, held);
        return id;
      }
      if (performance.now() >= giveUpAt) {
        const what =
          pool === 'create'
            ? `${limit} create(s) of cluster ${cluster} are in flight across the fleet (CYCLECLOUD_MAX_CONCURRENT_CREATES)`
            : cluster.startsWith('\u0000')
              ? 'a batch of a tenant capped over all clusters is being sent (by another instance)'
              : `a batch for cluster ${cluster} is being sent (by another instance)`;
        throw new CycleCloudError('CC_THROTTLED', `${what}; not sent, trying again shortly`, { retryAfterMs: Math.min(5_000, Math.max(1_000, result.freeAtMs - nowMs)) });
      }
      await this.#sleep(Math.min(250, 25 * attempt) * (0.5 + this.#random()));
    }
  }

  /** Pushes the expiry of the slots this instance holds (or only `only`) to `slotTtlMs` from now (a slot lost meanwhile stays lost). */
  async renew(only?: string): Promise<void> {
    const nowMs = this.#now();
    const byRow = new Map<string, { pool: GovernorPool; cluster: string; ids: Set<string> }>();
    for (const [id, h] of this.#held) {
      if (only !== undefined && id !== only) continue;
      const k = rowKey(h.pool, h.cluster);
      const g = byRow.get(k) ?? { pool: h.pool, cluster: h.cluster, ids: new Set<string>() };
      g.ids.add(id);
      byRow.set(k, g);
    }
    await Promise.all(
      [...byRow.values()].map((g) =>
        this.#updatePool<void>(g.pool, g.cluster, (row) => {
          const slots = parseSlots(row?.slots);
          if (!slots.some((x) => g.ids.has(x.id) && x.untilMs > nowMs)) return { result: undefined };
          const renewed = slots.filter((x) => x.untilMs > nowMs).map((x) => (g.ids.has(x.id) ? { ...x, untilMs: nowMs + this.#ttl } : x));
          return { write: { ...poolFields(row), slots: JSON.stringify(renewed) }, result: undefined };
        }),
      ),
    );
  }

  /** Gives a slot back; `sent` counts a create call in the fleet's per-minute figure. */
  async release(pool: GovernorPool, cluster: string, id: string, sent = false): Promise<void> {
    const held = this.#held.get(id);
    if (held?.timer) clearInterval(held.timer);
    this.#held.delete(id);
    const nowMs = this.#now();
    const minute = Math.floor(nowMs / 60_000);
    await this.#updatePool<void>(pool, cluster, (row) => {
      const slots = parseSlots(row?.slots).filter((s) => s.id !== id && s.untilMs > nowMs);
      const f = poolFields(row);
      if (sent) {
        if (f.minute === minute) f.creates = (f.creates ?? 0) + 1;
        else {
          f.createsPrevMinute = f.minute === minute - 1 ? (f.creates ?? 0) : 0;
          f.creates = 1;
          f.minute = minute;
        }
      }
      return { write: { ...f, slots: JSON.stringify(slots) }, result: undefined };
    });
  }

  /** One ETag-guarded read-modify-write of a pool's row. */
  async #updatePool<R>(pool: GovernorPool, cluster: string, decide: (row: PoolRow | null) => Decision<R>): Promise<R> {
    const { result } = await conditionalUpdate<PoolRow, R>({
      table: this.#table,
      partitionKey: PK,
      rowKey: rowKey(pool, cluster),
      maxAttempts: 50,
      jitterMs: 5,
      random: this.#random,
      decide,
      contention: (n, cause) => new ContentionError('GOVERNOR_CONTENTION', `governor ${pool} slots of ${cluster}: gave up after ${n} concurrent writes`, { cause }),
    });
    return result;
  }

  /** Until when every instance holds its calls (epoch ms), or 0. Read from storage at most every `pauseCacheMs`. */
  async pausedUntil(): Promise<number> {
    const nowMs = this.#now();
    if (!this.#pause || nowMs - this.#pause.readAtMs >= this.#pauseCacheMs) {
      const row = await readRow<PauseRow>(this.#table, PK, PAUSE_RK);
      this.#pause = { untilMs: Number(row?.untilMs ?? 0), reason: row?.reason ?? null, readAtMs: nowMs };
    }
    return this.#pause.untilMs > nowMs ? this.#pause.untilMs : 0;
  }

  /** Pauses every instance's calls until `untilMs` (a later pause already recorded stands). */
  async pause(untilMs: number, reason: string): Promise<void> {
    const nowMs = this.#now();
    const { result } = await conditionalUpdate<PauseRow, PauseRow>({
      table: this.#table,
      partitionKey: PK,
      rowKey: PAUSE_RK,
      maxAttempts: 50,
      jitterMs: 5,
      decide: (row) => {
        const current = Number(row?.untilMs ?? 0);
        if (current >= untilMs) return { result: { untilMs: current, reason: row?.reason ?? reason } };
        return { write: { untilMs, reason, atMs: nowMs }, result: { untilMs, reason } };
      },
      contention: (n, cause) => new ContentionError('GOVERNOR_CONTENTION', `governor pause: gave up after ${n} concurrent writes`, { cause }),
    });
    if (result.untilMs === untilMs) recordMetric('scaler.governor.pauses', 1);
    this.#pause = { untilMs: result.untilMs ?? untilMs, reason: result.reason ?? reason, readAtMs: nowMs };
  }

  /** Counts one CycleCloud call of this instance (the per-minute figure). */
  noteCall(): void {
    const nowMs = this.#now();
    this.#calls.push(nowMs);
    while (this.#calls.length > 0 && this.#calls[0]! <= nowMs - 60_000) this.#calls.shift();
  }

  async view(clusters: readonly string[]): Promise<GovernorView> {
    const nowMs = this.#now();
    const minute = Math.floor(nowMs / 60_000);
    const [pause, ...rows] = await Promise.all([
      readRow<PauseRow>(this.#table, PK, PAUSE_RK),
      ...clusters.flatMap((c) => [readRow<PoolRow>(this.#table, PK, rowKey('create', c)), readRow<PoolRow>(this.#table, PK, rowKey('batch', c))]),
    ]);
    const until = Number(pause?.untilMs ?? 0);
    while (this.#calls.length > 0 && this.#calls[0]! <= nowMs - 60_000) this.#calls.shift();
    return {
      maxConcurrentCreates: this.maxConcurrentCreates,
      pausedUntil: until > nowMs ? new Date(until).toISOString() : null,
      pauseReason: until > nowMs ? (pause?.reason ?? null) : null,
      clusters: clusters.map((cluster, i) => {
        const create = rows[2 * i];
        const batch = rows[2 * i + 1];
        const live = (r: PoolRow | null | undefined) => parseSlots(r?.slots).filter((s) => s.untilMs > nowMs).length;
        const now = create?.minute === minute ? (create.creates ?? 0) : 0;
        const prev = create?.minute === minute ? (create.createsPrevMinute ?? 0) : create?.minute === minute - 1 ? (create.creates ?? 0) : 0;
        return { cluster, createsInFlight: live(create), batchesInFlight: live(batch), createsPerMinute: Math.max(now, prev) };
      }),
      callsPerMinute: this.#calls.length,
    };
  }
}

function poolFields(row: PoolRow | null): PoolRow {
  const f: PoolRow = {};
  if (row?.minute !== undefined) f.minute = Number(row.minute);
  if (row?.creates !== undefined) f.creates = Number(row.creates);
  if (row?.createsPrevMinute !== undefined) f.createsPrevMinute = Number(row.createsPrevMinute);
  return f;
}

/**
 * A CycleCloud client behind the governor: every call is held while the fleet is paused, a 429 or
 * 503 with `Retry-After` pauses the fleet, and each create takes a `create` slot of its cluster.
 * The governor's own storage trouble never blocks a call: it is logged and the call goes ahead.
 */
export function governed(client: CycleCloudClient, governor: Governor, logger: Logger, now: () => number = Date.now): CycleCloudClient {
  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    let until = 0;
    try {
      until = await governor.pausedUntil();
    } catch (error) {
      logger.warn('governor: pause row unreadable; calling CycleCloud anyway', { error });
    }
    const nowMs = now();
    if (until > nowMs)
      throw new CycleCloudError('CC_THROTTLED', `CycleCloud calls are paused across the fleet until ${new Date(until).toISOString()} (CycleCloud asked to wait)`, {
        retryAfterMs: until - nowMs,
      });
    governor.noteCall();
    try {
      return await fn();
    } catch (error) {
      if (
        isCycleCloudError(error) &&
        (error.code === 'CC_THROTTLED' || error.code === 'CC_UNAVAILABLE') &&
        error.status !== undefined &&
        error.retryAfterMs !== undefined &&
        error.retryAfterMs > 0
      ) {
        const at = now() + error.retryAfterMs;
        try {
          await governor.pause(at, `CycleCloud answered ${error.status} with Retry-After`);
          logger.warn('governor: CycleCloud asked to wait; every instance holds its calls', { status: error.status, retryAfterMs: error.retryAfterMs });
        } catch (e) {
          logger.warn('governor: could not record the pause', { error: e });
        }
      }
      throw error;
    }
  };
  const governedCreate: CycleCloudClient['createNodes'] = (cluster, request, options) =>
    guard(async () => {
      const slot = await governor.acquire('create', cluster);
      let sent = false;
      try {
        sent = true;
        return await client.createNodes(cluster, request, options);
      } finally {
        await governor.release('create', cluster, slot, sent).catch((error: unknown) => logger.warn('governor: could not give a create slot back (it expires)', { error }));
      }
    });
  return {
    getClusterStatus: (...a) => guard(() => client.getClusterStatus(...a)),
    listNodes: (...a) => guard(() => client.listNodes(...a)),
    createNodes: governedCreate,
    terminateNodes: (...a) => guard(() => client.terminateNodes(...a)),
    deallocateNodes: (...a) => guard(() => client.deallocateNodes(...a)),
    shutdownNodes: (...a) => guard(() => client.shutdownNodes(...a)),
    startNodes: (...a) => guard(() => client.startNodes(...a)),
    removeNodes: (...a) => guard(() => client.removeNodes(...a)),
    scaleNodearray: (...a) => guard(() => client.scaleNodearray(...a)),
    getOperation: (...a) => guard(() => client.getOperation(...a)),
    findOperationByRequestId: (...a) => guard(() => client.findOperationByRequestId(...a)),
    close: () => client.close(),
  };
}
