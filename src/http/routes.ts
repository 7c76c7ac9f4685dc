/**
 * The HTTP API of docs/api.md §4 as plain handlers `(deps, request, context?) => HttpResponseInit`,
 * and the `ROUTES` table that both the Functions registration (`functions/http.ts`) and the
 * OpenAPI document are built from.
 *
 * Writes go through the queue path: POST /api/scale-requests and /api/terminate admit the request
 * to the ledger and enqueue it, answering 202 with the status URL; the queue function does the work.
 */
import { DEFAULT_TENANT } from '../platform/tenants.ts';
import { intakeRefusals } from '../requests/intake.ts';
import type { HttpMethod, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { z } from 'zod';
import {
  ClusterName,
  PublicRequestRecord,
  recordSchema,
  ReleaseBody,
  RenewBody,
  RequestId,
  RequestMessage,
  ScaleRequest,
  parseRequestMessage,
  parseWith,
  publicRecord,
} from '../ledger/schemas.ts';
import type { LifecycleAnswer } from './deps.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { Logger } from '../platform/log.ts';
import type { HttpDeps, SnapshotHealth } from './deps.ts';
import { checkContentType, checkSignature, parseJsonBody, readBoundedBody, signatureRefused } from './body.ts';
import { memoryReplayCache, type ReplayCache } from '../platform/replay-cache.ts';
import { buildOpenApiDocument, ROUTE_PREFIX, TerminateBody, type OpenApiRoute } from './openapi.ts';
import { json, problem, validationProblem } from './problem.ts';
import { admitSlurmRequests, SlurmAccepted, SlurmPowerRequest, type SlurmAction } from '../slurm/requests.ts';
import { formatHostlist } from '../slurm/hostlist.ts';
import { SlurmSyncAnswer, SlurmSyncRequest, syncAnswerText } from '../slurm/sync.ts';
import { Accepted, LifecycleAccepted, ClusterStatus, Health, PlanResponse, ScaleOutState, type Health as HealthBody } from './schemas.ts';
import { consoleRoutes } from './console-routes.ts';
import { tenantRoutes } from './tenant-routes.ts';
import { inSpan, SpanKind, traceFields } from '../platform/tracing.ts';

export type RouteHandler = (deps: HttpDeps, request: HttpRequest, context?: InvocationContext) => Promise<HttpResponseInit>;

export interface RouteDefinition extends OpenApiRoute {
  /** Function name for `app.http(name, …)`. */
  name: string;
  methods: HttpMethod[];
  handler: RouteHandler;
}

/** Default time health waits for storage before calling it unreachable. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 5_000;

function routeLogger(deps: HttpDeps, route: string, context?: InvocationContext): Logger {
  return deps.logger.child({ route, ...(context ? { invocationId: context.invocationId } : {}) });
}

/**
 * Turns an unexpected failure into a generic 500 problem: the error is logged (scrubbed by the
 * logger), the caller learns nothing about internals.
 */
function guarded(route: string, impl: (deps: HttpDeps, request: HttpRequest, log: Logger) => Promise<HttpResponseInit>): RouteHandler {
  return async (deps, request, context) => {
    const log = routeLogger(deps, route, context);
    try {
      return await impl(deps, request, log);
    } catch (error) {
      log.error('http handler failed', { error });
      return problem(500, 'HTTP_INTERNAL', 'the request could not be handled; retry later');
    }
  };
}

/** Absolute URL of `GET /api/scale-requests/{requestId}` on the host the caller used (never its query, which may hold the key). */
export function statusUrlFor(requestUrl: string, requestId: string): string {
  return new URL(`${ROUTE_PREFIX}/scale-requests/${encodeURIComponent(requestId)}`, requestUrl).toString();
}

/** The process-local replay cache of deps that wire none (tests, tools): replay protection is never off. */
const localReplayCaches = new WeakMap<HttpDeps, ReplayCache>();

function replayCacheOf(deps: HttpDeps): ReplayCache {
  if (deps.replayCache) return deps.replayCache;
  let cache = localReplayCaches.get(deps);
  if (!cache) localReplayCaches.set(deps, (cache = memoryReplayCache(deps.now)));
  return cache;
}

async function activeSecrets(deps: HttpDeps): Promise<readonly string[]> {
  if (deps.signingSecrets) return (await deps.signingSecrets()).filter((s) => s.length > 0);
  const one = await deps.signingSecret();
  return one ? [one] : [];
}

/** Reads the body within the limit, refuses a content type that is not JSON (415) and applies the signature rule. */
async function readSignedBody(deps: HttpDeps, request: HttpRequest, log: Logger): Promise<{ ok: true; raw: Uint8Array } | { ok: false; response: HttpResponseInit }> {
  const declaredType = checkContentType(request, undefined);
  if (!declaredType.ok) {
    log.info('request refused: content type');
    return declaredType;
  }
  const body = await readBoundedBody(request);
  if (!body.ok) {
    log.info('request refused: body too large');
    return body;
  }
  const contentType = checkContentType(request, body.raw.byteLength);
  if (!contentType.ok) {
    log.info('request refused: content type');
    return contentType;
  }
  const required = deps.requireSignatures ?? false;
  // The secret may come from Key Vault: fetch it only when there is something to check.
  const secrets = required || request.headers.has('x-scaler-signature') ? await activeSecrets(deps) : [];
  if (required && secrets.length === 0) log.error('signatures are required but no signing secret is configured');
  const verdict = checkSignature(request, body.raw, { secrets, required, nowMs: deps.now() });
  if (!verdict.ok) {
    log.warn('request refused: signature', { reason: verdict.reason });
    return verdict;
  }
  if (verdict.signed && !(await replayCacheOf(deps).remember(verdict.digest, verdict.timestampMs))) {
    log.warn('request refused: signature', { reason: 'replayed' });
    return { ok: false, response: signatureRefused('this signature was already used; sign every request anew (a fresh X-Scaler-Timestamp)') };
  }
  return body;
}

async function readSignedJson(deps: HttpDeps, request: HttpRequest, log: Logger): Promise<{ ok: true; value: unknown } | { ok: false; response: HttpResponseInit }> {
  const body = await readSignedBody(deps, request, log);
  if (!body.ok) return body;
  return parseJsonBody(body.raw);
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Passes an answer through its schema (dropping keys the contract does not name); never fails a good answer over drift. */
function shape<T>(schema: z.ZodType<T>, value: unknown, log: Logger, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  log.warn(`${what} does not match its response schema`, { paths: result.error.issues.map((i) => i.path.join('.')).slice(0, 10) });
  return value as T;
}

/** A scale request that names no tenant is the one its function key belongs to (docs/api.md, Tenants). */
function withKeyTenant<M extends RequestMessage>(deps: HttpDeps, request: HttpRequest, message: M): M {
  if (message.kind !== 'scale' || message.tenant !== undefined || !deps.tenants) return message;
  const tenant = deps.tenants.forKey(request.headers.get('x-functions-key') ?? new URL(request.url).searchParams.get('code') ?? undefined);
  return tenant === DEFAULT_TENANT ? message : { ...message, tenant };
}

async function intake(deps: HttpDeps, request: HttpRequest, log: Logger, route: 'scale-requests' | 'terminate'): Promise<HttpResponseInit> {
  const body = await readSignedJson(deps, request, log);
  if (!body.ok) return body.response;
  let input = body.value;
  if (route === 'terminate' && isObject(input)) {
    if (input.kind === undefined) input = { ...input, kind: 'terminate' };
    else if (input.kind !== 'terminate') {
      return validationProblem([{ path: 'kind', message: 'must be "terminate" on /api/terminate (scale requests go to /api/scale-requests)' }]);
    }
  }
  const parsed = parseRequestMessage(input);
  if (!parsed.ok) {
    log.info('request refused: invalid', { fields: parsed.errors.map((e) => e.path).slice(0, 20) });
    return validationProblem(parsed.errors);
  }
  const message = withKeyTenant(deps, request, parsed.value);
  const refusals = intakeRefusals(message, deps.callbackTarget, deps.tenants);
  if (refusals.length > 0) {
    log.info('request refused: invalid', { fields: refusals.map((r) => r.path) });
    return validationProblem(refusals);
  }
  // The caller's W3C traceparent (or a new trace): the accept span's own is kept with the request.
  const { result, traceparent } = await inSpan(
    `POST /api/${route}`,
    request.headers.get('traceparent'),
    SpanKind.SERVER,
    { 'http.request.method': 'POST', 'http.route': `/api/${route}` },
    async (h) => ({
      result: await deps.submitRequest(message, { traceparent: h.traceparent }),
      traceparent: h.traceparent,
    }),
  );
  const fields = { requestId: message.requestId, cluster: message.cluster, kind: message.kind, outcome: result.outcome, ...traceFields(traceparent) };
  if (result.outcome === 'conflict') {
    log.info('request refused: conflict', fields);
    return problem(409, 'HTTP_CONFLICT', `requestId "${message.requestId}" already exists with a different body; send the same body or use a new requestId`);
  }
  log.info('request accepted', fields);
  const statusUrl = statusUrlFor(request.url, message.requestId);
  const accepted: Accepted = { requestId: message.requestId, state: result.record.state, statusUrl };
  return json(202, accepted, { location: statusUrl });
}

/** `POST /api/scale-requests`: any docs/api.md §3 message (kind `scale` by default, or `terminate`). */
export const submitScaleRequest: RouteHandler = guarded('scale-requests', (deps, request, log) => intake(deps, request, log, 'scale-requests'));

/** `POST /api/terminate`: a terminate request; `kind` may be omitted. */
export const submitTerminate: RouteHandler = guarded('terminate', (deps, request, log) => intake(deps, request, log, 'terminate'));

/**
 * `POST /api/scale-requests/{id}/renew` and `/release`: signed and size-limited like every POST; an
 * empty body is `{}`. Renew answers 200 with the new lease; release 202 (the shutdown is under way;
 * repeating it answers the same release). 404 unknown, 409 refused (expired, released, no lease).
 */
function lifecycleRoute(route: 'renew' | 'release'): RouteHandler {
  return guarded(`scale-request-${route}`, async (deps, request, log) => {
    const id = RequestId.safeParse(request.params.requestId ?? '');
    if (!id.success) return validationProblem([{ path: 'requestId', message: id.error.issues[0]?.message ?? 'invalid' }]);
    const body = await readSignedBody(deps, request, log);
    if (!body.ok) return body.response;
    const input = body.raw.byteLength === 0 ? ({ ok: true, value: {} } as const) : parseJsonBody(body.raw);
    if (!input.ok) return input.response;
    if (!(route === 'renew' ? deps.renew : deps.release)) return problem(404, 'HTTP_NOT_FOUND', `${route} is not available on this host`);
    let answer: LifecycleAnswer;
    if (route === 'renew') {
      const parsed = parseWith(RenewBody, input.value);
      if (!parsed.ok) return validationProblem(parsed.errors);
      answer = await deps.renew!(id.data, parsed.value.seconds);
    } else {
      const parsed = parseWith(ReleaseBody, input.value);
      if (!parsed.ok) return validationProblem(parsed.errors);
      answer = await deps.release!(id.data);
    }
    if (!answer.ok) {
      log.info(`${route} refused`, { requestId: id.data, status: answer.status });
      return problem(answer.status, answer.status === 404 ? 'HTTP_NOT_FOUND' : 'HTTP_CONFLICT', answer.message);
    }
    const r = answer.entry.record;
    const statusUrl = statusUrlFor(request.url, id.data);
    const out: LifecycleAccepted = {
      requestId: id.data,
      state: r.state,
      statusUrl,
      ...(r.lease ? { lease: r.lease } : {}),
      ...(r.maxLifetime ? { maxLifetime: r.maxLifetime } : {}),
      ...(r.released ? { released: r.released } : {}),
    };
    log.info(`${route} accepted`, { requestId: id.data, ...(r.lease ? { expiresAt: r.lease.expiresAt } : {}), ...(r.released ? { released: r.released.reason } : {}) });
    return json(route === 'renew' ? 200 : 202, out, { location: statusUrl });
  });
}

export const renewScaleRequest: RouteHandler = lifecycleRoute('renew');
export const releaseScaleRequest: RouteHandler = lifecycleRoute('release');

/** `GET /api/scale-requests/{requestId}`: the public record (docs/api.md §5). */
export const getScaleRequest: RouteHandler = guarded('scale-request-status', async (deps, request, log) => {
  const id = RequestId.safeParse(request.params.requestId ?? '');
  if (!id.success) return validationProblem([{ path: 'requestId', message: id.error.issues[0]?.message ?? 'invalid' }]);
  const record = await deps.ledger.getRecord(id.data);
  if (!record) {
    const gone = await deps.ledger.tombstone?.(id.data);
    if (gone) {
      const ended = gone.finalAt ? `ended ${gone.state} at ${gone.finalAt} and ` : '';
      return problem(404, 'HTTP_NOT_FOUND', `request "${id.data}" expired: it ${ended}was deleted at ${gone.expiredAt} (records are kept RETENTION_DAYS days)`);
    }
    return problem(404, 'HTTP_NOT_FOUND', `no request with requestId "${id.data}"`);
  }
  // `?explain=true` adds each demand's nodearray, bucket and explanation (issue 11); without it the
  // record is exactly docs/api.md §5.
  const explain = request.query?.get('explain') === 'true';
  // `?cost=true` adds what its nodes cost so far and their times (docs/api.md, Cost).
  const cost = request.query?.get('cost') === 'true';
  const view = publicRecord(record, { explain, ...(cost ? { cost: { prices: deps.prices?.(), nowMs: deps.now() } } : {}) });
  return json(200, shape(recordSchema({ explain, cost }), view, log, 'request record'));
});

function ageSecondsOf(takenAt: string | null | undefined, nowMs: number, fallback: number | null): number | null {
  const takenAtMs = takenAt ? Date.parse(takenAt) : NaN;
  if (Number.isNaN(takenAtMs)) return fallback;
  return Math.max(0, Math.floor((nowMs - takenAtMs) / 1000));
}

/**
 * The store's verdict (consecutive failures), or age past `staleAfterMs` when configured. A cluster
 * never snapshotted is not stale (docs/api.md §4) — unless it is one the snapshot timer covers and its
 * captures have failed often enough to be stale: a configured cluster CycleCloud does not have, or a
 * CycleCloud unreachable since start-up, must not look healthy forever. Clusters only named by
 * requests never make health degrade.
 */
function isStale(deps: HttpDeps, health: SnapshotHealth | null, ageSeconds: number | null, configured = false): boolean {
  if (!health) return false;
  if (health.takenAt === null) return configured && health.stale;
  if (health.stale) return true;
  return deps.staleAfterMs !== undefined && ageSeconds !== null && ageSeconds * 1000 > deps.staleAfterMs;
}

/**
 * The stored latest snapshot or, when none is stored yet, a live read (stored for the next caller).
 * Null when CycleCloud has no such cluster or cannot be read now (logged).
 */
async function latestOrLive(deps: HttpDeps, cluster: string, log: Logger): Promise<ClusterSnapshot | null> {
  const stored = await deps.snapshots.latest(cluster);
  if (stored || !deps.readLive) return stored;
  try {
    return await deps.readLive(cluster);
  } catch (error) {
    log.warn('no stored snapshot and CycleCloud could not be read', { cluster, error });
    return null;
  }
}

/** `GET /api/clusters/{cluster}/status`: the latest snapshot in docs/api.md §4's shape. */
export const getClusterStatus: RouteHandler = guarded('cluster-status', async (deps, request, log) => {
  const name = ClusterName.safeParse(request.params.cluster ?? '');
  if (!name.success) return validationProblem([{ path: 'cluster', message: name.error.issues[0]?.message ?? 'invalid' }]);
  const cluster = name.data;
  const snapshot = await latestOrLive(deps, cluster, log);
  if (!snapshot) return problem(404, 'HTTP_NOT_FOUND', `unknown cluster "${cluster}": no snapshot has been taken of it`);
  const health = await deps.snapshots.health(cluster);
  const nowMs = deps.now();
  const stale = isStale(deps, health ?? { takenAt: snapshot.takenAt, ageSeconds: null, consecutiveFailures: 0, stale: false }, ageSecondsOf(snapshot.takenAt, nowMs, null));
  const view = deps.statusView(snapshot, nowMs, { stale });
  return json(200, shape(ClusterStatus, view, log, 'cluster status'));
});

/** `POST /api/plan`: what CycleCloud would receive for a scale request, and why; creates nothing. */
export const explainPlan: RouteHandler = guarded('plan', async (deps, request, log) => {
  const body = await readSignedJson(deps, request, log);
  if (!body.ok) return body.response;
  if (isObject(body.value) && body.value.kind === 'terminate') {
    return validationProblem([{ path: 'kind', message: 'must be "scale": /api/plan explains scale requests' }]);
  }
  const parsed = parseRequestMessage(body.value);
  if (!parsed.ok) return validationProblem(parsed.errors);
  if (parsed.value.kind !== 'scale') return validationProblem([{ path: 'kind', message: 'must be "scale"' }]);
  const scaleRequest = parsed.value;
  const snapshot: ClusterSnapshot | null = await latestOrLive(deps, scaleRequest.cluster, log);
  if (!snapshot) {
    return problem(404, 'HTTP_NOT_FOUND', `cluster "${scaleRequest.cluster}" has no snapshot yet: it is unknown or the snapshot timer has not run for it`);
  }
  const nowMs = deps.now();
  const takenAtMs = Date.parse(snapshot.takenAt);
  const [inFlight, backoffs, paused] = await Promise.all([
    deps.ledger.inFlight(scaleRequest.cluster, Number.isNaN(takenAtMs) ? 0 : takenAtMs),
    deps.capacity.active(scaleRequest.cluster, nowMs),
    deps.state.isPaused(),
  ]);
  // /api/plan is where the words are wanted: verdicts and an explanation for every demand.
  const plan = deps.plan({ request: scaleRequest, snapshot, inFlight, backoffs, nowMs, options: { ...deps.planOptions, explain: 'all' } });
  const answer = {
    cluster: scaleRequest.cluster,
    snapshotTakenAt: snapshot.takenAt,
    paused,
    sets: plan.sets.map(({ set: _wire, ...rest }) => rest),
    demands: plan.demands.map((d) => ({ ...d, explanation: d.explanation ?? d.reason })),
    createRequest: { sets: plan.sets.map((s) => s.set) },
  };
  log.info('plan explained', { requestId: scaleRequest.requestId, cluster: scaleRequest.cluster, sets: plan.sets.length });
  return json(200, shape(PlanResponse, answer, log, 'plan'));
});

type Probe<T> = { ok: true; value: T } | { ok: false };

/** Resolves within `deadline` or reports failure; health must answer even when storage hangs. */
function probe<T>(work: () => Promise<T>, deadline: Promise<'timeout'>): Promise<Probe<T>> {
  return Promise.race([
    Promise.resolve()
      .then(work)
      .then(
        (value): Probe<T> => ({ ok: true, value }),
        (): Probe<T> => ({ ok: false }),
      ),
    deadline.then((): Probe<T> => ({ ok: false })),
  ]);
}

/** `GET /api/health` (anonymous): 200 when storage answers and no snapshot is stale, else 503. */
export const getHealth: RouteHandler = guarded('health', async (deps, _request, log) => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), deps.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS);
  });
  try {
    const [listed, depth, poison, counters, paused] = await Promise.all([
      probe(() => deps.snapshots.listClusters(), deadline),
      probe(() => deps.queueDepth(deps.queues.scaleQueue), deadline),
      probe(() => deps.queueDepth(deps.queues.scalePoisonQueue), deadline),
      probe(() => deps.state.counters(), deadline),
      probe(() => deps.state.isPaused(), deadline),
    ]);
    const configured = new Set(deps.configuredClusters?.() ?? []);
    const names = [...new Set([...configured, ...(listed.ok ? listed.value : [])])].sort();
    const healths = await Promise.all(names.map((c) => probe(() => deps.snapshots.health(c), deadline)));
    const nowMs = deps.now();
    const clusters = names.flatMap((cluster, i) => {
      const h = healths[i]!;
      const health = h.ok ? h.value : null;
      // A cluster only named by a request and never snapshotted (a typo, a cluster CycleCloud does
      // not have) is not one of ours: listing it would keep it in health forever.
      if (h.ok && !configured.has(cluster) && !health?.takenAt) return [];
      const ageSeconds = health?.takenAt ? ageSecondsOf(health.takenAt, nowMs, health.ageSeconds) : null;
      return [
        {
          cluster,
          takenAt: health?.takenAt ?? null,
          ageSeconds,
          stale: isStale(deps, health, ageSeconds, configured.has(cluster)),
          consecutiveFailures: health?.consecutiveFailures ?? 0,
        },
      ];
    });
    const governor = deps.governor ? await probe(() => deps.governor!.view(clusters.map((c) => c.cluster)), deadline) : undefined;
    const leases = deps.leases ? await probe(() => deps.leases!.view(nowMs), deadline) : undefined;
    const prices = deps.prices?.();
    const budgeted = (deps.tenants?.names ?? []).filter((t) => deps.tenants!.get(t)?.budget);
    const spend = prices && deps.tenantCosts && budgeted.length > 0 ? await probe(() => deps.tenantCosts!(nowMs), deadline) : undefined;
    const budgets = spend
      ? spend.ok
        ? {
            currency: prices!.currency,
            past: budgeted.flatMap((tenant) => {
              const monthly = deps.tenants!.get(tenant)!.budget!.monthly;
              const spent = spend.value.get(tenant)?.month ?? 0;
              return spent >= monthly ? [{ tenant, monthly, spent }] : [];
            }),
          }
        : null
      : undefined;
    const reachable = [listed, depth, poison, counters, paused, ...healths].every((p) => p.ok);
    const healthy = reachable && clusters.every((c) => !c.stale);
    const body: HealthBody = {
      status: healthy ? 'ok' : 'degraded',
      storage: { reachable },
      clusters,
      queue: { name: deps.queues.scaleQueue, depth: depth.ok ? depth.value : null },
      poison: { name: deps.queues.scalePoisonQueue, count: poison.ok ? poison.value : null },
      rejectedMessages: counters.ok ? (counters.value.rejectedMessages ?? 0) : null,
      orphans: counters.ok ? { adopted: counters.value.orphanNodesAdopted ?? 0, terminated: counters.value.orphanNodesTerminated ?? 0 } : null,
      overAsk: counters.ok ? (counters.value.overAsk ?? 0) : null,
      paused: paused.ok ? paused.value : null,
      ...(governor ? { governor: governor.ok ? governor.value : null } : {}),
      ...(leases ? { leases: leases.ok ? leases.value : null } : {}),
      ...(budgets !== undefined ? { budgets } : {}),
    };
    if (!healthy) log.warn('health degraded', { reachable, stale: clusters.filter((c) => c.stale).map((c) => c.cluster) });
    return json(healthy ? 200 : 503, body);
  } finally {
    clearTimeout(timer);
  }
});

