/**
 * Handing accepted creates to the tracker, and what the run learns back from it: partial gangs the
 * tracker compensated at hand-over, and loose shortfalls noted on the record.
 */
import type { TrackStart } from '../tracking/types.ts';
import type { LedgerEntry, SubmissionAttempt } from '../ledger/types.ts';
import type { ScaleRequest } from '../ledger/schemas.ts';
import { type Ctx, update, bucketKey } from './context.ts';

export const colocatedSet = (request: ScaleRequest, s: SubmissionAttempt['sets'][number]): boolean =>
  s.placementGroupId !== null && s.demands.some((d) => request.demands[d.index]?.colocated === true || request.demands[d.index]?.placementGroupId !== undefined);

/** Starts the tracker for every accepted create (or only `only`) whose operation is still pending. */
export async function startTracking(ctx: Ctx, entry: LedgerEntry, request: ScaleRequest, only?: string): Promise<void> {
  for (const a of entry.attempts) {
    if (a.state !== 'accepted' || (only !== undefined && a.cycleCloudRequestId !== only)) continue;
    const op = entry.record.operations.find((o) => o.cycleCloudRequestId === a.cycleCloudRequestId);
    if (op && op.state !== 'pending') continue;
    const t: TrackStart = {
      cluster: ctx.cluster,
      operationId: a.operationId,
      cycleCloudRequestId: a.cycleCloudRequestId,
      requestId: ctx.requestId,
      action: 'create',
      generation: a.generation,
      ...(entry.traceparent ? { traceparent: entry.traceparent } : {}),
      sets: a.sets.map((s) => ({
        nodearray: s.nodearray,
        machineType: s.machineType,
        placementGroupId: s.placementGroupId,
        count: s.count,
        added: s.added ?? 0,
        colocated: colocatedSet(request, s),
        demands: s.demands,
        ...(s.spot ? { spot: true as const } : {}),
        ...spotFallbackOf(request, s),
      })),
    };
    await ctx.deps.tracker.start(t);
  }
}

/** A spot set's fallback deadline: the shortest `spotFallbackSeconds` (default 300) of its spot-first demands. */
function spotFallbackOf(request: ScaleRequest, s: SubmissionAttempt['sets'][number]): { spotFallbackMs?: number } {
  if (!s.spot) return {};
  const seconds = s.demands.flatMap((d) =>
    request.demands[d.index]?.capacity === 'spot-first' ? [request.demands[d.index]!.spotFallbackSeconds ?? DEFAULT_SPOT_FALLBACK_SECONDS] : [],
  );
  return seconds.length > 0 ? { spotFallbackMs: Math.min(...seconds) * 1000 } : {};
}

/** `spotFallbackSeconds` when a spot-first demand names none. */
export const DEFAULT_SPOT_FALLBACK_SECONDS = 300;

export const gangOf = (c: { placementGroupId: string | null; demandIndex: number }): string => `${c.placementGroupId}\u0000${c.demandIndex}`;

/**
 * Partial gangs the tracker compensated since `known` was taken (those with CycleCloud's `added`):
 * their failure is remembered for everyone else, but this run's re-plan may still try another
 * group of the same bucket (`Ctx.gangFailures`).
 */
export function rememberGangFailures(ctx: Ctx, entry: LedgerEntry, known: Set<string>): void {
  for (const c of entry.compensations ?? []) {
    if (c.added === undefined || known.has(gangOf(c))) continue;
    known.add(gangOf(c));
    const s = entry.attempts.flatMap((a) => a.sets).find((x) => x.placementGroupId === c.placementGroupId && x.demands.some((d) => d.index === c.demandIndex));
    if (s) ctx.gangFailures.add(bucketKey(s.nodearray, s.machineType));
  }
}

/**
 * What the create just accepted fell short of. Loose sets: a reason on their demands and a capacity
 * failure; their remainder waits and is retried. Colocated sets were compensated by the tracker
 * (`src/tracking/partial-gangs.ts`) when it took the create over. Returns the entry as the ledger has it now.
 */
export async function noteShortfalls(ctx: Ctx, request: ScaleRequest, cycleCloudRequestId: string): Promise<LedgerEntry> {
  const { deps } = ctx;
  let current = (await deps.ledger.get(ctx.requestId))!;
  const a = current.attempts.find((x) => x.cycleCloudRequestId === cycleCloudRequestId && x.state === 'accepted');
  for (const s of a?.sets ?? []) {
    const added = s.added ?? 0;
    if (added >= s.count) continue;
    if (colocatedSet(request, s)) continue; // compensated by the tracker (rememberGangFailures)
    const said = s.message ? `: ${s.message}` : '';
    const reason = `CycleCloud added ${added} of ${s.count} nodes on ${s.nodearray}/${s.machineType}${said}; the rest waits and is retried`;
    await deps.capacity.recordFailure(
      { cluster: ctx.cluster, nodearray: s.nodearray, machineType: s.machineType, reason: `CycleCloud added ${added} of ${s.count}${said}`, failedAtMs: deps.now() },
      deps.now(),
    );
    current = await update(ctx, (e) => {
      for (const d of s.demands) if (e.record.demands[d.index]) e.record.demands[d.index]!.reason = reason;
    });
  }
  return current;
}
