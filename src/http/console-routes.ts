/**
 * The operator console (`GET /api/console`) and the read routes it draws from: the request list,
 * a request's timeline, a cluster's capacity, trends and counters. The console reads nothing the
 * API does not offer to any caller with the function key.
 *
 * `routes.ts` appends {@link consoleRoutes} to `ROUTES` (so the Functions registration and the
 * OpenAPI document include them) and hands in its shared helpers; this file imports only types
 * from it, so there is no import cycle.
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import type { z } from 'zod';
import { ClusterName, RequestId, RequestState, type RequestState as State } from '../ledger/schemas.ts';
import { trendsOf, type ListRequestsQuery } from '../ledger/listing.ts';
import type { CapacityBackoff, InFlightAllocation } from '../planning/types.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { Logger } from '../platform/log.ts';
import type { HttpDeps, SnapshotHealth } from './deps.ts';
import type { RouteDefinition, RouteHandler } from './routes.ts';
import { json, problem, validationProblem } from './problem.ts';
import { ClusterCapacity, Counters, RequestList, RequestTimeline, TrendsResponse } from './console-schemas.ts';
import { consolePage } from '../console/page.ts';

/** What `routes.ts` shares with these routes (its own helpers, passed in to avoid an import cycle). */
export interface ConsoleRouteHelpers {
  guarded(route: string, impl: (deps: HttpDeps, request: HttpRequest, log: Logger) => Promise<HttpResponseInit>): RouteHandler;
  latestOrLive(deps: HttpDeps, cluster: string, log: Logger): Promise<ClusterSnapshot | null>;
  isStale(deps: HttpDeps, health: SnapshotHealth | null, ageSeconds: number | null): boolean;
  /** Passes an answer through its schema (extra keys dropped), logging drift instead of failing. */
  shape<T>(schema: z.ZodType<T>, value: unknown, log: Logger, what: string): T;
}

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
/** How far back a trend looks for requests that finished inside the window (the request deadline's order). */
const TRENDS_LOOKBACK_MS = 2 * HOUR_MS;

type Field = { path: string; message: string };
type Parsed<T> = { ok: true; value: T } | { ok: false; errors: Field[] };

function intParam(url: URL, name: string, min: number, max: number, errors: Field[]): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    errors.push({ path: name, message: `must be a whole number from ${min} to ${max}` });
    return undefined;
  }
  return n;
}