/** `GET /api/scale-out`: whether scale-out is paused. */
export const getScaleOut: RouteHandler = guarded('scale-out', async (deps) => json(200, { paused: await deps.state.isPaused() }));

function pauseSwitch(paused: boolean): RouteHandler {
  return guarded(paused ? 'scale-out-pause' : 'scale-out-resume', async (deps, request, log) => {
    const body = await readSignedBody(deps, request, log);
    if (!body.ok) return body.response;
    await deps.state.setPaused(paused, 'http');
    log.info(paused ? 'scale-out paused' : 'scale-out resumed', { by: 'http' });
    return json(200, { paused: await deps.state.isPaused() });
  });
}

/** `POST /api/scale-out/pause`: hold scale-out; requests are still accepted and wait. */
export const pauseScaleOut: RouteHandler = pauseSwitch(true);
/** `POST /api/scale-out/resume`: let waiting requests proceed. */
export const resumeScaleOut: RouteHandler = pauseSwitch(false);

/** A zod failure as field errors; an unknown key is named as such. */
function fieldErrorsOf(error: {
  issues: readonly { code: string; path: readonly PropertyKey[]; message: string; keys?: readonly string[] }[];
}): { path: string; message: string }[] {
  return error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? (i.keys ?? []).map((k) => ({ path: [...i.path, k].map(String).join('.'), message: 'is not a known field' }))
      : [{ path: i.path.map(String).join('.'), message: i.message }],
  );
}

