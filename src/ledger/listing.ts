/**
 * The request list: one small summary row per request in the ledger's table, keyed by the day and
 * time it was created, so "the newest requests", "the newest failed ones on cluster hpc" and "what
 * happened in the last six hours" are key-range reads of one or a few partitions, never a scan of
 * every record (entry rows are keyed by requestId, which has no order worth reading by).
 *
 * Layout (in `names.requestsTable`, beside the ledger's entry and open-index rows):
 * - PartitionKey = `~list~<YYYY-MM-DD>` (UTC day of `createdAt`; `~` cannot start a requestId, and
 *   `~list~` sorts before the open index's `~open~`),
 * - RowKey = `<13-digit 9999999999999 − createdAtMs>~<requestId>`: newest first inside a day.
 * The row carries what the console's table shows (state, cluster, counts, job ids, reason) and the
 * request's transitions (state and ready-node changes with their time) for its timeline and the
 * trends. It is written by the ledger after the entry, only when the summary changes; a crash in
 * between leaves it one step behind until the entry's next change (the entry stays the truth: the
 * request page reads the record).
 *
 * Pure helpers here (summary, transitions, trends) take time as an argument; {@link RequestListing}
 * does the table reads and writes.
 */
import type { TableClient } from '@azure/data-tables';
import type { LedgerEntry, Transition } from './types.ts';
import type { RequestRecord, RequestState } from './schemas.ts';
import { FINAL_STATES } from './schemas.ts';

export type { Transition } from './types.ts';

/** One request as the list shows it. */
export interface RequestSummary {
  requestId: string;
  cluster: string;
  kind: 'scale' | 'terminate' | 'start';
  state: RequestState;
  /** Sum over demands. */
  requested: number;
  ready: number;
  demands: number;
  /** The demands' job ids, distinct, in demand order. */
  jobIds: string[];
  reason: string | null;
  createdAt: string;
  updatedAt: string;
  /** When the request reached its final state; null while open. */
  finalAt: string | null;
  /** When its lease passes unless renewed (null: no lease, or released). */
  leaseExpiresAt: string | null;
  /** Why the scaler shut its nodes down of its own (`lease expired`, `released`, `max lifetime`); null when it did not. */
  released: string | null;
  /** Nodes created in spot buckets, and nodes Azure evicted. */
  spot: number;
  evicted: number;
}

export interface ListRequestsQuery {
  /** Any of these states (empty or absent = all). */
  states?: readonly RequestState[];
  cluster?: string;
  /** Page size, 1–200. Default 50. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Oldest creation time listed (epoch ms). Default: 7 days before now. */
  sinceMs?: number;
}

export interface RequestPage {
  items: RequestSummary[];
  /** Pass back as `cursor` for the next (older) page; null when this page is the last. */
  nextCursor: string | null;
}

/** Per time bucket: what the trends view draws. */
export interface TrendBucket {
  /** Start of the bucket (epoch ms). */
  atMs: number;
  /** Requests created in the bucket. */
  requests: number;
  /** Requests that reached `fulfilled` in the bucket. */
  fulfilled: number;
  /** Accept → fulfilled of those, in seconds; null when none. */
  p50Seconds: number | null;
  p95Seconds: number | null;
  /** Nodes that became ready in the bucket. */
  nodesReady: number;
}

export interface Trends {
  fromMs: number;
  toMs: number;
  bucketSeconds: number;
  buckets: TrendBucket[];
  totals: { requests: number; fulfilled: number; p50Seconds: number | null; p95Seconds: number | null; nodesReady: number };
}

/** What trends need of a row (the stored columns). */
export interface TrendRow {
  createdAtMs: number;
  transitions: Transition[];
}

export const LIST_PARTITION_PREFIX = '~list~';
const INVERT_BASE = 9_999_999_999_999;
const DAY_MS = 86_400_000;
/** Transitions kept per request: state changes always, ready steps merged beyond this. */
export const MAX_TRANSITIONS = 64;
const MAX_REASON = 400;
const MAX_JOB_IDS = 50;
const DEFAULT_WINDOW_MS = 7 * DAY_MS;

