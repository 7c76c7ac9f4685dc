/**
 * The CycleCloud simulator's HTTP server (node:http): the REST routes of
 * reference/cyclecloud-rest-api.md §2 over the in-memory {@link Simulator}, behind HTTP Basic auth.
 *
 * CycleCloud routes (bodies validated with the shared zod schemas; errors are CycleCloud-style
 * `{Exception, Message, Detail}` JSON, 400 naming the field):
 *   GET  /clusters/{c}/status[?nodes=true]
 *   GET  /clusters/{c}/nodes[?operation=<id> | ?request_id=<id>]   (unknown request id → 404 text "No operation found for request id <id>")
 *   POST /clusters/{c}/nodes/create                                  (202 + Location; repeated requestId → 409, empty body)
 *   POST /clusters/{c}/nodes/{terminate|deallocate|shutdown|start|remove|restart|reimage}
 *   POST /clusters/{c}/scale/{nodearray}?totalNodeCount=N | ?totalCoreCount=N   (exactly one)
 *   GET  /operations/[?request_id=<id>]                              (elements are {action, startTime}, as documented)
 *   GET  /operations/{id}
 *
 * Test hooks for other processes (same Basic auth; never subject to faults; not in the call log):
 *   POST   /__sim/faults                  body: {method?, path?, pathRegex?, kind, status?, retryAfterSec?, latencyMs?, times?}
 *                                         kind ∈ status | throttle | latency | reset | commit-then-fail  → 201 {faults}
 *                                         or {kind: "evict:<n>", cluster?, message?} (= {kind: "evict", count: n, …}): the next
 *                                         n Ready spot nodes are evicted; cluster may be left out when there is one → 201 {faults}
 *   GET    /__sim/faults                  → 200 {faults}
 *   DELETE /__sim/faults                  → 204 (evictions not yet done are disarmed too)
 *   POST   /__sim/nodes/{c}/{name}/fail   body: {message?}   → 204 (Status Failed + StatusMessage)
 *   POST   /__sim/nodes/{c}/{name}/hold   → 204 (the node stops progressing)
 *   POST   /__sim/nodes/{c}/{name}/release → 204
 *   POST   /__sim/fail-next-nodes         body: {cluster, count, message?}
 *   POST   /__sim/capacity-failure        body: {cluster, nodearray, machineType, throttleSec?}
 *   POST   /__sim/limit-next-create       body: {cluster, nodearray, machineType, added}
 *   POST   /__sim/buckets                 body: {cluster, nodearray, machineType, patch: {quotaCoreCount?, consumedCoreCount?, maxPlacementGroupSize?, valid?, …}}
 *   POST   /__sim/limits                  body: {cluster, nodearray?, maxCount?, maxCoreCount?}  → 204 (the cluster's, or a nodearray's, limits)
 *   POST   /__sim/forget-request-ids      → 204 (lookups by request id answer 404 from now on; ids may be reused)
 *   POST   /__sim/documentation-gaps      body: {requestIdRetentionMs?, listLagMs?}  → 204
 *   GET    /__sim/calls                   → 200 {calls: [{method, path, query, status, body?, atMs}]}
 *   DELETE /__sim/calls                   → 204
 *   GET    /__sim/state                   → 200 {clusters: {<name>: {status, nodes}}, operations}
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { NodeCreationRequest, NodeManagementRequest } from '../cyclecloud/schemas.ts';
import { parseEvictionFault, type FaultSpec } from './faults.ts';
import { MANAGEMENT_ACTIONS, Simulator, SimulatorError, type ClusterSpec, type ManagementAction } from './model.ts';

export { Simulator, SimulatorError, defaultClusters } from './model.ts';
export type { BucketSpec, CallRecord, ClusterSpec, NodearraySpec, OperationView } from './model.ts';
export type { FaultKind, FaultSpec } from './faults.ts';

export interface SimulatorOptions {
  /** 0 = a free port. Default 0. */
  port?: number;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Duration of each node lifecycle step. Default 1000. */
  stepMs?: number;
  /** Default `cycleadmin`. */
  username?: string;
  /** Default: random (24 base64url characters). */
  password?: string;
  /** Default {@link defaultClusters}. */
  clusters?: ClusterSpec[];
  /** Clock. Default `Date.now`. */
  now?: () => number;
  /** See {@link SimulatorModelOptions}: off by default; the product never relies on it. */
  undocumentedOperationIds?: boolean;
  /** See {@link SimulatorModelOptions}. Default: for ever. */
  requestIdRetentionMs?: number;
  /** See {@link SimulatorModelOptions}. Default 0. */
  listLagMs?: number;
}