/**
 * `POST /api/slurm/{resume,suspend,resume-fail}`: Slurm power saving (src/slurm/requests.ts). The
 * call is turned into scale or terminate requests and queued like any other; 202 with their ids.
 */
function slurmPower(action: SlurmAction): RouteHandler {
  return guarded(`slurm-${action}`, async (deps, request, log) => {
    const body = await readSignedJson(deps, request, log);
    if (!body.ok) return body.response;
    const parsed = SlurmPowerRequest.safeParse(body.value);
    if (!parsed.success) {
      const errors = fieldErrorsOf(parsed.error);
      log.info('slurm call refused: invalid', { action, fields: errors.map((e) => e.path).slice(0, 20) });
      return validationProblem(errors);
    }
    const call = parsed.data;
    let snapshot: ClusterSnapshot | null = null;
    if (action === 'resume') {
      // Live when possible: which names CycleCloud already runs must be current, not a minute old.
      snapshot = deps.readLive ? await deps.readLive(call.cluster).catch(() => null) : null;
      snapshot ??= await deps.snapshots.latest(call.cluster);
      if (!snapshot) return problem(404, 'HTTP_NOT_FOUND', `cluster "${call.cluster}" has no snapshot: CycleCloud does not have it or cannot be read now`);
    } else if (action === 'suspend' && deps.readLive) {
      // Live only: a stored snapshot may predate the nodes being suspended. Unreadable: suspend them all.
      snapshot = await deps.readLive(call.cluster).catch(() => null);
    }
    const result = await admitSlurmRequests(
      { getRecord: (id) => deps.ledger.getRecord(id), submitRequest: (m) => deps.submitRequest(withKeyTenant(deps, request, m), { scheduler: true }), now: deps.now },
      action,
      call,
      snapshot,
    );
    if (!result.ok) {
      log.info('slurm call refused', { action, cluster: call.cluster, errors: result.errors.map((e) => e.message).slice(0, 5) });
      return validationProblem(result.errors);
    }
    // Slurm gave up on these nodes: whatever resume still waits for them must not create them later.
    if (action === 'resume-fail' && deps.slurmGaveUp) await deps.slurmGaveUp(call.cluster, result.names);
    const nodes = formatHostlist(result.names);
    log.info('slurm call accepted', { action, cluster: call.cluster, nodes, requestIds: result.requestIds, skipped: result.skipped.map((s) => formatHostlist(s.names)) });
    const answer: SlurmAccepted = {
      requestIds: result.requestIds,
      statusUrls: result.requestIds.map((id) => statusUrlFor(request.url, id)),
      nodes,
      skipped: result.skipped.map((s) => ({ nodes: formatHostlist(s.names), reason: s.reason })),
    };
    return json(202, answer);
  });
}

