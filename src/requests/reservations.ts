/**
 * Capacity reservations: what every create of a cluster asked for, from before it is sent until a
 * snapshot counts its nodes. One row per cluster in `names.stateTable`, changed only by ETag-guarded
 * read-modify-write: planning reads the row, plans against the snapshot minus what the row holds,
 * and writes its own reservation conditionally on the row it read. A concurrent plan (another
 * invocation of the batch, another instance) that wrote first makes this write fail with 412, and
 * this plan is made again on the new row. So whatever one invocation plans, every other one sees
 * before it calls CycleCloud: a burst cannot over-ask a bucket (issue: "no over-ask").
 *
 * Release. A create's nodes are counted by CycleCloud's `availableCount` from the moment it applies
 * the create ("includes nodes that are still acquiring a VM"). A reservation therefore stops counting
 * for a snapshot whose read STARTED after the create's 202 was received (`acceptedAtMs`, minus
 * {@link CLOCK_SKEW_MS} for clocks of different instances); until then, even an accepted create is
 * subtracted (with what CycleCloud added). The snapshot timer prunes reservations every snapshot
 * counts, and those whose create failed or never got past the claim.
 */
import type { TableClient } from '@azure/data-tables';
import type { Storage } from '../platform/storage.ts';
import type { StorageNames } from '../platform/names.ts';
import { packJson, unpackJson } from '../platform/table-json.ts';
import { ContentionError, conditionalUpdate, readRow } from '../platform/conditional.ts';
import { ScalerError } from '../platform/errors.ts';
import type { InFlightAllocation } from '../planning/types.ts';

/** Margin for clocks of different instances: a reservation is counted this much longer. */
export const CLOCK_SKEW_MS = 2_000;
/** A reservation whose create has not been accepted after this long is checked against the ledger. */
export const UNCONFIRMED_AFTER_MS = 2 * 60_000;

export interface ReservedSet {
  nodearray: string;
  machineType: string;
  placementGroupId: string | null;
  /** Asked; replaced by what CycleCloud added once the create is accepted. */
  count: number;
}

export interface Reservation {
  /** The create's CycleCloud requestId (one reservation per create). */
  cycleCloudRequestId: string;
  requestId: string;
  sets: ReservedSet[];
  reservedAtMs: number;
  /** When the create's answer (or its reconciliation) was received; absent while unknown. */
  acceptedAtMs?: number;
  /** The request's tenant (docs/api.md, Tenants); absent = `default`. */
  tenant?: string;
}

export interface ReservationRow {
  items: Reservation[];
  etag: string | null;
}

const PK = 'reservations';

/** The row's document: the reservations, and the start of the newest snapshot they were pruned with. */
interface Doc {
  items: Reservation[];
  prunedThroughMs?: number;
}
const rowKey = (cluster: string): string => encodeURIComponent(cluster);
const MAX_ATTEMPTS = 100;

/** Whether a snapshot whose read started at `snapshotStartedAtMs` already counts this reservation's nodes. */
export function countedBy(r: Reservation, snapshotStartedAtMs: number): boolean {
  return r.acceptedAtMs !== undefined && r.acceptedAtMs + CLOCK_SKEW_MS < snapshotStartedAtMs;
}

/** What a plan against a snapshot started at `snapshotStartedAtMs` must subtract. */
export function inFlightOf(items: readonly Reservation[], snapshotStartedAtMs: number): InFlightAllocation[] {
  const out: InFlightAllocation[] = [];
  for (const r of items) {
    if (countedBy(r, snapshotStartedAtMs)) continue;
    for (const s of r.sets) if (s.count > 0) out.push({ nodearray: s.nodearray, machineType: s.machineType, placementGroupId: s.placementGroupId, count: s.count });
  }
  return out;
}

export class ReservationConflictError extends ContentionError<'RESERVATION_CONTENTION'> {
  override name = 'ReservationConflictError';
}

