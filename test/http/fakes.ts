/** Fakes and request builders for the HTTP handler tests. */
import functions, { type HttpRequest } from '@azure/functions';
import { createHash } from 'node:crypto';
import type { HttpDeps, SnapshotHealth, SubmitResult } from '../../src/http/deps.ts';
import type { RequestMessage, RequestRecord } from '../../src/ledger/schemas.ts';
import type { ClusterSnapshot, ClusterStatusView } from '../../src/snapshots/model.ts';
import { plan } from '../../src/planning/planner.ts';
import { silentLogger } from '../../src/platform/log.ts';
import { signRequest } from '../../src/platform/signature.ts';

export const T0 = Date.parse('2026-11-28T01:00:00.000Z');
export const BASE = 'https://scaler.example.net';

/** The seed's `ondemand` nodearray plus an InfiniBand `mpi` nodearray whose groups hold at most 4. */
export function snapshotFixture(over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  const bucket = {
    vcpuCount: 32,
    memoryGB: 64,
    infiniband: false,
    valid: true,
    quotaCount: 100,
    maxPlacementGroupSize: 40,
    placementGroups: [] as { name: string; activeCount: number }[],
    lastCapacityFailureSec: null,
    activeCount: 0,
  };
  return {
    cluster: 'hpc',
    takenAt: new Date(T0).toISOString(),
    maxCount: 100,
    maxCoreCount: 10_000,
    nodearrays: [
      {
        name: 'ondemand',
        maxCount: 100,
        maxCoreCount: 500,
        buckets: [
          { ...bucket, bucketId: 'cd56af52', machineType: 'Standard_F32s_v2', maxCount: 3, availableCount: 3, quotaCount: 3 },
          { ...bucket, bucketId: 'd81e001a', machineType: 'Standard_HC44rs', vcpuCount: 44, memoryGB: 327.83, infiniband: true, maxCount: 11, availableCount: 11 },
        ],
      },
      {
        name: 'mpi',
        maxCount: 64,
        maxCoreCount: 7680,
        buckets: [
          {
            ...bucket,
            bucketId: 'e0a1',
            machineType: 'Standard_HB120rs_v3',
            vcpuCount: 120,
            memoryGB: 448,
            infiniband: true,
            maxCount: 64,
            availableCount: 60,
            activeCount: 4,
            maxPlacementGroupSize: 4,
            placementGroups: [{ name: 'pg-a', activeCount: 4 }],
            invalidReason: 'never shown',
          },
        ],
      },
    ],
    nodes: [{ name: 'mpi-1', id: 'n1', status: 'Ready', nodearray: 'mpi', placementGroupId: 'pg-a' }],
    ...over,
  };
}

/** A status view that keeps every snapshot field (the route must drop what the contract does not name). */
export function fakeStatusView(snapshot: ClusterSnapshot, nowMs: number, options: { stale: boolean }): ClusterStatusView {
  const { nodes: _nodes, maxCount: _m, maxCoreCount: _c, ...rest } = snapshot;
  const nodearrays = rest.nodearrays.map((na) => ({ ...na, buckets: na.buckets.map((b) => ({ ...b, spot: b.spot === true })) }));
  return { ...rest, nodearrays, ageSeconds: Math.floor((nowMs - Date.parse(snapshot.takenAt)) / 1000), stale: options.stale };
}

export function recordFor(message: RequestMessage, nowMs: number): RequestRecord {
  const at = new Date(nowMs).toISOString();
  return {
    requestId: message.requestId,
    cluster: message.cluster,
    kind: message.kind,
    state: 'queued',
    demands:
      message.kind === 'scale'
        ? message.demands.map((d, index) => ({ index, requested: d.count, created: 0, ready: 0, placementGroupId: null, machineType: null, reason: null }))
        : [],
    operations: [],
    nodes: [],
    reason: null,
    createdAt: at,
    updatedAt: at,
  };
}

export interface FakeWorld {
  nowMs: number;
  records: Map<string, { record: RequestRecord; hash: string }>;
  submitted: RequestMessage[];
  paused: boolean;
  pausedBy: (string | undefined)[];
  counters: Record<string, number>;
  snapshots: Map<string, ClusterSnapshot>;
  healths: Map<string, SnapshotHealth>;
  depths: Map<string, number>;
  inFlightCalls: { cluster: string; sinceMs: number }[];
  secret: string | undefined;
  secretReads: number;
}