/**
 * `POST /api/slurm/sync`: the head node's `sinfo` in, the `scontrol` actions out (src/slurm/sync.ts).
 * Run by `scaler-power.sh sync` every few seconds; 200 with `down`, `hold`, `restore`.
 */
export const slurmSync: RouteHandler = guarded('slurm-sync', async (deps, request, log) => {
  if (!deps.slurmSync) return problem(404, 'HTTP_NOT_FOUND', 'Slurm sync is not available in this deployment');
  const body = await readSignedJson(deps, request, log);
  if (!body.ok) return body.response;
  const parsed = SlurmSyncRequest.safeParse(body.value);
  if (!parsed.success) {
    const errors = fieldErrorsOf(parsed.error);
    log.info('slurm sync refused: invalid', { fields: errors.map((e) => e.path).slice(0, 20) });
    return validationProblem(errors);
  }
  const result = await deps.slurmSync(parsed.data);
  if (!result.ok) return validationProblem(result.errors);
  const answer = SlurmSyncAnswer.parse(result.answer);
  // `?format=text`: tab-separated lines a bash script reads without a JSON parser.
  if (new URL(request.url).searchParams.get('format') === 'text') return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: syncAnswerText(answer) };
  return json(200, answer);
});

/** `POST /api/slurm/resume`: create (exactly) the named nodes. */
export const slurmResume: RouteHandler = slurmPower('resume');
/** `POST /api/slurm/suspend`: terminate the named nodes. */
export const slurmSuspend: RouteHandler = slurmPower('suspend');
/** `POST /api/slurm/resume-fail`: terminate the named nodes that did not come up in time. */
export const slurmResumeFail: RouteHandler = slurmPower('resume-fail');

