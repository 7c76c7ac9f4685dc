/**
 * What a request's nodes cost so far (docs/api.md, Cost), computed when the record is read: each node
 * from `startedAt` (its create accepted) to `endedAt` (first seen gone, failed or out of time), or to
 * now while it runs, times its hourly price (machine type, region, spot) / 3600. Pure. Published
 * with `GET /api/scale-requests/{id}?cost=true` only: the plain record must not change while nothing
 * happens to the request (a callback's body equals a later GET).
 */
import type { Prices } from '../platform/prices.ts';
import type { RequestCost, RequestRecord } from './schemas.ts';

/** Seconds a node ran up to `nowMs` (0 without a start). */
export function nodeSeconds(node: { startedAt?: string | undefined; endedAt?: string | undefined }, nowMs: number): number {
  if (!node.startedAt) return 0;
  const start = Date.parse(node.startedAt);
  const end = node.endedAt ? Date.parse(node.endedAt) : nowMs;
  return Math.max(0, (end - start) / 1000);
}

/** The record's cost at `nowMs`; nodes with no price are counted in `unpriced`, not in `amount`. */
export function requestCost(record: Pick<RequestRecord, 'nodes' | 'updatedAt'>, prices: Prices, nowMs: number): RequestCost {
  let amount = 0;
  let seconds = 0;
  const unpriced = new Set<string>();
  for (const node of record.nodes) {
    const s = nodeSeconds(node, nowMs);
    if (s === 0 && !node.startedAt) continue;
    seconds += s;
    const hourly = prices.hourly(node);
    if (hourly === null) unpriced.add(`${node.region ?? '*'}/${node.machineType ?? 'unknown'}`);
    else amount += (s * hourly) / 3600;
  }
  // Once no node runs the cost no longer moves: as of the last end (or the record's last change), so reading it twice gives the same.
  const running = record.nodes.some((n) => n.startedAt && !n.endedAt);
  const ends = record.nodes.flatMap((n) => (n.endedAt ? [n.endedAt] : []));
  const asOf = running ? new Date(nowMs).toISOString() : ends.length > 0 ? ends.sort().at(-1)! : record.updatedAt;
  return { currency: prices.currency, amount: round4(amount), nodeSeconds: Math.round(seconds * 1000) / 1000, asOf, unpriced: [...unpriced].sort() };
}

export const round4 = (x: number): number => Math.round(x * 10_000) / 10_000;