/** Deps over in-memory state, with the real planner. `over` replaces any member. */
export function fakeDeps(over: Partial<HttpDeps> = {}): { deps: HttpDeps; world: FakeWorld } {
  const world: FakeWorld = {
    nowMs: T0 + 30_000,
    records: new Map(),
    submitted: [],
    paused: false,
    pausedBy: [],
    counters: {},
    snapshots: new Map([['hpc', snapshotFixture()]]),
    healths: new Map([['hpc', { takenAt: new Date(T0).toISOString(), ageSeconds: 30, consecutiveFailures: 0, stale: false }]]),
    depths: new Map(),
    inFlightCalls: [],
    secret: undefined,
    secretReads: 0,
  };
  const hash = (m: RequestMessage) => createHash('sha256').update(JSON.stringify(m)).digest('hex');
  const deps: HttpDeps = {
    now: () => world.nowMs,
    logger: silentLogger,
    submitRequest: async (message): Promise<SubmitResult> => {
      const existing = world.records.get(message.requestId);
      if (existing) return { outcome: existing.hash === hash(message) ? 'duplicate' : 'conflict', record: existing.record };
      const record = recordFor(message, world.nowMs);
      world.records.set(message.requestId, { record, hash: hash(message) });
      world.submitted.push(message);
      return { outcome: 'created', record };
    },
    ledger: {
      getRecord: async (id) => world.records.get(id)?.record ?? null,
      inFlight: async (cluster, sinceMs) => {
        world.inFlightCalls.push({ cluster, sinceMs });
        return [];
      },
    },
    state: {
      isPaused: async () => world.paused,
      setPaused: async (paused, by) => {
        world.paused = paused;
        world.pausedBy.push(by);
      },
      counters: async () => ({ ...world.counters }),
    },
    snapshots: {
      latest: async (c) => world.snapshots.get(c) ?? null,
      health: async (c) => world.healths.get(c) ?? null,
      listClusters: async () => [...world.snapshots.keys()],
    },
    capacity: { active: () => [] },
    plan,
    statusView: fakeStatusView,
    queueDepth: async (q) => world.depths.get(q) ?? 0,
    queues: { scaleQueue: 'scale-requests', scalePoisonQueue: 'scale-requests-poison' },
    signingSecret: async () => {
      world.secretReads++;
      return world.secret;
    },
    ...over,
  };
  return { deps, world };
}

export interface RequestOptions {
  body?: unknown;
  /** Raw body text (wins over `body`). */
  raw?: string | Uint8Array;
  headers?: Record<string, string>;
  params?: Record<string, string>;
  query?: string;
}

/** A real `HttpRequest` as the Functions host builds it. */
export function httpRequest(method: string, path: string, options: RequestOptions = {}): HttpRequest {
  const raw = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  return new functions.HttpRequest({
    method,
    url: `${BASE}${path}${options.query ? `?${options.query}` : ''}`,
    headers: { ...(raw !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
    params: options.params ?? {},
    ...(raw === undefined ? {} : { body: typeof raw === 'string' ? { string: raw } : { bytes: raw } }),
  });
}

/** Signature headers for `raw` sent as `METHOD path` at `nowMs` (docs/api.md §4). */
export function signedHeaders(secret: string, raw: string, nowMs: number, path = '/api/scale-requests', method = 'POST'): Record<string, string> {
  const { signature, timestamp } = signRequest(secret, { method, path, body: raw }, nowMs);
  return { 'x-scaler-signature': signature, 'x-scaler-timestamp': timestamp };
}

export const scaleBody = (over: Record<string, unknown> = {}) => ({
  requestId: 'job-4711',
  cluster: 'hpc',
  demands: [
    { nodearray: 'ondemand', count: 4, machineTypes: ['Standard_HC44rs'], colocated: true, jobId: '4711' },
    { nodearray: 'ondemand', count: 2 },
  ],
  ...over,
});

/** The JSON body of a handler answer. */
export function bodyOf<T = Record<string, unknown>>(res: { jsonBody?: unknown }): T {
  return res.jsonBody as T;
}

export function headerOf(res: { headers?: unknown }, name: string): string | undefined {
  const h = res.headers as Record<string, string> | undefined;
  if (!h) return undefined;
  const key = Object.keys(h).find((k) => k.toLowerCase() === name.toLowerCase());
  return key ? h[key] : undefined;
}