let openApiCache: Record<string, unknown> | undefined;

/** `GET /api/openapi.json` (function key, like every route but health — docs/api.md §4): the document, with `servers` set to the origin the caller used. */
export const getOpenApi: RouteHandler = guarded('openapi', async (_deps, request) => {
  openApiCache ??= buildOpenApiDocument(ROUTES);
  return json(200, { ...openApiCache, servers: [{ url: new URL(request.url).origin }] }, { 'cache-control': 'private, max-age=300' });
});

/**
 * Every route of docs/api.md §4. `route` has no `/api` prefix (the Functions host adds it).
 * Registration: `app.http(r.name, { methods: r.methods, route: r.route, authLevel: r.authLevel, handler: … })`.
 */
export const ROUTES: readonly RouteDefinition[] = [
  {
    name: 'scaleRequestsSubmit',
    methods: ['POST'],
    route: 'scale-requests',
    authLevel: 'function',
    summary: 'Submit a scale (or terminate) request',
    description:
      'Records the request and queues it; the queue path does the work. Idempotent on requestId: the same body again answers 202 with the current state, a different body 409.',
    requestSchema: RequestMessage,
    responseSchema: Accepted,
    successStatus: 202,
    problemStatuses: [400, 409],
    handler: submitScaleRequest,
  },
  {
    name: 'scaleRequestsGet',
    methods: ['GET'],
    route: 'scale-requests/{requestId}',
    authLevel: 'function',
    summary: 'The request record: state, per-demand progress, operations and nodes',
    description:
      "Exactly the record of docs/api.md §5. With `?explain=true`, each demand also says where the planner put it and why: `nodearray`, `bucketId` and `explanation` (which bucket and placement group, and why not the others). With `?cost=true` (and a price table), `cost: {currency, amount, nodeSeconds, asOf, unpriced}` as of now and each node's `machineType`, `region`, `startedAt`, `endedAt` (docs/api.md, Cost).",
    responseSchema: PublicRequestRecord,
    problemStatuses: [400, 404],
    params: { requestId: "The caller's requestId" },
    handler: getScaleRequest,
  },
  {
    name: 'scaleRequestsRenew',
    methods: ['POST'],
    route: 'scale-requests/{requestId}/renew',
    authLevel: 'function',
    summary: "Renew a request's lease",
    description:
      "Moves the lease to now + `seconds` (default: the lease's own length; 60–2592000). 409 when the request has no lease, its lease has expired or it was released; the max lifetime still applies.",
    requestSchema: RenewBody,
    responseSchema: LifecycleAccepted,
    successStatus: 200,
    problemStatuses: [400, 404, 409],
    params: { requestId: "The caller's requestId" },
    handler: renewScaleRequest,
  },
  {
    name: 'scaleRequestsRelease',
    methods: ['POST'],
    route: 'scale-requests/{requestId}/release',
    authLevel: 'function',
    summary: "Release a request's nodes now",
    description:
      'Marks the request released (`released: {at, reason: "released"}`), stops creating for it and shuts its nodes down, each by its nodearray\'s ShutdownPolicy. Repeating it answers the same release.',
    requestSchema: ReleaseBody,
    responseSchema: LifecycleAccepted,
    successStatus: 202,
    problemStatuses: [400, 404, 409],
    params: { requestId: "The caller's requestId" },
    handler: releaseScaleRequest,
  },
  {
    name: 'terminateSubmit',
    methods: ['POST'],
    route: 'terminate',
    authLevel: 'function',
    summary: 'Submit a terminate request',
    description: 'Same idempotency as scale requests; `kind` may be omitted.',
    requestSchema: TerminateBody,
    responseSchema: Accepted,
    successStatus: 202,
    problemStatuses: [400, 409],
    handler: submitTerminate,
  },
  {
    name: 'planExplain',
    methods: ['POST'],
    route: 'plan',
    authLevel: 'function',
    summary: 'Explain the plan for a scale request without creating anything',
    description:
      'Runs the planner against the latest snapshot, in-flight capacity and capacity-failure backoffs. Answers the sets CycleCloud would receive, and per demand the nodearray, bucket and placement group it got, an `explanation` of why that one and not the others, a verdict per bucket considered (`chosen`, `full`, `invalid`, `backoff`, `not-preferred`, `no-pg-room`, `unsuitable`; capped, with `consideredOmitted`), the limit that bound it and what could not be placed.',
    requestSchema: ScaleRequest,
    responseSchema: PlanResponse,
    problemStatuses: [400, 404],
    handler: explainPlan,
  },
  {
    name: 'clusterStatus',
    methods: ['GET'],
    route: 'clusters/{cluster}/status',
    authLevel: 'function',
    summary: 'The latest snapshot of a cluster: buckets, capacity and placement groups',
    responseSchema: ClusterStatus,
    problemStatuses: [400, 404],
    params: { cluster: 'CycleCloud cluster name' },
    handler: getClusterStatus,
  },
  {
    name: 'health',
    methods: ['GET'],
    route: 'health',
    authLevel: 'anonymous',
    summary: 'Storage reachability, snapshot age per cluster, queue depth, poison and rejected counts',
    responseSchema: Health,
    problemStatuses: [503],
    handler: getHealth,
  },
  {
    name: 'scaleOutGet',
    methods: ['GET'],
    route: 'scale-out',
    authLevel: 'function',
    summary: 'Whether scale-out is paused',
    responseSchema: ScaleOutState,
    handler: getScaleOut,
  },
  {
    name: 'scaleOutPause',
    methods: ['POST'],
    route: 'scale-out/pause',
    authLevel: 'function',
    summary: 'Pause scale-out: requests are still accepted and wait until resumed; terminates still run',
    responseSchema: ScaleOutState,
    handler: pauseScaleOut,
  },
  {
    name: 'scaleOutResume',
    methods: ['POST'],
    route: 'scale-out/resume',
    authLevel: 'function',
    summary: 'Resume scale-out',
    responseSchema: ScaleOutState,
    handler: resumeScaleOut,
  },
  {
    name: 'slurmResume',
    methods: ['POST'],
    route: 'slurm/resume',
    authLevel: 'function',
    summary: 'Slurm ResumeProgram: create exactly the named nodes',
    description:
      'Body: the cluster, the hostlist slurmctld passed and, optionally, the JSON of $SLURM_RESUME_FILE. Queues one scale request whose demands name their nodes (Slurm node name = CycleCloud node name, <nodearray>-<n>); in a tightly coupled nodearray each job becomes one colocated demand. Repeating the call answers the same request ids.',
    requestSchema: SlurmPowerRequest,
    responseSchema: SlurmAccepted,
    successStatus: 202,
    problemStatuses: [400, 404],
    handler: slurmResume,
  },
  {
    name: 'slurmSuspend',
    methods: ['POST'],
    route: 'slurm/suspend',
    authLevel: 'function',
    summary: 'Slurm SuspendProgram: terminate the named nodes',
    requestSchema: SlurmPowerRequest,
    responseSchema: SlurmAccepted,
    successStatus: 202,
    problemStatuses: [400],
    handler: slurmSuspend,
  },
  {
    name: 'slurmResumeFail',
    methods: ['POST'],
    route: 'slurm/resume-fail',
    authLevel: 'function',
    summary: 'Slurm ResumeFailProgram: terminate the named nodes that did not come up',
    requestSchema: SlurmPowerRequest,
    responseSchema: SlurmAccepted,
    successStatus: 202,
    problemStatuses: [400],
    handler: slurmResumeFail,
  },
  {
    name: 'slurmSync',
    methods: ['POST'],
    route: 'slurm/sync',
    authLevel: 'function',
    summary: "Slurm sync: the head node's sinfo in, the scontrol actions out",
    description:
      "Body: the cluster and the lines of `sinfo -h -o '%T|%E|%N'` (state, reason, hostlist). Answers which nodes to set down now (a resume that will not come up, with the reason), which to hold down (no room yet) and which to resume (room again). Closes resume demands Slurm gave up on and terminates VMs Slurm shows powered down. Run by `scaler-power.sh sync` on a timer.",
    requestSchema: SlurmSyncRequest,
    responseSchema: SlurmSyncAnswer,
    successStatus: 200,
    problemStatuses: [400, 404],
    handler: slurmSync,
  },
  {
    name: 'openapi',
    methods: ['GET'],
    route: 'openapi.json',
    authLevel: 'function',
    summary: 'This OpenAPI 3.1 document',
    handler: getOpenApi,
  },
  // The operator console and its read routes (console-routes.ts).
  ...consoleRoutes({ guarded, latestOrLive, isStale, shape }),
  ...tenantRoutes(guarded),
];
