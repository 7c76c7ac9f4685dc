/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the route table and the same zod
 * schemas that validate requests and shape answers (zod 4's JSON Schema output; OpenAPI 3.1 uses
 * JSON Schema 2020-12). Nothing here is written by hand except the words.
 */
import { z } from 'zod';
import { ScaleRequest, TerminateRequest, RequestMessage, PublicRequestRecord, RenewBody, ReleaseBody } from '../ledger/schemas.ts';
import { Accepted, ClusterStatus, Health, LifecycleAccepted, PlanResponse, Problem, ScaleOutState } from './schemas.ts';
import { MAX_BODY_BYTES } from './body.ts';
import { ClusterCapacity, Counters, RequestList, RequestTimeline, TrendsResponse } from './console-schemas.ts';
import { TenantsResponse } from './tenant-routes.ts';
import { SlurmAccepted, SlurmPowerRequest } from '../slurm/requests.ts';
import { SlurmSyncAnswer, SlurmSyncRequest } from '../slurm/sync.ts';

/** The parts of a route the document needs (a subset of `RouteDefinition` in `routes.ts`). */
export interface OpenApiRoute {
  name: string;
  methods: readonly string[];
  /** Without the `/api` prefix, e.g. `scale-requests/{requestId}`. */
  route: string;
  authLevel: 'anonymous' | 'function';
  summary: string;
  description?: string;
  requestSchema?: z.ZodType;
  responseSchema?: z.ZodType;
  /** Status of a successful answer (default 200). */
  successStatus?: number;
  /** Problem statuses the route can answer besides 401 (function key) and 500. */
  problemStatuses?: readonly number[];
  /** Descriptions of path parameters, by name. */
  params?: Readonly<Record<string, string>>;
  /** Query parameters, by name (all optional). */
  query?: Readonly<Record<string, { description: string; schema: Record<string, unknown> }>>;
  /** Media type of a success answer that is not JSON (e.g. `text/html`). */
  responseContentType?: string;
}

/** Functions' default route prefix (host.json `extensions.http.routePrefix`). */
export const ROUTE_PREFIX = '/api';

/** Body of `POST /api/terminate`: a terminate request whose `kind` may be omitted. */
export const TerminateBody: z.ZodType = TerminateRequest.safeExtend({
  // zod's types forbid widening a key's input (`kind` becomes optional); at runtime safeExtend keeps the
  // refinement and the strictness, which is all the document needs.
  kind: TerminateRequest.shape.kind.default('terminate') as unknown as typeof TerminateRequest.shape.kind,
});

/** Component names of every schema the document references. */
const REQUEST_COMPONENTS: [z.ZodType, string][] = [
  [ScaleRequest, 'ScaleRequest'],
  [TerminateRequest, 'TerminateRequest'],
  [RequestMessage, 'RequestMessage'],
  [TerminateBody, 'TerminateBody'],
  [SlurmPowerRequest, 'SlurmPowerRequest'],
  [SlurmSyncRequest, 'SlurmSyncRequest'],
  [RenewBody, 'RenewBody'],
  [ReleaseBody, 'ReleaseBody'],
];
const RESPONSE_COMPONENTS: [z.ZodType, string][] = [
  [Accepted, 'Accepted'],
  [PublicRequestRecord, 'RequestRecord'],
  [ClusterStatus, 'ClusterStatus'],
  [Health, 'Health'],
  [PlanResponse, 'PlanResponse'],
  [ScaleOutState, 'ScaleOutState'],
  [Problem, 'Problem'],
  [RequestList, 'RequestList'],
  [RequestTimeline, 'RequestTimeline'],
  [ClusterCapacity, 'ClusterCapacity'],
  [TrendsResponse, 'Trends'],
  [Counters, 'Counters'],
  [SlurmAccepted, 'SlurmAccepted'],
  [SlurmSyncAnswer, 'SlurmSyncAnswer'],
  [LifecycleAccepted, 'LifecycleAccepted'],
  [TenantsResponse, 'Tenants'],
];

type JsonSchema = Record<string, unknown>;

/**
 * Request bodies are described as the caller writes them (`io: 'input'`: defaulted fields are
 * optional), answers as the API writes them (`io: 'output'`).
 */
function componentSchemas(): { schemas: Record<string, JsonSchema>; refs: Map<z.ZodType, string> } {
  const refs = new Map<z.ZodType, string>();
  const schemas: Record<string, JsonSchema> = {};
  for (const [components, io] of [
    [REQUEST_COMPONENTS, 'input'],
    [RESPONSE_COMPONENTS, 'output'],
  ] as const) {
    const registry = z.registry<{ id: string }>();
    for (const [schema, id] of components) {
      registry.add(schema, { id });
      refs.set(schema, `#/components/schemas/${id}`);
    }
    const out = z.toJSONSchema(registry, { target: 'draft-2020-12', io, uri: (id) => `#/components/schemas/${id}` }) as {
      schemas: Record<string, JsonSchema>;
    };
    for (const [id, schema] of Object.entries(out.schemas)) {
      // Inside an OpenAPI document the dialect is implied and `$id` with a fragment is not a valid 2020-12 id.
      const { $schema: _dialect, $id: _id, ...rest } = schema;
      schemas[id] = rest;
    }
  }
  return { schemas, refs };
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  202: 'Accepted: the request is recorded and queued',
  400: 'Invalid body or parameter; `errors` names each bad field',
  401: 'Missing or refused function key, or a refused X-Scaler-Signature',
  404: 'Not found',
  409: 'The requestId exists with a different body',
  413: `Body over ${MAX_BODY_BYTES / 1024} KiB`,
  415: 'The content type is not JSON (application/json or application/*+json, UTF-8)',
  500: 'Internal error',
  503: 'Degraded: storage unreachable or a cluster snapshot is stale',
};

