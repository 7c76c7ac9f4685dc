/**
 * A scale request's lifecycle after its nodes exist (issue 20): the lease, the max lifetime and the
 * release that follows either, or a caller's `release`. Pure functions over one ledger entry; the
 * calls to CycleCloud and the index that finds due leases are in `src/requests/lifecycle.ts`.
 *
 * The rules:
 * - A lease passes at `lease.expiresAt` unless renewed before; a renew moves it to now + seconds.
 *   Renew and expiry are both decided inside one ETag-guarded ledger update, so they are ordered:
 *   a renew written first keeps every node, an expiry written first makes the renew a 409.
 * - The max lifetime passes at `maxLifetime.endsAt`, whatever the renewals.
 * - Released (any of the three): no demand is planned again, and every node of the request that is
 *   alive is shut down, each by its nodearray's ShutdownPolicy, in rounds ({@link ReleaseRound}): a
 *   create that lands after the release adds nodes that the next round shuts down.
 */
import { ScalerError } from '../platform/errors.ts';
import type { LedgerEntry, ReleaseRound } from './types.ts';
import type { ReleaseReason } from './schemas.ts';
import { closeDemand, compensatedKeys, derivedRequestId, isFinal, nodeKey, outcomeOf, settle } from './record.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

/** CycleCloud statuses of a node that is already going or gone: a shutdown would add nothing. */
const NOT_LIVE = new Set(['Terminating', 'Terminated', 'Off', 'Deallocating', 'Deallocated', 'TimedOut']);

/** When the lease or the max lifetime passes, whichever is first (epoch ms); null when neither applies. */
export function lifecycleDueAtMs(entry: LedgerEntry): number | null {
  const r = entry.record;
  if (r.released) return null;
  const times = [r.lease?.expiresAt, r.maxLifetime?.endsAt].filter((t): t is string => t !== undefined).map((t) => Date.parse(t));
  return times.length > 0 ? Math.min(...times) : null;
}

/** Why the entry is due for release at `nowMs` (max lifetime first: it is the harder limit), or null. */
export function dueReason(entry: LedgerEntry, nowMs: number): ReleaseReason | null {
  const r = entry.record;
  if (r.released) return null;
  if (r.maxLifetime && Date.parse(r.maxLifetime.endsAt) <= nowMs) return 'max lifetime';
  if (r.lease && Date.parse(r.lease.expiresAt) <= nowMs) return 'lease expired';
  return null;
}

/** Thrown by {@link renewLease} when the lease cannot be renewed; `message` says why, for a 409. */
export class LeaseRefused extends ScalerError<'LEASE_REFUSED'> {
  override name = 'LeaseRefused';
  constructor(message: string, options?: ErrorOptions) {
    super('LEASE_REFUSED', message, options);
  }
}

/**
 * Moves the lease to `nowMs + seconds` (default: the lease's own length). Refuses a request that
 * has no lease, was released, or whose lease has passed, even if the sweep has not acted yet: a
 * renew after expiry must not win a race it already lost.
 */
export function renewLease(entry: LedgerEntry, seconds: number | undefined, nowMs: number): LedgerEntry {
  const r = entry.record;
  if (r.kind !== 'scale') throw new LeaseRefused(`request "${r.requestId}" is a ${r.kind} request; only scale requests have a lease`);
  if (r.released) throw new LeaseRefused(`request "${r.requestId}" was released at ${r.released.at} (${r.released.reason}); its lease cannot be renewed`);
  if (!r.lease) throw new LeaseRefused(`request "${r.requestId}" has no lease to renew (submit it with "lease": {"seconds": N})`);
  if (Date.parse(r.lease.expiresAt) <= nowMs) throw new LeaseRefused(`the lease of request "${r.requestId}" expired at ${r.lease.expiresAt}; its nodes are being shut down`);
  if (r.maxLifetime && Date.parse(r.maxLifetime.endsAt) <= nowMs) {
    throw new LeaseRefused(`request "${r.requestId}" reached its max lifetime at ${r.maxLifetime.endsAt}; its nodes are being shut down`);
  }
  const next = structuredClone(entry);
  const length = seconds ?? r.lease.seconds;
  next.record.lease = { seconds: length, expiresAt: iso(nowMs + length * 1000) };
  next.record.updatedAt = iso(nowMs);
  return next;
}