/** `~list~2026-11-30` for a time in that UTC day. */
export function listPartition(atMs: number): string {
  return `${LIST_PARTITION_PREFIX}${new Date(atMs).toISOString().slice(0, 10)}`;
}

/** Inverted, fixed-width time: newer sorts first. */
export function invertedTime(atMs: number): string {
  return String(INVERT_BASE - Math.max(0, Math.floor(atMs))).padStart(13, '0');
}

export function listRowKey(createdAtMs: number, requestId: string): string {
  return `${invertedTime(createdAtMs)}~${requestId}`;
}

/** The creation time a row key holds. */
function rowKeyTime(rowKey: string): number {
  return INVERT_BASE - Number(rowKey.slice(0, 13));
}

const totalReady = (r: RequestRecord): number => r.demands.reduce((s, d) => s + d.ready, 0);
const timeOf = (iso: string, fallback: number): number => {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? fallback : ms;
};

/**
 * The transitions after a write: `previous` (null for a new entry) → `next`. Appends one when the
 * state or the number of ready nodes changed, at `next.record.updatedAt` (the writer's clock).
 * Bounded: beyond {@link MAX_TRANSITIONS}, the oldest ready-only steps are merged away (state
 * changes are kept).
 */
export function nextTransitions(previous: LedgerEntry | null, next: LedgerEntry, nowMs: number): Transition[] {
  const list = [...(previous?.transitions ?? next.transitions ?? [])];
  const state = next.record.state;
  const ready = totalReady(next.record);
  if (list.length === 0) {
    // A new entry, or one written before transitions existed: its first known point is its creation.
    const first = (previous ?? next).record;
    list.push({ state: first.state, ready: totalReady(first), atMs: timeOf(next.record.createdAt, nowMs) });
  }
  const tail = list.at(-1)!;
  if (tail.state !== state || tail.ready !== ready) list.push({ state, ready, atMs: timeOf(next.record.updatedAt, nowMs) });
  while (list.length > MAX_TRANSITIONS) {
    // Drop the oldest step that changed only the ready count (never the first or a state change).
    const i = list.findIndex((t, k) => k > 0 && k < list.length - 1 && t.state === list[k - 1]!.state);
    if (i < 0) break;
    list.splice(i, 1);
  }
  return list;
}

/** The summary of an entry. */
export function summaryOf(entry: LedgerEntry): RequestSummary {
  const r = entry.record;
  const jobIds = [...new Set(r.demands.flatMap((d) => (d.jobId === undefined ? [] : [d.jobId])))].slice(0, MAX_JOB_IDS);
  const finalAt = FINAL_STATES.has(r.state) ? [...(entry.transitions ?? [])].reverse().find((t) => t.state === r.state)?.atMs : undefined;
  return {
    requestId: r.requestId,
    cluster: r.cluster,
    kind: r.kind,
    state: r.state,
    requested: r.demands.reduce((s, d) => s + d.requested, 0),
    ready: totalReady(r),
    demands: r.demands.length,
    jobIds,
    reason: r.reason === null ? null : r.reason.slice(0, MAX_REASON),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    finalAt: FINAL_STATES.has(r.state) ? (finalAt !== undefined ? new Date(finalAt).toISOString() : r.updatedAt) : null,
    leaseExpiresAt: r.lease?.expiresAt ?? null,
    released: r.released?.reason ?? null,
    spot: r.nodes.filter((n) => n.spot).length,
    evicted: r.nodes.filter((n) => n.status === 'Evicted').length,
  };
}

export interface ListRow {
  partitionKey: string;
  rowKey: string;
  requestId: string;
  cluster: string;
  kind: string;
  state: string;
  requested: number;
  ready: number;
  demands: number;
  jobIds: string;
  reason: string;
  createdAtMs: number;
  updatedAtMs: number;
  finalAtMs: number;
  transitions: string;
  /** -1: no lease. */
  leaseExpiresAtMs: number;
  released: string;
  spot: number;
  evicted: number;
}