/**
 * The plan was made on a snapshot older than one the row was already pruned with: reservations that
 * snapshot counts are gone from the row, but the plan's older snapshot does not count them. Plan
 * again on the latest snapshot (it is stored before the timer prunes with it).
 */
export class SnapshotBehindReservationsError extends ScalerError<'RESERVATION_SNAPSHOT_BEHIND'> {
  override name = 'SnapshotBehindReservationsError';
}

export class CapacityReservations {
  readonly #table: TableClient;
  readonly #random: () => number;

  constructor(options: { storage: Storage; names: StorageNames; random?: () => number }) {
    this.#table = options.storage.table(options.names.stateTable);
    this.#random = options.random ?? Math.random;
  }

  async read(cluster: string): Promise<ReservationRow> {
    const entity = await readRow<Record<string, unknown>>(this.#table, PK, rowKey(cluster));
    return entity ? { items: unpackJson<Doc>(entity).items, etag: entity.etag } : { items: [], etag: null };
  }

  /**
   * Read, change, write under the ETag read, again on a lost race. `change` returns the new list,
   * or null to write nothing; it may run several times and must be pure. Returns what it returned
   * last (null when nothing was written).
   */
  async update<T>(
    cluster: string,
    change: (items: Reservation[], prunedThroughMs: number) => { items: Reservation[]; result: T; prunedThroughMs?: number } | null,
  ): Promise<T | null> {
    const { result } = await conditionalUpdate<Record<string, unknown>, T | null>({
      table: this.#table,
      partitionKey: PK,
      rowKey: rowKey(cluster),
      maxAttempts: MAX_ATTEMPTS,
      jitterMs: 5,
      random: this.#random,
      decide: (entity) => {
        const doc: Doc = entity ? unpackJson<Doc>(entity) : { items: [] };
        const watermark = doc.prunedThroughMs ?? 0;
        const next = change(doc.items, watermark);
        return next
          ? { write: packJson({ items: next.items, prunedThroughMs: Math.max(watermark, next.prunedThroughMs ?? 0) } satisfies Doc), result: next.result }
          : { result: null };
      },
      contention: (attempts, cause) =>
        new ReservationConflictError('RESERVATION_CONTENTION', `capacity reservations of ${cluster}: gave up after ${attempts} concurrent updates`, { cause }),
    });
    return result;
  }

  /**
   * Plans against the current reservations and reserves the result in one conditional write.
   * `plan` gets the row's reservations and returns the reservation to add (replacing one of the
   * same CycleCloud requestId) with its own result, or null when there is nothing to reserve.
   */
  async reserve<T>(
    cluster: string,
    plan: (items: readonly Reservation[]) => { reservation: Reservation | null; result: T },
    snapshotStartedAtMs = Number.POSITIVE_INFINITY,
  ): Promise<T> {
    return this.reserveMany(
      cluster,
      (items) => {
        const p = plan(items);
        return { reservations: p.reservation ? [p.reservation] : [], result: p.result };
      },
      snapshotStartedAtMs,
    );
  }

  /**
   * A batch's plan (src/requests/submit.ts): like {@link reserve}, with every member's reservation
   * added in the same one conditional write.
   */
  async reserveMany<T>(
    cluster: string,
    plan: (items: readonly Reservation[]) => { reservations: Reservation[]; result: T },
    snapshotStartedAtMs = Number.POSITIVE_INFINITY,
  ): Promise<T> {
    let last: T | undefined;
    const written = await this.update(cluster, (items, prunedThroughMs) => {
      if (prunedThroughMs > snapshotStartedAtMs) {
        throw new SnapshotBehindReservationsError(
          'RESERVATION_SNAPSHOT_BEHIND',
          `the snapshot planned on (${new Date(snapshotStartedAtMs).toISOString()}) is older than the one the reservations were pruned with`,
        );
      }
      const p = plan(items);
      last = p.result;
      // A create already answered under this id (another worker planned the same generation and won
      // its claim) keeps its reservation: replacing it would forget when it was answered, and a
      // snapshot would then count its nodes twice for as long as the reservation lived.
      const fresh = p.reservations.filter((r) => !items.some((x) => x.cycleCloudRequestId === r.cycleCloudRequestId && x.acceptedAtMs !== undefined));
      if (fresh.length === 0) return null;
      const ids = new Set(fresh.map((r) => r.cycleCloudRequestId));
      return { items: [...items.filter((x) => !ids.has(x.cycleCloudRequestId)), ...fresh], result: p.result };
    });
    return (written ?? last) as T;
  }

  /** The create was answered: its reservation counts what CycleCloud added, until a later snapshot. */
  async accepted(cluster: string, cycleCloudRequestId: string, added: number[], atMs: number): Promise<void> {
    await this.acceptedMany(cluster, [{ cycleCloudRequestId, added }], atMs);
  }

  /** A batch's create was answered: every member's reservation in one write. */
  async acceptedMany(cluster: string, answers: readonly { cycleCloudRequestId: string; added: number[] }[], atMs: number): Promise<void> {
    await this.update(cluster, (items) => {
      let changed = false;
      for (const a of answers) {
        const r = items.find((x) => x.cycleCloudRequestId === a.cycleCloudRequestId);
        if (!r || r.acceptedAtMs !== undefined) continue;
        r.acceptedAtMs = atMs;
        r.sets = r.sets.map((s, i) => ({ ...s, count: a.added[i] ?? 0 }));
        changed = true;
      }
      return changed ? { items, result: true } : null;
    });
  }

  /** Drops a reservation (its create failed, or will never be sent). */
  async release(cluster: string, cycleCloudRequestId: string | readonly string[]): Promise<void> {
    const ids = new Set(typeof cycleCloudRequestId === 'string' ? [cycleCloudRequestId] : cycleCloudRequestId);
    if (ids.size === 0) return;
    await this.update(cluster, (items) => {
      const left = items.filter((x) => !ids.has(x.cycleCloudRequestId));
      return left.length === items.length ? null : { items: left, result: true };
    });
  }

  /**
   * After a snapshot: drops reservations the snapshot counts, and those not accepted for longer
   * than {@link UNCONFIRMED_AFTER_MS} whose create `settled` says is over (failed, never sent, or
   * accepted: then the ledger's acceptance time decides). Returns how many were dropped.
   */
  async prune(cluster: string, snapshotStartedAtMs: number, nowMs: number, settled: (r: Reservation) => Promise<{ over: boolean; acceptedAtMs?: number }>): Promise<number> {
    const row = await this.read(cluster);
    const verdicts = new Map<string, { over: boolean; acceptedAtMs?: number }>();
    for (const r of row.items) {
      if (r.acceptedAtMs === undefined && nowMs - r.reservedAtMs > UNCONFIRMED_AFTER_MS) verdicts.set(r.cycleCloudRequestId, await settled(r));
    }
    const dropped = await this.update(cluster, (items) => {
      let counted = false;
      const keep = items.filter((r) => {
        const v = verdicts.get(r.cycleCloudRequestId);
        const accepted = r.acceptedAtMs ?? v?.acceptedAtMs;
        if (accepted !== undefined) {
          const gone = countedBy({ ...r, acceptedAtMs: accepted }, snapshotStartedAtMs);
          counted ||= gone;
          return !gone;
        }
        return !(v?.over ?? false);
      });
      if (keep.length === items.length) return null;
      // A plan on a snapshot older than this one would miss what this prune drops: the watermark
      // makes it plan again (SnapshotBehindReservationsError).
      return { items: keep, result: items.length - keep.length, ...(counted ? { prunedThroughMs: snapshotStartedAtMs } : {}) };
    });
    return dropped ?? 0;
  }
}