/** Documented on every POST: optional unless the deployment requires signatures. */
const SIGNATURE_PARAMETERS: JsonSchema[] = [
  {
    name: 'X-Scaler-Signature',
    in: 'header',
    required: false,
    schema: { type: 'string', pattern: '^sha256=[0-9a-fA-F]{64}$' },
    description:
      'sha256=<hex HMAC-SHA256 of "<X-Scaler-Timestamp>.<METHOD>.<path>.<raw body>"> with the caller\'s signing secret (path as sent, without the query). Verified whenever a signing secret is configured; required when the deployment requires signatures. A mismatch, or a signature already used, is refused with 401.',
  },
  {
    name: 'X-Scaler-Timestamp',
    in: 'header',
    required: false,
    schema: { type: 'string', pattern: '^[0-9]{1,12}$' },
    description: 'Unix seconds, signed with the method, path and body; more than 5 minutes from the server clock is refused with 401.',
  },
];

function pathParams(route: OpenApiRoute): JsonSchema[] {
  const path = [...route.route.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    description: route.params?.[name!] ?? name,
    schema: { type: 'string' },
  }));
  const query = Object.entries(route.query ?? {}).map(([name, q]) => ({ name, in: 'query', required: false, description: q.description, schema: q.schema }));
  return [...path, ...query];
}

/**
 * Builds the document. `serverUrl` (e.g. the origin the request came to) becomes `servers[0]`;
 * paths carry the `/api` prefix, as callers use them.
 */
export function buildOpenApiDocument(routes: readonly OpenApiRoute[], options: { serverUrl?: string; version?: string } = {}): JsonSchema {
  const { schemas, refs } = componentSchemas();
  const ref = (schema: z.ZodType): JsonSchema => {
    const target = refs.get(schema);
    if (!target) throw new Error('a route schema is not registered as an OpenAPI component');
    return { $ref: target };
  };
  const problemContent = { 'application/problem+json': { schema: ref(Problem) } };
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const path = `${ROUTE_PREFIX}/${route.route}`;
    const item = (paths[path] ??= {});
    for (const method of route.methods) {
      const success = route.successStatus ?? 200;
      const responses: Record<string, JsonSchema> = {
        [success]: {
          description: STATUS_TEXT[success] ?? 'OK',
          ...(route.responseSchema ? { content: { 'application/json': { schema: ref(route.responseSchema) } } } : {}),
          ...(route.responseContentType ? { content: { [route.responseContentType]: { schema: { type: 'string' } } } } : {}),
        },
      };
      const problems = new Set([...(route.problemStatuses ?? []), 500]);
      if (route.authLevel === 'function' || method === 'POST') problems.add(401);
      if (method === 'POST') problems.add(413).add(415);
      for (const status of [...problems].sort((a, b) => a - b)) {
        // Health's 503 carries the health body itself, not a problem.
        responses[status] =
          status === 503 && route.responseSchema === Health
            ? { description: STATUS_TEXT[503], content: { 'application/json': { schema: ref(Health) } } }
            : { description: STATUS_TEXT[status] ?? 'Error', content: problemContent };
      }
      const security: JsonSchema[] = [];
      if (route.authLevel === 'function') security.push({ functionKeyHeader: [] }, { functionKeyQuery: [] });
      const parameters = [...pathParams(route), ...(method === 'POST' ? SIGNATURE_PARAMETERS : [])];
      item[method.toLowerCase()] = {
        operationId: route.methods.length > 1 ? `${route.name}${method[0]}${method.slice(1).toLowerCase()}` : route.name,
        summary: route.summary,
        ...(route.description ? { description: route.description } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(route.requestSchema ? { requestBody: { required: true, content: { 'application/json': { schema: ref(route.requestSchema) } } } } : {}),
        responses,
        security,
      };
    }
  }
  return {
    openapi: '3.1.1',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'CycleCloud scaler HTTP API',
      version: options.version ?? '0.1.0',
      description:
        'Scale and terminate requests for Azure CycleCloud clusters, their status, plans and health. Every route except /api/health needs the function key (x-functions-key header or code query). Request bodies over 256 KiB are refused with 413.',
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    paths,
    components: {
      schemas,
      securitySchemes: {
        functionKeyHeader: { type: 'apiKey', in: 'header', name: 'x-functions-key', description: 'Azure Functions function key' },
        functionKeyQuery: { type: 'apiKey', in: 'query', name: 'code', description: 'Azure Functions function key as a query parameter' },
        scalerSignature: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Scaler-Signature',
          description:
            'Optional per-caller HMAC: sha256=<hex HMAC-SHA256 of the raw body>, with X-Scaler-Timestamp in unix seconds (5-minute window). Checked in addition to the function key.',
        },
      },
    },
  };
}