/** The list row of an entry (exported for seeding in batches: benches). */
export function rowOf(entry: LedgerEntry): ListRow {
  const s = summaryOf(entry);
  const createdAtMs = timeOf(s.createdAt, 0);
  return {
    partitionKey: listPartition(createdAtMs),
    rowKey: listRowKey(createdAtMs, s.requestId),
    requestId: s.requestId,
    cluster: s.cluster,
    kind: s.kind,
    state: s.state,
    requested: s.requested,
    ready: s.ready,
    demands: s.demands,
    // Job ids are free text: a JSON array keeps commas inside ids apart.
    jobIds: JSON.stringify(s.jobIds),
    reason: s.reason ?? '',
    createdAtMs,
    updatedAtMs: timeOf(s.updatedAt, createdAtMs),
    finalAtMs: s.finalAt === null ? -1 : timeOf(s.finalAt, -1),
    transitions: JSON.stringify(entry.transitions ?? []),
    leaseExpiresAtMs: s.leaseExpiresAt === null ? -1 : timeOf(s.leaseExpiresAt, -1),
    released: s.released ?? '',
    spot: s.spot,
    evicted: s.evicted,
  };
}

function summaryOfRow(row: Partial<ListRow>): RequestSummary {
  const createdAtMs = Number(row.createdAtMs ?? 0);
  const finalAtMs = Number(row.finalAtMs ?? -1);
  let jobIds: string[] = [];
  try {
    jobIds = JSON.parse(String(row.jobIds ?? '[]')) as string[];
  } catch {
    jobIds = [];
  }
  return {
    requestId: String(row.requestId ?? ''),
    cluster: String(row.cluster ?? ''),
    kind: row.kind === 'terminate' || row.kind === 'start' ? row.kind : 'scale',
    state: String(row.state ?? 'queued') as RequestState,
    requested: Number(row.requested ?? 0),
    ready: Number(row.ready ?? 0),
    demands: Number(row.demands ?? 0),
    jobIds,
    reason: row.reason ? String(row.reason) : null,
    createdAt: new Date(createdAtMs).toISOString(),
    updatedAt: new Date(Number(row.updatedAtMs ?? createdAtMs)).toISOString(),
    finalAt: finalAtMs >= 0 ? new Date(finalAtMs).toISOString() : null,
    leaseExpiresAt: Number(row.leaseExpiresAtMs ?? -1) >= 0 ? new Date(Number(row.leaseExpiresAtMs)).toISOString() : null,
    released: row.released ? String(row.released) : null,
    spot: Number(row.spot ?? 0),
    evicted: Number(row.evicted ?? 0),
  };
}