/** The {@link Simulator} test hooks, also reachable directly on the handle (`handle.faults.add(…)`). */
export type SimulatorHooks = Pick<
  Simulator,
  | 'faults'
  | 'calls'
  | 'operations'
  | 'nodes'
  | 'failNode'
  | 'holdNode'
  | 'releaseNode'
  | 'failNextNodes'
  | 'evictNext'
  | 'setBucket'
  | 'capacityFailure'
  | 'limitNextCreate'
  | 'forgetRequestIds'
  | 'setDocumentationGaps'
>;

export interface SimulatorHandle extends SimulatorHooks {
  /** `http://host:port`, the real port when 0 was asked. */
  url: string;
  username: string;
  password: string;
  clusters: string[];
  sim: Simulator;
  /** Stops listening, drops open connections and pending latency waits. */
  close(): Promise<void>;
}

/** Largest request body accepted (bytes). */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  readonly exception: string;
  constructor(status: number, exception: string, message: string) {
    super(message);
    this.status = status;
    this.exception = exception;
  }
}

/** `sets.0.count: Too small…` for the first few issues: names the field, never echoes the payload. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'body'}: ${issue.message}`)
    .join('; ');
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, 'com.cyclecomputing.cloud.exceptions.InvalidRequestException', describeIssues(result.error));
  return result.data;
}

const GapsBody = z.object({ requestIdRetentionMs: z.number().min(0).optional(), listLagMs: z.number().min(0).optional() }).strict();
const FaultBody = z.object({
  method: z.string().optional(),
  path: z.string().optional(),
  pathRegex: z.string().optional(),
  kind: z.enum(['status', 'throttle', 'latency', 'reset', 'commit-then-fail']),
  status: z.number().int().min(100).max(599).optional(),
  retryAfterSec: z.number().min(0).optional(),
  latencyMs: z.number().min(0).optional(),
  times: z.number().int().min(1).optional(),
});
const EvictFaultBody = z
  .object({
    kind: z.string(),
    count: z.number().int().min(1).optional(),
    cluster: z.string().optional(),
    message: z.string().min(1).optional(),
  })
  .strict();
const BucketRef = z.object({ cluster: z.string(), nodearray: z.string(), machineType: z.string() });
const CapacityFailureBody = BucketRef.extend({ throttleSec: z.number().min(0).optional() });
const LimitNextCreateBody = BucketRef.extend({ added: z.number().int().min(0) });
const SetBucketBody = BucketRef.extend({
  patch: z
    .object({
      quotaCoreCount: z.number().int().optional(),
      consumedCoreCount: z.number().int().optional(),
      maxPlacementGroupSize: z.number().int().min(1).optional(),
      valid: z.boolean().optional(),
      invalidReason: z.string().optional(),
      throttleCapacitySec: z.number().min(0).optional(),
      vcpuQuotaCount: z.number().int().min(1).optional(),
      family: z.string().optional(),
    })
    .strict(),
});
const SetLimitsBody = z
  .object({ cluster: z.string(), nodearray: z.string().optional(), maxCount: z.number().int().min(0).optional(), maxCoreCount: z.number().int().min(0).optional() })
  .strict();
const FailNextBody = z.object({ cluster: z.string(), count: z.number().int().min(0), message: z.string().optional() });
const FailNodeBody = z.object({ message: z.string().optional() });

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'com.cyclecomputing.cloud.exceptions.InvalidRequestException', `body: larger than ${MAX_BODY_BYTES} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'com.cyclecomputing.cloud.exceptions.InvalidRequestException', 'body: not valid JSON');
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** JSON value; a string with `text: true` is sent as text/plain; undefined sends no body. */
  body?: unknown;
  text?: boolean;
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.headersSent) return;
  const headers: Record<string, string> = { ...reply.headers };
  let payload: string | undefined;
  if (reply.body !== undefined) {
    payload = reply.text ? String(reply.body) : JSON.stringify(reply.body);
    headers['content-type'] = reply.text ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8';
  }
  res.writeHead(reply.status, headers);
  res.end(payload);
}

let requestCounter = 0;
function errorReply(status: number, exception: string, message: string, headers?: Record<string, string>): Reply {
  const tag = `request-${++requestCounter}`;
  return {
    status,
    ...(headers ? { headers } : {}),
    body: { Exception: exception, Message: message, Detail: `Please see /opt/cycle_server/logs/cycle_server.log for lines tagged with ${tag} for details.` },
  };
}

function queryInt(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^-?\d+$/.test(raw)) throw new HttpError(400, 'com.cyclecomputing.cloud.exceptions.InvalidRequestException', `${name}: must be an integer`);
  return Number(raw);
}

