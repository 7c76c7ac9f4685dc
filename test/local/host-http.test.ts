import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpResponse } from '@azure/functions';
import { startLocalHost, type LocalHost } from '../../src/local/host.ts';
import { captureLog, httpReg } from './helpers.ts';

const KEY = 'test-function-key-4f1c9a';
const log = captureLog();
let host: LocalHost;

beforeAll(async () => {
  host = await startLocalHost({
    port: 0,
    functionKey: KEY,
    env: { STATUS_ROUTE: 'clusters/{cluster}/status' },
    hostJson: { extensions: { http: { routePrefix: 'api' } } },
    logSink: log.sink,
    stopGraceMs: 1000,
    registrations: [
      httpReg('health', { methods: ['GET'], handler: () => ({ status: 200, jsonBody: { ok: true } }) }),
      httpReg('getRequest', {
        route: 'scale-requests/{requestId}',
        methods: ['GET'],
        authLevel: 'function',
        handler: (req) => ({ jsonBody: { requestId: req.params.requestId, q: req.query.get('q'), url: req.url } }),
      }),
      httpReg('status', {
        route: '%STATUS_ROUTE%',
        methods: ['GET'],
        authLevel: 'function',
        handler: (req) => new HttpResponse({ status: 203, headers: { 'x-cluster': req.params.cluster ?? '' }, body: 'plain' }),
      }),
      httpReg('submit', {
        route: 'scale-requests',
        methods: ['POST'],
        authLevel: 'function',
        handler: async (req) => ({ status: 202, jsonBody: { received: await req.json(), contentType: req.headers.get('content-type') } }),
      }),
      httpReg('boom', {
        methods: ['GET'],
        handler: () => {
          throw new Error(`database password ${KEY} leaked`);
        },
      }),
      httpReg('nothing', { methods: ['GET'], handler: () => undefined as never }),
    ],
  });
});

afterAll(async () => {
  await host.stop();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): unknown;
}

/** A raw request, so tests control content-length and chunking. */
function send(method: string, path: string, options: { headers?: Record<string, string>; body?: Buffer; chunked?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${host.url}${path}`, { method, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
      });
    });
    req.on('error', reject);
    if (options.body && options.chunked) {
      // Chunked: no content-length, so the host must count while reading.
      for (let i = 0; i < options.body.length; i += 64 * 1024) req.write(options.body.subarray(i, i + 64 * 1024));
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

describe('local host HTTP trigger', () => {
  it('serves anonymous routes under the route prefix', async () => {
    const res = await send('GET', '/api/health');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(res.json()).toEqual({ ok: true });
  });

  it('refuses a function route without a key or with a wrong key, without echoing it', async () => {
    const missing = await send('GET', '/api/scale-requests/job-1');
    const wrong = await send('GET', '/api/scale-requests/job-1', { headers: { 'x-functions-key': 'not-the-key' } });
    const wrongCode = await send('GET', '/api/scale-requests/job-1?code=also-wrong');
    for (const res of [missing, wrong, wrongCode]) {
      expect(res.status).toBe(401);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.json()).toMatchObject({ title: 'Unauthorized', status: 401, error: 'Unauthorized', detail: expect.stringContaining('x-functions-key') });
    }
    expect(wrong.text).not.toContain('not-the-key');
    expect(wrongCode.text).not.toContain('also-wrong');
  });

  it('accepts the key in the x-functions-key header and passes route params and the query', async () => {
    const res = await send('GET', '/api/scale-requests/job%2D4711?q=1', { headers: { 'x-functions-key': KEY } });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ requestId: 'job-4711', q: '1' });
    expect((res.json() as { url: string }).url).toBe(`${host.url}/api/scale-requests/job%2D4711?q=1`);
  });

  it('accepts the key in the code query parameter', async () => {
    const res = await send('GET', `/api/clusters/hpc/status?code=${KEY}`);
    expect(res.status).toBe(203);
    expect(res.headers['x-cluster']).toBe('hpc');
    expect(res.text).toBe('plain');
  });

  it('answers 405 with Allow for a route that exists under another method', async () => {
    const res = await send('DELETE', '/api/scale-requests/job-1', { headers: { 'x-functions-key': KEY } });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET');
  });

  it('answers 404 for unknown routes and paths outside the prefix', async () => {
    expect((await send('GET', '/api/nope')).status).toBe(404);
    expect((await send('GET', '/health')).status).toBe(404);
    expect((await send('GET', '/api/scale-requests/a/b', { headers: { 'x-functions-key': KEY } })).status).toBe(404);
  });

  it('hands a JSON body to the handler as a real HttpRequest', async () => {
    const body = Buffer.from(JSON.stringify({ requestId: 'r1', demands: [] }));
    const res = await send('POST', '/api/scale-requests', { headers: { 'x-functions-key': KEY, 'content-type': 'application/json' }, body });
    expect(res.status).toBe(202);
    expect(res.json()).toEqual({ received: { requestId: 'r1', demands: [] }, contentType: 'application/json' });
  });

  it('answers 413 for bodies over 256 KiB, with or without content-length', async () => {
    const big = Buffer.alloc(256 * 1024 + 1, 0x61);
    const declared = await send('POST', '/api/scale-requests', { headers: { 'x-functions-key': KEY }, body: big });
    const chunked = await send('POST', '/api/scale-requests', { headers: { 'x-functions-key': KEY }, body: Buffer.alloc(600 * 1024, 0x61), chunked: true });
    const atLimit = await send('POST', '/api/scale-requests', { headers: { 'x-functions-key': KEY }, body: Buffer.from(JSON.stringify('a'.repeat(256 * 1024 - 2))) });
    expect(declared.status).toBe(413);
    expect(chunked.status).toBe(413);
    expect(atLimit.status).toBe(202);
  });

  it('answers a handler error with a generic 500 and logs it without secrets', async () => {
    const res = await send('GET', '/api/boom');
    expect(res.status).toBe(500);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json()).toMatchObject({ status: 500, title: 'Internal Server Error' });
    expect(res.text).not.toMatch(/password|at .*\.ts/);
    const failed = log.lines.find((l) => l.entry.functionName === 'boom' && l.entry.outcome === 'failed');
    expect(failed?.level).toBe('error');
    expect(failed?.line).not.toContain(KEY);
  });

  it('answers 204 when the handler returns nothing', async () => {
    const res = await send('GET', '/api/nothing');
    expect(res.status).toBe(204);
  });

  it('logs one start and one end line per invocation with id, duration and outcome', async () => {
    await send('GET', '/api/health');
    const ends = log.lines.filter((l) => l.entry.functionName === 'health' && l.entry.msg === 'invocation finished');
    const last = ends.at(-1)?.entry;
    expect(last).toMatchObject({ outcome: 'succeeded', host: 'local' });
    expect(typeof last?.durationMs).toBe('number');
    const starts = log.lines.filter((l) => l.entry.msg === 'invocation started' && l.entry.invocationId === last?.invocationId);
    expect(starts).toHaveLength(1);
  });
});