/** True when the list row would change: what the list shows, not every `updatedAt` tick. */
export function summaryChanged(previous: LedgerEntry | null, next: LedgerEntry): boolean {
  if (!previous) return true;
  const strip = (e: LedgerEntry) => {
    const { updatedAtMs: _u, ...rest } = rowOf(e);
    return JSON.stringify(rest);
  };
  return strip(previous) !== strip(next);
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;
/** What a summary needs: every column but the transitions (the bulk of a row). */
const SUMMARY_COLUMNS = [
  'RowKey',
  'requestId',
  'cluster',
  'kind',
  'state',
  'requested',
  'ready',
  'demands',
  'jobIds',
  'reason',
  'createdAtMs',
  'updatedAtMs',
  'finalAtMs',
  'leaseExpiresAtMs',
  'released',
  'spot',
  'evicted',
];

/** Splits a time window into the UTC days it touches, newest first. */
function daysBetween(fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  const first = Math.floor(fromMs / DAY_MS) * DAY_MS;
  for (let day = Math.floor(toMs / DAY_MS) * DAY_MS; day >= first; day -= DAY_MS) out.push(day);
  return out;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Trends over `[fromMs, toMs)` in buckets of `bucketMs`: requests created, requests fulfilled with
 * their accept → fulfilled time (p50/p95, nearest rank), and nodes that became ready.
 */
export function trendsOf(rows: readonly TrendRow[], fromMs: number, toMs: number, bucketMs: number): Trends {
  const n = Math.max(1, Math.ceil((toMs - fromMs) / bucketMs));
  const buckets: (TrendBucket & { latencies: number[] })[] = Array.from({ length: n }, (_, i) => ({
    atMs: fromMs + i * bucketMs,
    requests: 0,
    fulfilled: 0,
    p50Seconds: null,
    p95Seconds: null,
    nodesReady: 0,
    latencies: [],
  }));
  const at = (ms: number) => (ms >= fromMs && ms < toMs ? buckets[Math.floor((ms - fromMs) / bucketMs)] : undefined);
  const all: number[] = [];
  for (const row of rows) {
    const created = at(row.createdAtMs);
    if (created) created.requests++;
    let ready = 0;
    for (const t of row.transitions) {
      if (t.ready > ready) {
        const b = at(t.atMs);
        if (b) b.nodesReady += t.ready - ready;
      }
      ready = t.ready;
    }
    const done = row.transitions.find((t) => t.state === 'fulfilled');
    const b = done ? at(done.atMs) : undefined;
    if (done && b) {
      const seconds = Math.max(0, (done.atMs - row.createdAtMs) / 1000);
      b.fulfilled++;
      b.latencies.push(seconds);
      all.push(seconds);
    }
  }
  for (const b of buckets) {
    b.latencies.sort((x, y) => x - y);
    b.p50Seconds = percentile(b.latencies, 50);
    b.p95Seconds = percentile(b.latencies, 95);
  }
  all.sort((x, y) => x - y);
  return {
    fromMs,
    toMs,
    bucketSeconds: bucketMs / 1000,
    buckets: buckets.map(({ latencies: _l, ...b }) => b),
    totals: {
      requests: buckets.reduce((s, b) => s + b.requests, 0),
      fulfilled: all.length,
      p50Seconds: percentile(all, 50),
      p95Seconds: percentile(all, 95),
      nodesReady: buckets.reduce((s, b) => s + b.nodesReady, 0),
    },
  };
}

/** Reads and writes the list rows of one requests table. */
export class RequestListing {
  readonly #table: TableClient;
  readonly #now: () => number;
  readonly #entry: (requestId: string) => Promise<LedgerEntry | null>;

  /** `entry` reads one ledger entry (search by id prefix reads the matches' records). */
  constructor(table: TableClient, now: () => number, entry: (requestId: string) => Promise<LedgerEntry | null>) {
    this.#table = table;
    this.#now = now;
    this.#entry = entry;
  }

  /** One ledger entry (the truth behind a row), or null. */
  entry(requestId: string): Promise<LedgerEntry | null> {
    return this.#entry(requestId);
  }

  /** Writes the entry's row (replacing the previous version). */
  async write(entry: LedgerEntry): Promise<void> {
    await this.#table.upsertEntity(rowOf(entry), 'Replace');
  }

  /**
   * A page of requests, newest first, created since `sinceMs`, filtered by state and cluster in the
   * table query. Reads the day partitions from the cursor's (or today's) back to `sinceMs`'s day.
   */
  async list(query: ListRequestsQuery = {}): Promise<RequestPage> {
    const limit = Math.min(200, Math.max(1, Math.floor(query.limit ?? 50)));
    const nowMs = this.#now();
    const sinceMs = query.sinceMs ?? nowMs - DEFAULT_WINDOW_MS;
    const after = query.cursor && /^\d{13}~/.test(query.cursor) ? query.cursor : undefined;
    const startMs = after ? rowKeyTime(after) : nowMs + DAY_MS; // tomorrow: a clock a little ahead
    const clauses: string[] = [`RowKey lt ${quote(`${invertedTime(sinceMs - 1)}`)}`];
    if (query.cluster) clauses.push(`cluster eq ${quote(query.cluster)}`);
    if (query.states?.length) clauses.push(`(${query.states.map((s) => `state eq ${quote(s)}`).join(' or ')})`);
    const items: RequestSummary[] = [];
    let last: string | null = null;
    for (const day of daysBetween(sinceMs, startMs)) {
      const pk = listPartition(day);
      const filter = [`PartitionKey eq ${quote(pk)}`, ...(after && pk === listPartition(startMs) ? [`RowKey gt ${quote(after)}`] : []), ...clauses].join(' and ');
      for await (const page of this.#table.listEntities<ListRow>({ queryOptions: { filter, select: SUMMARY_COLUMNS } }).byPage({ maxPageSize: limit + 1 })) {
        for (const row of page) {
          if (items.length === limit) return { items, nextCursor: last };
          items.push(summaryOfRow(row));
          last = row.rowKey;
        }
      }
    }
    return { items, nextCursor: null };
  }

  /**
   * Requests whose id starts with `text` (a key range over the ledger's entry rows) or whose demands
   * carry the job id `text` (the list rows of the last `windowMs`), newest first, at most `limit`.
   */
  async search(text: string, options: { limit?: number; windowMs?: number } = {}): Promise<RequestSummary[]> {
    const limit = Math.min(200, Math.max(1, options.limit ?? 50));
    const found = new Map<string, RequestSummary>();
    // Ids use [A-Za-z0-9._:-], all below `~`: the range [text, text~) is every id with that prefix.
    if (/^[A-Za-z0-9._:-]{1,128}$/.test(text)) {
      const ids: string[] = [];
      const filter = `PartitionKey ge ${quote(text)} and PartitionKey lt ${quote(`${text}~`)} and RowKey eq 'r'`;
      for await (const row of this.#table.listEntities({ queryOptions: { filter, select: ['PartitionKey'] } })) {
        ids.push(row.partitionKey!);
        if (ids.length >= limit) break;
      }
      for (const entry of await Promise.all(ids.map((id) => this.#entry(id)))) if (entry) found.set(entry.record.requestId, summaryOf(entry));
    }
    const nowMs = this.#now();
    const fromMs = nowMs - (options.windowMs ?? DEFAULT_WINDOW_MS);
    const needle = JSON.stringify(text);
    for (const day of daysBetween(fromMs, nowMs + DAY_MS)) {
      const filter = `PartitionKey eq ${quote(listPartition(day))}`;
      for await (const row of this.#table.listEntities<ListRow>({ queryOptions: { filter, select: SUMMARY_COLUMNS } })) {
        if (found.size >= limit) break;
        // jobIds is a JSON array: match one whole id, not a substring.
        if (!found.has(row.requestId) && typeof row.jobIds === 'string' && (row.jobIds.includes(`[${needle}`) || row.jobIds.includes(`,${needle}`))) {
          found.set(row.requestId, summaryOfRow(row));
        }
      }
    }
    return [...found.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0)).slice(0, limit);
  }

  /** The transitions of the requests created in `[fromMs, toMs)`, for {@link trendsOf}. */
  async trendRows(fromMs: number, toMs: number): Promise<TrendRow[]> {
    const out: TrendRow[] = [];
    for (const day of daysBetween(fromMs, toMs)) {
      const filter = `PartitionKey eq ${quote(listPartition(day))} and RowKey lt ${quote(invertedTime(fromMs - 1))} and RowKey gt ${quote(invertedTime(toMs))}`;
      for await (const row of this.#table.listEntities<ListRow>({ queryOptions: { filter, select: ['createdAtMs', 'transitions'] } })) {
        let transitions: Transition[] = [];
        try {
          transitions = JSON.parse(String(row.transitions ?? '[]')) as Transition[];
        } catch {
          transitions = [];
        }
        out.push({ createdAtMs: Number(row.createdAtMs ?? 0), transitions });
      }
    }
    return out;
  }
}