/**
 * Marks the entry released (idempotent: the first release stands, with its time and reason). The
 * lease goes from the record; demands still waiting are closed, so nothing more is created.
 */
export function markReleased(entry: LedgerEntry, reason: ReleaseReason, nowMs: number): LedgerEntry {
  if (entry.record.released) return entry;
  let next = structuredClone(entry);
  next.record.released = { at: iso(nowMs), reason };
  delete next.record.lease;
  next.record.updatedAt = iso(nowMs);
  if (!isFinal(next)) {
    for (const d of next.record.demands) {
      if (next.closedDemands?.[d.index] === undefined && d.created < d.requested) next = closeDemand(next, d.index, `${reason}: no more nodes are created`, nowMs);
    }
    next.nextAttemptAtMs = null;
    next = settle(next, nowMs);
  }
  return next;
}

/** Nodes of a released request that are alive and no release round covers yet. */
export function releaseTargets(entry: LedgerEntry): { name: string; id: string | null; key: string }[] {
  if (!entry.record.released) return [];
  const covered = new Set((entry.releases ?? []).flatMap((r) => r.keys));
  const compensated = compensatedKeys(entry);
  return entry.record.nodes
    .filter((n) => {
      const key = nodeKey(n);
      const outcome = outcomeOf(entry, n);
      if (covered.has(key) || compensated.has(key) || compensated.has(n.name)) return false;
      if (outcome === 'gone' || outcome === 'failed' || outcome === 'timed_out') return false;
      return !NOT_LIVE.has(n.status);
    })
    .map((n) => ({ name: n.name, id: n.id, key: nodeKey(n) }));
}

/** The CycleCloud requestId of release round `round`: `<requestId>-rel<round>` (shortened like every derived id). */
export function releaseRequestId(requestId: string, round: number): string {
  return derivedRequestId(requestId, `-rel${round}`);
}

/** Adds a round for `targets` as an intent (before the shutdown is sent). */
export function addReleaseRound(entry: LedgerEntry, targets: { name: string; id: string | null; key: string }[], nowMs: number): { entry: LedgerEntry; round: ReleaseRound } {
  const next = structuredClone(entry);
  const rounds = (next.releases ??= []);
  const number = rounds.length;
  const round: ReleaseRound = {
    round: number,
    cycleCloudRequestId: releaseRequestId(entry.record.requestId, number),
    names: targets.map((t) => t.name),
    nodeIds: Object.fromEntries(targets.flatMap((t) => (t.id ? [[t.name, t.id]] : []))),
    keys: targets.map((t) => t.key),
    state: 'intent',
    atMs: nowMs,
  };
  rounds.push(round);
  next.record.updatedAt = iso(nowMs);
  return { entry: next, round };
}

/** Marks round `number` sent. */
export function releaseRoundSent(entry: LedgerEntry, number: number, nowMs: number): LedgerEntry {
  const next = structuredClone(entry);
  const round = next.releases?.find((r) => r.round === number);
  if (!round || round.state === 'sent') return entry;
  round.state = 'sent';
  next.record.updatedAt = iso(nowMs);
  return next;
}

/**
 * Whether a released request needs nothing more: every round sent, no live node uncovered, and no
 * create that could still add nodes (an unresolved attempt, or a create whose nodes the tracker
 * still follows). Until then its lease row stays, so the sweep comes back.
 */
export function releaseSettled(entry: LedgerEntry): boolean {
  if (!entry.record.released) return false;
  if ((entry.releases ?? []).some((r) => r.state !== 'sent')) return false;
  if (releaseTargets(entry).length > 0) return false;
  if (entry.attempts.some((a) => a.state === 'intent' || a.state === 'unknown')) return false;
  return !entry.record.operations.some((o) => o.state === 'pending' && o.action !== 'terminate');
}