/** The query of `GET /api/scale-requests`: `state` (comma list), `cluster`, `q`, `limit`, `cursor`, `hours`. */
export function parseListQuery(url: URL, nowMs: number): Parsed<{ query: ListRequestsQuery; q?: string; leased?: true }> {
  const errors: Field[] = [];
  const states: State[] = [];
  for (const s of (url.searchParams.get('state') ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const parsed = RequestState.safeParse(s);
    if (parsed.success) states.push(parsed.data);
    else errors.push({ path: 'state', message: `"${s.slice(0, 40)}" is not a state; use ${RequestState.options.join(', ')}` });
  }
  const clusterRaw = url.searchParams.get('cluster');
  const cluster = clusterRaw ? ClusterName.safeParse(clusterRaw) : undefined;
  if (cluster && !cluster.success) errors.push({ path: 'cluster', message: cluster.error.issues[0]?.message ?? 'invalid' });
  const limit = intParam(url, 'limit', 1, 200, errors);
  const hours = intParam(url, 'hours', 1, 24 * 31, errors);
  const cursor = url.searchParams.get('cursor') ?? undefined;
  if (cursor !== undefined && !/^\d{13}~[A-Za-z0-9._:-]{1,128}$/.test(cursor))
    errors.push({ path: 'cursor', message: 'is not a cursor this API gave (use nextCursor of the previous page)' });
  const q = url.searchParams.get('q')?.trim() || undefined;
  if (q !== undefined && q.length > 128) errors.push({ path: 'q', message: 'must be at most 128 characters' });
  const leasedRaw = url.searchParams.get('leased');
  if (leasedRaw !== null && leasedRaw !== 'true' && leasedRaw !== 'false') errors.push({ path: 'leased', message: 'must be true or false' });
  if (errors.length) return { ok: false, errors };
  return {
    ok: true,
    value: {
      query: {
        ...(states.length ? { states } : {}),
        ...(cluster?.success ? { cluster: cluster.data } : {}),
        ...(limit !== undefined ? { limit } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
        ...(hours !== undefined ? { sinceMs: nowMs - hours * HOUR_MS } : {}),
      },
      ...(q !== undefined ? { q } : {}),
      ...(leasedRaw === 'true' ? { leased: true as const } : {}),
    },
  };
}

const sameType = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/**
 * A cluster's capacity as the console draws it: the snapshot's buckets with what the scaler has
 * asked for since the snapshot (`inFlight`, also per placement group) and the capacity-failure
 * backoff in force, if any.
 */
export function capacityView(
  snapshot: ClusterSnapshot,
  inFlight: readonly InFlightAllocation[],
  backoffs: readonly CapacityBackoff[],
  nowMs: number,
  o: { stale: boolean; paused: boolean },
): ClusterCapacity {
  const takenAtMs = Date.parse(snapshot.takenAt);
  return {
    cluster: snapshot.cluster,
    takenAt: snapshot.takenAt,
    ageSeconds: Number.isNaN(takenAtMs) ? 0 : Math.max(0, Math.floor((nowMs - takenAtMs) / 1000)),
    stale: o.stale,
    paused: o.paused,
    nodearrays: snapshot.nodearrays.map((na) => ({
      name: na.name,
      maxCount: na.maxCount,
      buckets: na.buckets.map((b) => {
        const mine = inFlight.filter((a) => a.nodearray === na.name && sameType(a.machineType, b.machineType));
        const groups = new Map(b.placementGroups.map((g) => [g.name, { name: g.name, activeCount: g.activeCount, inFlight: 0 }]));
        for (const a of mine) {
          if (!a.placementGroupId) continue;
          const g = groups.get(a.placementGroupId) ?? { name: a.placementGroupId, activeCount: 0, inFlight: 0 };
          g.inFlight += a.count;
          groups.set(a.placementGroupId, g);
        }
        const backoff = backoffs.find((x) => x.nodearray === na.name && sameType(x.machineType, b.machineType) && x.untilMs > nowMs);
        return {
          bucketId: b.bucketId,
          machineType: b.machineType,
          vcpuCount: b.vcpuCount,
          memoryGB: b.memoryGB,
          infiniband: b.infiniband,
          gpuCount: b.gpuCount ?? 0,
          valid: b.valid,
          maxCount: b.maxCount,
          activeCount: b.activeCount,
          availableCount: b.availableCount,
          quotaCount: b.quotaCount,
          inFlight: mine.reduce((s, a) => s + a.count, 0),
          maxPlacementGroupSize: b.maxPlacementGroupSize,
          placementGroups: [...groups.values()],
          spot: b.spot === true,
          backoff: backoff ? { until: new Date(backoff.untilMs).toISOString(), secondsLeft: Math.ceil((backoff.untilMs - nowMs) / 1000), reason: backoff.reason } : null,
        };
      }),
    })),
  };
}

/** Bucket width for a trend window: at most about 180 points. */
export function trendBucketMs(hours: number): number {
  if (hours <= 3) return MINUTE_MS;
  if (hours <= 15) return 5 * MINUTE_MS;
  return 15 * MINUTE_MS;
}

const noListing = () => problem(404, 'HTTP_NOT_FOUND', 'this deployment keeps no request list');

/** The console routes and their read routes, as `ROUTES` entries. */
export function consoleRoutes(h: ConsoleRouteHelpers): RouteDefinition[] {
  const shaped = h.shape;
  const listRequests = h.guarded('scale-requests-list', async (deps, request, log) => {
    const parsed = parseListQuery(new URL(request.url), deps.now());
    if (!parsed.ok) return validationProblem(parsed.errors);
    if (!deps.requests) return noListing();
    const { query, q, leased } = parsed.value;
    if (leased) {
      // Leased requests, the soonest to expire (or already due) first: from the lease index, not the day list.
      if (!deps.leases?.soonest) return problem(404, 'HTTP_NOT_FOUND', 'this deployment tracks no leases');
      const states = new Set(query.states ?? []);
      const items = (await deps.leases.soonest(query.limit ?? 50)).filter((s) => (states.size === 0 || states.has(s.state)) && (!query.cluster || s.cluster === query.cluster));
      return json(200, shaped(RequestList, { items, nextCursor: null }, log, 'request list'));
    }
    if (q === undefined) return json(200, shaped(RequestList, await deps.requests.list(query), log, 'request list'));
    const states = new Set(query.states ?? []);
    const found = await deps.requests.search(q, { limit: query.limit ?? 50, ...(query.sinceMs !== undefined ? { windowMs: deps.now() - query.sinceMs } : {}) });
    const items = found.filter((s) => (states.size === 0 || states.has(s.state)) && (!query.cluster || s.cluster === query.cluster));
    return json(200, shaped(RequestList, { items, nextCursor: null }, log, 'request list'));
  });

  const requestTimeline = h.guarded('scale-request-timeline', async (deps, request, log) => {
    const id = RequestId.safeParse(request.params.requestId ?? '');
    if (!id.success) return validationProblem([{ path: 'requestId', message: id.error.issues[0]?.message ?? 'invalid' }]);
    if (!deps.requests) return noListing();
    const entry = await deps.requests.entry(id.data);
    if (!entry) return problem(404, 'HTTP_NOT_FOUND', `no request with requestId "${id.data}"`);
    const r = entry.record;
    const iso = (ms: number) => new Date(ms).toISOString();
    const known = entry.transitions?.length ? entry.transitions : [{ state: r.state, ready: r.demands.reduce((s, d) => s + d.ready, 0), atMs: Date.parse(r.createdAt) || 0 }];
    return json(
      200,
      shaped(
        RequestTimeline,
        {
          requestId: r.requestId,
          state: r.state,
          createdAt: r.createdAt,
          transitions: known.map((t) => ({ state: t.state, ready: t.ready, at: iso(t.atMs) })),
          attempts: entry.attempts.map((a) => ({
            cycleCloudRequestId: a.cycleCloudRequestId,
            state: a.state,
            at: iso(a.submittedAtMs),
            nodes: a.sets.reduce((s, x) => s + x.count, 0),
          })),
          compensations: (entry.compensations ?? []).map((c) => ({
            demand: c.demandIndex,
            placementGroupId: c.placementGroupId,
            nodes: c.nodeNames.length,
            reason: c.reason,
            at: iso(c.atMs),
          })),
        },
        log,
        'timeline',
      ),
    );
  });

  const clusterCapacity = h.guarded('cluster-capacity', async (deps, request, log) => {
    const name = ClusterName.safeParse(request.params.cluster ?? '');
    if (!name.success) return validationProblem([{ path: 'cluster', message: name.error.issues[0]?.message ?? 'invalid' }]);
    const snapshot = await h.latestOrLive(deps, name.data, log);
    if (!snapshot) return problem(404, 'HTTP_NOT_FOUND', `unknown cluster "${name.data}": no snapshot has been taken of it`);
    const nowMs = deps.now();
    const takenAtMs = Date.parse(snapshot.takenAt);
    const [inFlight, backoffs, paused, health] = await Promise.all([
      deps.ledger.inFlight(snapshot.cluster, Number.isNaN(takenAtMs) ? 0 : takenAtMs),
      deps.capacity.active(snapshot.cluster, nowMs),
      deps.state.isPaused(),
      deps.snapshots.health(snapshot.cluster),
    ]);
    const ageSeconds = Number.isNaN(takenAtMs) ? null : Math.max(0, Math.floor((nowMs - takenAtMs) / 1000));
    const stale = h.isStale(deps, health ?? { takenAt: snapshot.takenAt, ageSeconds: null, consecutiveFailures: 0, stale: false }, ageSeconds);
    return json(200, shaped(ClusterCapacity, capacityView(snapshot, inFlight, backoffs, nowMs, { stale, paused }), log, 'cluster capacity'));
  });

  const trends = h.guarded('trends', async (deps, request, log) => {
    const errors: Field[] = [];
    const hours = intParam(new URL(request.url), 'hours', 1, 48, errors) ?? 6;
    if (errors.length) return validationProblem(errors);
    if (!deps.requests) return noListing();
    const bucketMs = trendBucketMs(hours);
    const nowMs = deps.now();
    const toMs = Math.ceil((nowMs + 1) / bucketMs) * bucketMs;
    const fromMs = toMs - Math.ceil((hours * HOUR_MS) / bucketMs) * bucketMs;
    const rows = await deps.requests.trendRows(fromMs - TRENDS_LOOKBACK_MS, toMs);
    return json(200, shaped(TrendsResponse, trendsOf(rows, fromMs, toMs, bucketMs), log, 'trends'));
  });

  const counters = h.guarded('counters', async (deps) => json(200, { counters: await deps.state.counters() }));

  const metricsText = h.guarded('metrics', async (deps) => {
    if (!deps.metricsText) return problem(404, 'HTTP_NOT_FOUND', 'metrics are not collected on this host');
    return { status: 200, headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' }, body: await deps.metricsText() };
  });

  const consoleHtml = h.guarded('console', async (_deps, request) => consolePage(request.headers.get('accept-encoding') ?? ''));

  return [
    {
      name: 'scaleRequestsList',
      methods: ['GET'],
      route: 'scale-requests',
      authLevel: 'function',
      summary: 'A page of requests, newest first, filtered by state and cluster, or found by request id prefix or job id',
      description:
        'Reads the request list (one row per request by creation day), not every record. Without `q`: newest first, `limit` per page, `nextCursor` for the next page. With `q`: requests whose id starts with `q` or whose demands carry job id `q`, within the window.',
      responseSchema: RequestList,
      problemStatuses: [400, 404],
      query: {
        state: { description: `Comma-separated states to keep (${RequestState.options.join(', ')})`, schema: { type: 'string' } },
        cluster: { description: 'Only requests for this cluster', schema: { type: 'string' } },
        q: { description: 'Request id prefix or exact job id', schema: { type: 'string', maxLength: 128 } },
        limit: { description: 'Page size (default 50)', schema: { type: 'integer', minimum: 1, maximum: 200 } },
        cursor: { description: '`nextCursor` of the previous page', schema: { type: 'string' } },
        hours: { description: 'Only requests created in the last N hours (default 168)', schema: { type: 'integer', minimum: 1, maximum: 744 } },
        leased: {
          description: '`true`: only requests with a lease, lifetime or unfinished release, the soonest to expire first (one page)',
          schema: { type: 'string', enum: ['true', 'false'] },
        },
      },
      handler: listRequests,
    },
    {
      name: 'scaleRequestsTimeline',
      methods: ['GET'],
      route: 'scale-requests/{requestId}/timeline',
      authLevel: 'function',
      summary: 'How a request got where it is: state and ready-node changes, CycleCloud creates and compensations, with times',
      responseSchema: RequestTimeline,
      problemStatuses: [400, 404],
      params: { requestId: "The caller's requestId" },
      handler: requestTimeline,
    },
    {
      name: 'clusterCapacity',
      methods: ['GET'],
      route: 'clusters/{cluster}/capacity',
      authLevel: 'function',
      summary: 'Per bucket: used, in flight, available, quota; placement groups and their fill; capacity backoffs',
      description: '`inFlight` counts nodes the scaler asked for since the snapshot was taken (the snapshot cannot show them yet).',
      responseSchema: ClusterCapacity,
      problemStatuses: [400, 404],
      params: { cluster: 'CycleCloud cluster name' },
      handler: clusterCapacity,
    },
    {
      name: 'trends',
      methods: ['GET'],
      route: 'trends',
      authLevel: 'function',
      summary: 'Requests, accept → fulfilled time (p50/p95) and nodes ready, per time bucket over the last hours',
      responseSchema: TrendsResponse,
      problemStatuses: [400, 404],
      query: { hours: { description: 'Window in hours (default 6); buckets are 1, 5 or 15 minutes wide', schema: { type: 'integer', minimum: 1, maximum: 48 } } },
      handler: trends,
    },
    {
      name: 'counters',
      methods: ['GET'],
      route: 'counters',
      authLevel: 'function',
      summary: 'Every counter the scaler keeps (rejected and poisoned messages, …) by name',
      responseSchema: Counters,
      handler: counters,
    },
    {
      name: 'metrics',
      methods: ['GET'],
      route: 'metrics',
      authLevel: 'function',
      summary: "This instance's OpenTelemetry metrics in the Prometheus text format (0.0.4)",
      description:
        'Every instrument of src/platform/metrics.ts recorded by this process since it started, with its dimensions (cluster, nodearray, machine_type, outcome, state, operation; never an id). On `npm start` that is the whole scaler; on Azure each instance answers for itself and Azure Monitor has the sum. docs/operations.md lists the metrics.',
      responseContentType: 'text/plain',
      problemStatuses: [404],
      handler: metricsText,
    },
    {
      name: 'console',
      methods: ['GET'],
      route: 'console',
      authLevel: 'function',
      summary: 'The operator console (HTML)',
      description:
        'One self-contained page (scripts and styles inline, no CDN). The key is never in it: the page reads `code` from its own address or asks for the key, keeps it in sessionStorage and sends it as x-functions-key.',
      responseContentType: 'text/html',
      handler: consoleHtml,
    },
  ];
}