/** Starts the simulator on `host:port`; resolves once it listens. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<SimulatorHandle> {
  const sim = new Simulator({
    ...(options.clusters ? { clusters: options.clusters } : {}),
    ...(options.stepMs !== undefined ? { stepMs: options.stepMs } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.undocumentedOperationIds !== undefined ? { undocumentedOperationIds: options.undocumentedOperationIds } : {}),
    ...(options.requestIdRetentionMs !== undefined ? { requestIdRetentionMs: options.requestIdRetentionMs } : {}),
    ...(options.listLagMs !== undefined ? { listLagMs: options.listLagMs } : {}),
  });
  const username = options.username ?? 'cycleadmin';
  const password = options.password ?? randomBytes(18).toString('base64url');
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const host = options.host ?? '127.0.0.1';
  const closing = new AbortController();

  /** Waits `ms`, or until the server closes (then rejects so the handler stops). */
  const wait = (ms: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (closing.signal.aborted) return reject(new Error('closing'));
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new Error('closing'));
      };
      const timer = setTimeout(() => {
        closing.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      timer.unref();
      closing.signal.addEventListener('abort', onAbort, { once: true });
    });

  const route = (method: string, segments: string[], query: URLSearchParams, body: unknown): Reply => {
    const [root, cluster, kind, action, ...rest] = segments;
    if (root === 'clusters' && cluster !== undefined && rest.length === 0) {
      if (kind === 'status' && action === undefined) {
        if (method !== 'GET') return errorReply(405, 'MethodNotAllowed', `${method} is not allowed here`);
        return { status: 200, body: sim.status(cluster, { nodes: query.get('nodes') === 'true' }) };
      }
      if (kind === 'nodes' && action === undefined) {
        if (method !== 'GET') return errorReply(405, 'MethodNotAllowed', `${method} is not allowed here`);
        const requestId = query.get('request_id');
        const operationId = query.get('operation');
        try {
          return {
            status: 200,
            body: sim.listNodes(cluster, { ...(requestId !== null ? { requestId } : {}), ...(operationId !== null ? { operationId } : {}) }),
          };
        } catch (error) {
          // The "no operation" answer is plain text on real servers (Symphony matches the text).
          if (error instanceof SimulatorError && error.code === 'SIM_NO_OPERATION') return { status: 404, body: error.message, text: true };
          throw error;
        }
      }
      if (kind === 'nodes' && action !== undefined) {
        if (method !== 'POST') return errorReply(405, 'MethodNotAllowed', `${method} is not allowed here`);
        if (action === 'create') {
          const result = sim.createNodes(cluster, parseWith(NodeCreationRequest, body));
          return { status: 202, headers: { location: `/operations/${result.operationId}` }, body: result };
        }
        if ((MANAGEMENT_ACTIONS as readonly string[]).includes(action)) {
          const result = sim.manage(cluster, action as ManagementAction, parseWith(NodeManagementRequest, body ?? {}));
          return { status: 202, headers: { location: `/operations/${result.operationId}` }, body: result };
        }
      }
      if (kind === 'scale' && action !== undefined) {
        if (method !== 'POST') return errorReply(405, 'MethodNotAllowed', `${method} is not allowed here`);
        const totalNodeCount = queryInt(query, 'totalNodeCount');
        const totalCoreCount = queryInt(query, 'totalCoreCount');
        const result = sim.scale(cluster, action, {
          ...(totalNodeCount !== undefined ? { totalNodeCount } : {}),
          ...(totalCoreCount !== undefined ? { totalCoreCount } : {}),
        });
        return { status: 202, headers: { location: `/operations/${result.operationId}` }, body: result };
      }
    }
    if (root === 'operations' && segments.length <= 2) {
      if (method !== 'GET') return errorReply(405, 'MethodNotAllowed', `${method} is not allowed here`);
      const id = segments[1];
      if (id === undefined || id === '') {
        const requestId = query.get('request_id');
        return { status: 200, body: sim.findOperations(requestId ?? undefined) };
      }
      return { status: 200, body: sim.getOperation(id) };
    }
    return errorReply(404, 'com.cyclecomputing.cloud.exceptions.NotFoundException', 'No such resource');
  };

  const hook = (method: string, segments: string[], body: unknown): Reply => {
    const [, what, c, name, verb] = segments;
    const key = `${method} ${what ?? ''}`;
    if (key === 'POST faults' && segments.length === 2) {
      const kind = (body as { kind?: unknown } | undefined)?.kind;
      if (typeof kind === 'string' && kind.startsWith('evict')) {
        const e = parseWith(EvictFaultBody, body);
        const count = e.kind === 'evict' ? e.count : e.count === undefined ? parseEvictionFault(e.kind)?.count : undefined;
        if (count === undefined) throw new HttpError(400, 'InvalidRequestException', 'kind: must be "evict:<n>" with a whole n ≥ 1, or "evict" with count');
        const clusters = sim.clusterNames();
        const cluster = e.cluster ?? (clusters.length === 1 ? clusters[0] : undefined);
        if (cluster === undefined) throw new HttpError(400, 'InvalidRequestException', `cluster: required, one of ${clusters.join(', ')}`);
        sim.evictNext(cluster, count, e.message);
        return { status: 201, body: { faults: listFaults() } };
      }
      const f = parseWith(FaultBody, body);
      const spec: FaultSpec = { kind: f.kind };
      if (f.method !== undefined) spec.method = f.method;
      if (f.pathRegex !== undefined) {
        try {
          spec.path = new RegExp(f.pathRegex);
        } catch {
          throw new HttpError(400, 'InvalidRequestException', 'pathRegex: not a valid regular expression');
        }
      } else if (f.path !== undefined) spec.path = f.path;
      if (f.status !== undefined) spec.status = f.status;
      if (f.retryAfterSec !== undefined) spec.retryAfterSec = f.retryAfterSec;
      if (f.latencyMs !== undefined) spec.latencyMs = f.latencyMs;
      if (f.times !== undefined) spec.times = f.times;
      sim.faults.add(spec);
      return { status: 201, body: { faults: listFaults() } };
    }
    if (key === 'GET faults' && segments.length === 2) return { status: 200, body: { faults: listFaults() } };
    if (key === 'DELETE faults' && segments.length === 2) {
      sim.faults.clear();
      for (const c of sim.clusterNames()) sim.evictNext(c, 0);
      return { status: 204 };
    }
    if (method === 'POST' && what === 'nodes' && c !== undefined && name !== undefined && segments.length === 5) {
      if (verb === 'fail') sim.failNode(c, name, parseWith(FailNodeBody, body ?? {}).message);
      else if (verb === 'hold') sim.holdNode(c, name);
      else if (verb === 'release') sim.releaseNode(c, name);
      else return errorReply(404, 'NotFoundException', 'No such hook');
      return { status: 204 };
    }
    if (key === 'POST fail-next-nodes') {
      const b = parseWith(FailNextBody, body);
      sim.failNextNodes(b.cluster, b.count, b.message);
      return { status: 204 };
    }
    if (key === 'POST capacity-failure') {
      const b = parseWith(CapacityFailureBody, body);
      sim.capacityFailure(b.cluster, b.nodearray, b.machineType, b.throttleSec);
      return { status: 204 };
    }
    if (key === 'POST limit-next-create') {
      const b = parseWith(LimitNextCreateBody, body);
      sim.limitNextCreate(b.cluster, b.nodearray, b.machineType, b.added);
      return { status: 204 };
    }
    if (key === 'POST buckets') {
      const b = parseWith(SetBucketBody, body);
      sim.setBucket(b.cluster, b.nodearray, b.machineType, Object.fromEntries(Object.entries(b.patch).filter(([, v]) => v !== undefined)));
      return { status: 204 };
    }
    if (key === 'POST limits') {
      const b = parseWith(SetLimitsBody, body);
      sim.setLimits(b.cluster, b.nodearray, {
        ...(b.maxCount !== undefined ? { maxCount: b.maxCount } : {}),
        ...(b.maxCoreCount !== undefined ? { maxCoreCount: b.maxCoreCount } : {}),
      });
      return { status: 204 };
    }
    if (key === 'POST forget-request-ids') {
      sim.forgetRequestIds();
      return { status: 204 };
    }
    if (key === 'POST documentation-gaps') {
      sim.setDocumentationGaps(parseWith(GapsBody, body ?? {}));
      return { status: 204 };
    }
    if (key === 'GET calls') return { status: 200, body: { calls: sim.calls } };
    if (key === 'DELETE calls') {
      sim.calls.length = 0;
      return { status: 204 };
    }
    if (key === 'GET state') {
      const clusters = Object.fromEntries(sim.clusterNames().map((n) => [n, { status: sim.status(n), nodes: sim.nodes(n) }]));
      return { status: 200, body: { clusters, operations: sim.operations } };
    }
    return errorReply(404, 'NotFoundException', 'No such hook');
  };

  const listFaults = (): unknown[] => sim.faults.list().map((f) => ({ ...f, path: f.path instanceof RegExp ? String(f.path) : f.path }));

  const toReply = (error: unknown): Reply => {
    if (error instanceof SimulatorError) {
      // A repeated requestId is documented as "No Content".
      if (error.code === 'SIM_DUPLICATE_REQUEST') return { status: 409 };
      return errorReply(error.status, error.exception, error.message);
    }
    if (error instanceof HttpError) return errorReply(error.status, error.exception, error.message);
    if (error instanceof RangeError) return errorReply(400, 'InvalidRequestException', error.message);
    return errorReply(500, 'java.lang.RuntimeException', 'Internal error');
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://simulator');
    const path = url.pathname;
    const query: Record<string, string> = Object.fromEntries(url.searchParams);
    const segments = path
      .split('/')
      .slice(1)
      .map((s) => {
        try {
          return decodeURIComponent(s);
        } catch {
          return s;
        }
      });
    const isHook = segments[0] === '__sim';
    const record = (status: number, body?: unknown): void => {
      if (!isHook) sim.recordCall({ method, path, query, status, ...(body !== undefined ? { body } : {}), atMs: sim.now() });
    };

    const auth = req.headers.authorization;
    if (auth === undefined || !safeEqual(auth, expected)) {
      req.resume();
      record(401);
      send(
        res,
        errorReply(401, 'com.cyclecomputing.cloud.exceptions.AuthenticationException', 'Authentication required: invalid or missing credentials', {
          'www-authenticate': 'Basic realm="CycleCloud"',
        }),
      );
      return;
    }

    let body: unknown;
    try {
      body = parseJson(await readBody(req));
    } catch (error) {
      const reply = toReply(error);
      record(reply.status);
      send(res, reply);
      return;
    }

    if (isHook) {
      let reply: Reply;
      try {
        reply = hook(method, segments, body);
      } catch (error) {
        reply = toReply(error);
      }
      send(res, reply);
      return;
    }

    const fault = sim.faults.take(method, path);
    if (fault?.kind === 'reset') {
      record(0, body);
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === 'status' || fault?.kind === 'throttle') {
      const throttle = fault.kind === 'throttle';
      const status = throttle ? 429 : (fault.status ?? 503);
      record(status, body);
      const headers: Record<string, string> | undefined = throttle ? { 'retry-after': String(fault.retryAfterSec ?? 1) } : undefined;
      send(res, errorReply(status, throttle ? 'TooManyRequests' : 'ServiceUnavailable', throttle ? 'Too many requests (simulated)' : 'Simulated failure', headers));
      return;
    }
    if (fault?.kind === 'latency') {
      try {
        await wait(fault.latencyMs ?? 1000);
      } catch {
        return; // closing
      }
    }

    let reply: Reply;
    try {
      reply = route(method, segments, url.searchParams, body);
    } catch (error) {
      reply = toReply(error);
    }
    if (fault?.kind === 'commit-then-fail') {
      // The mutation is applied; the client never learns its outcome.
      if (fault.status !== undefined) {
        record(fault.status, body);
        send(res, errorReply(fault.status, 'java.lang.RuntimeException', 'Simulated failure after commit'));
      } else {
        record(0, body);
        res.socket?.destroy();
      }
      return;
    }
    record(reply.status, body);
    send(res, reply);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) send(res, errorReply(500, 'java.lang.RuntimeException', 'Internal error'));
    });
  });
  // Keep-alive connections must not hold close() open.
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${address.port}`,
    username,
    password,
    clusters: sim.clusterNames(),
    sim,
    faults: sim.faults,
    calls: sim.calls,
    get operations() {
      return sim.operations;
    },
    nodes: (cluster) => sim.nodes(cluster),
    failNode: (cluster, name, message) => sim.failNode(cluster, name, message),
    holdNode: (cluster, name) => sim.holdNode(cluster, name),
    releaseNode: (cluster, name) => sim.releaseNode(cluster, name),
    failNextNodes: (cluster, count, message) => sim.failNextNodes(cluster, count, message),
    evictNext: (cluster, count, message) => sim.evictNext(cluster, count, message),
    setBucket: (cluster, nodearray, machineType, patch) => sim.setBucket(cluster, nodearray, machineType, patch),
    capacityFailure: (cluster, nodearray, machineType, throttleSec) => sim.capacityFailure(cluster, nodearray, machineType, throttleSec),
    limitNextCreate: (cluster, nodearray, machineType, added) => sim.limitNextCreate(cluster, nodearray, machineType, added),
    forgetRequestIds: () => sim.forgetRequestIds(),
    setDocumentationGaps: (gaps) => sim.setDocumentationGaps(gaps),
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
