/**
 * The named corpus of hostile and careless inputs (issue 14): every input the probe reported, plus
 * the neighbours an attacker or a careless client tries next. Each case names the defect it pins
 * (`#1`…`#7` of the issue) when it has one. Every answer is a 4xx problem+json naming the field, a
 * 2xx for what is valid, or on the queue a `rejected` record / a counted removal — never a 5xx,
 * never a poison loop.
 */
import { describe, expect, it } from 'vitest';
import { encodeQueueMessage } from '../../src/platform/storage.ts';
import { NODE_ATTRIBUTES_MAX_BYTES } from '../../src/ledger/limits.ts';
import { fakeDeps, signedHeaders } from '../http/fakes.ts';
import { getStatus, nestedArrayText, nestedObjectText, post, queueHarness, withNodeAttributes, type PostRoute } from './harness.ts';

const scale = (over: Record<string, unknown> = {}, demand: Record<string, unknown> = {}) =>
  JSON.stringify({ requestId: 'job-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 2, ...demand }], ...over });
const terminate = (over: Record<string, unknown> = {}) => JSON.stringify({ requestId: 'drain-1', cluster: 'hpc', names: ['ondemand-1'], ...over });
const attrsOfDepth = (depth: number) => nestedObjectText(depth);

interface HttpCase {
  name: string;
  route?: PostRoute;
  raw: string | Uint8Array | undefined;
  headers?: Record<string, string>;
  status: number;
  /** A field error's path must match (400 validation answers). */
  path?: string | RegExp;
}

const BOM = '\uFEFF';

const httpCases: HttpCase[] = [
  // #2 callbackUrl values that threw TypeError: Invalid URL → 500
  { name: '#2 callbackUrl "not a url"', raw: scale({ callbackUrl: 'not a url' }), status: 400, path: 'callbackUrl' },
  { name: '#2 callbackUrl ""', raw: scale({ callbackUrl: '' }), status: 400, path: 'callbackUrl' },
  { name: '#2 callbackUrl "https://"', raw: scale({ callbackUrl: 'https://' }), status: 400, path: 'callbackUrl' },
  { name: '#2 callbackUrl "//x"', raw: scale({ callbackUrl: '//x' }), status: 400, path: 'callbackUrl' },
  { name: '#2 callbackUrl "http://[::1"', raw: scale({ callbackUrl: 'http://[::1' }), status: 400, path: 'callbackUrl' },
  { name: '#2 callbackUrl "https://exa mple.com"', raw: scale({ callbackUrl: 'https://exa mple.com' }), status: 400, path: 'callbackUrl' },
  { name: '#2 callbackUrl on /api/terminate "not a url"', route: 'terminate', raw: terminate({ callbackUrl: 'not a url' }), status: 400, path: 'callbackUrl' },
  { name: 'callbackUrl with credentials', raw: scale({ callbackUrl: 'https://user:pw@hooks.example.com/x' }), status: 400, path: 'callbackUrl' },
  { name: 'callbackUrl ftp://', raw: scale({ callbackUrl: 'ftp://hooks.example.com/x' }), status: 400, path: 'callbackUrl' },
  { name: 'callbackUrl javascript:', raw: scale({ callbackUrl: 'javascript:alert(1)' }), status: 400, path: 'callbackUrl' },
  { name: 'callbackUrl plain http to a public host', raw: scale({ callbackUrl: 'http://hooks.example.com/x' }), status: 400, path: 'callbackUrl' },
  { name: 'callbackUrl a number', raw: scale({ callbackUrl: 42 }), status: 400, path: 'callbackUrl' },
  { name: 'callbackUrl 3000 characters', raw: scale({ callbackUrl: `https://h.example.com/${'a'.repeat(3000)}` }), status: 400, path: 'callbackUrl' },
  { name: 'callbackUrl https to a public host is valid', raw: scale({ callbackUrl: 'https://hooks.example.com/scaler' }), status: 202 },
  { name: 'callbackUrl http to loopback is valid input (the sender decides by mode)', raw: scale({ callbackUrl: 'http://127.0.0.1:9000/x' }), status: 202 },

  // #3 deep nodeAttributes overflowed the stack → 500
  { name: '#3 nodeAttributes nested 5,000 deep', raw: withNodeAttributes(attrsOfDepth(5_000)), status: 400, path: /^demands\.0\.nodeAttributes/ },
  { name: '#3 nodeAttributes nested 10,000 deep', raw: withNodeAttributes(attrsOfDepth(10_000)), status: 400, path: /^demands\.0\.nodeAttributes/ },
  { name: 'a whole body nested 10,000 arrays deep', raw: nestedArrayText(10_000), status: 400 },
  { name: '#3 nodeAttributes nested 9 deep (limit 8)', raw: withNodeAttributes(attrsOfDepth(9)), status: 400, path: 'demands.0.nodeAttributes' },
  { name: 'nodeAttributes nested 8 deep is valid', raw: withNodeAttributes(attrsOfDepth(7)), status: 202 },
  {
    name: `nodeAttributes over ${NODE_ATTRIBUTES_MAX_BYTES} bytes`,
    raw: withNodeAttributes(JSON.stringify({ big: 'x'.repeat(NODE_ATTRIBUTES_MAX_BYTES) })),
    status: 400,
    path: 'demands.0.nodeAttributes',
  },
  { name: 'nodeAttributes an array', raw: withNodeAttributes('[1,2]'), status: 400, path: 'demands.0.nodeAttributes' },
  { name: 'nodeAttributes a string', raw: withNodeAttributes('"x"'), status: 400, path: 'demands.0.nodeAttributes' },
  { name: 'nodeAttributes with __proto__ is data, never a prototype', raw: withNodeAttributes('{"__proto__":{"polluted":true}}'), status: 202 },

  // #4 ids a URL path normalises away
  { name: '#4 requestId "."', raw: scale({ requestId: '.' }), status: 400, path: 'requestId' },
  { name: '#4 requestId ".."', raw: scale({ requestId: '..' }), status: 400, path: 'requestId' },
  { name: '#4 requestId ".." on /api/terminate', route: 'terminate', raw: terminate({ requestId: '..' }), status: 400, path: 'requestId' },
  { name: 'requestId "..." is a plain id', raw: scale({ requestId: '...' }), status: 202 },
  { name: 'requestId with a slash', raw: scale({ requestId: 'a/b' }), status: 400, path: 'requestId' },
  { name: 'requestId with ? and #', raw: scale({ requestId: 'a?b#c' }), status: 400, path: 'requestId' },
  { name: 'requestId with NUL', raw: scale({ requestId: 'a\u0000b' }), status: 400, path: 'requestId' },
  { name: 'requestId of 129 characters', raw: scale({ requestId: 'x'.repeat(129) }), status: 400, path: 'requestId' },
  { name: 'requestId a number', raw: scale({ requestId: 4711 }), status: 400, path: 'requestId' },
  { name: 'requestId missing', raw: JSON.stringify({ cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] }), status: 400, path: 'requestId' },

  // #7 content types (were ignored → 202)
  { name: '#7 content-type text/plain', raw: scale(), headers: { 'content-type': 'text/plain' }, status: 415 },
  { name: '#7 content-type application/xml', raw: scale(), headers: { 'content-type': 'application/xml' }, status: 415 },
  { name: 'content-type form-urlencoded (curl -d)', raw: scale(), headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415 },
  { name: 'content-type missing with a body', raw: scale(), headers: { 'content-type': '' }, status: 415 },
  { name: 'content-type json with charset utf-16', raw: scale(), headers: { 'content-type': 'application/json; charset=utf-16' }, status: 415 },
  { name: 'content-type multipart', raw: scale(), headers: { 'content-type': 'multipart/form-data; boundary=x' }, status: 415 },
  { name: 'content-type APPLICATION/JSON; charset=UTF-8 is JSON', raw: scale(), headers: { 'content-type': 'APPLICATION/JSON; charset=UTF-8' }, status: 202 },
  { name: 'content-type application/problem+json is JSON', raw: scale(), headers: { 'content-type': 'application/problem+json' }, status: 202 },
  { name: '#7 content-type text/plain on /api/plan', route: 'plan', raw: scale(), headers: { 'content-type': 'text/plain' }, status: 415 },
  { name: 'content-type text/plain on /api/scale-out/pause with a body', route: 'pause', raw: '{}', headers: { 'content-type': 'text/plain' }, status: 415 },
  { name: 'empty pause without a content-type is fine', route: 'pause', raw: undefined, status: 200 },

  // #7 BOM: accepted over HTTP exactly like the queue accepts it
  { name: 'UTF-8 BOM before a valid body (as on the queue, #7)', raw: BOM + scale(), status: 202 },

  // Not JSON, or not an object
  { name: 'empty body', raw: '', status: 400 },
  { name: 'body "null"', raw: 'null', status: 400 },
  { name: 'body "[]"', raw: '[]', status: 400 },
  { name: 'body "42"', raw: '42', status: 400 },
  { name: 'body a JSON string', raw: '"job-1"', status: 400 },
  { name: 'truncated JSON', raw: scale().slice(0, 30), status: 400 },
  { name: 'invalid UTF-8', raw: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), status: 400 },
  { name: 'UTF-16LE bytes declared as JSON', raw: new Uint8Array(Buffer.from(scale(), 'utf16le')), status: 400 },

  // Field errors
  { name: 'cluster empty', raw: scale({ cluster: '' }), status: 400, path: 'cluster' },
  { name: 'cluster with a lone surrogate (found by the azurite fuzz: URIError in the ledger index)', raw: scale({ cluster: 'hpc\ud800' }), status: 400, path: 'cluster' },
  { name: 'cluster with a NUL', raw: scale({ cluster: 'hp\u0000c' }), status: 400, path: 'cluster' },
  { name: 'cluster of 200 KiB', raw: scale({ cluster: 'c'.repeat(200 * 1024) }), status: 400, path: 'cluster' },
  { name: 'demands empty', raw: scale({ demands: [] }), status: 400, path: 'demands' },
  { name: 'demands 1,001 items', raw: scale({ demands: Array.from({ length: 1001 }, () => ({ nodearray: 'ondemand', count: 1 })) }), status: 400, path: 'demands' },
  { name: 'count 0', raw: scale({}, { count: 0 }), status: 400, path: 'demands.0.count' },
  { name: 'count -1', raw: scale({}, { count: -1 }), status: 400, path: 'demands.0.count' },
  { name: 'count 1.5', raw: scale({}, { count: 1.5 }), status: 400, path: 'demands.0.count' },
  { name: 'count "4"', raw: scale({}, { count: '4' }), status: 400, path: 'demands.0.count' },
  { name: 'count 10,001', raw: scale({}, { count: 10_001 }), status: 400, path: 'demands.0.count' },
  { name: 'count 1e309 (Infinity)', raw: scale().replace('"count":2', '"count":1e309'), status: 400, path: 'demands.0.count' },
  { name: 'unknown key at the top', raw: scale({ colour: 'red' }), status: 400, path: 'colour' },
  { name: 'unknown key in a demand', raw: scale({}, { colour: 'red' }), status: 400, path: 'demands.0.colour' },
  { name: '__proto__ key at the top', raw: scale().replace('{', '{"__proto__":{"admin":true},'), status: 400, path: '__proto__' },
  { name: 'kind "destroy"', raw: scale({ kind: 'destroy' }), status: 400, path: 'kind' },
  { name: 'terminate without a selector', route: 'terminate', raw: JSON.stringify({ requestId: 'd', cluster: 'hpc' }), status: 400, path: 'ids' },
  { name: 'kind "scale" on /api/terminate', route: 'terminate', raw: scale({ kind: 'scale' }), status: 400, path: 'kind' },
  { name: 'machineTypes empty', raw: scale({}, { machineTypes: [] }), status: 400, path: 'demands.0.machineTypes' },
  { name: 'jobId of 257 characters', raw: scale({}, { jobId: 'j'.repeat(257) }), status: 400, path: 'demands.0.jobId' },
  { name: 'lone surrogate in jobId is a string like any other', raw: scale({}, { jobId: '\ud800' }), status: 202 },

  // #1 (handler side): bodies up to 256 KiB are read and carried; over is 413
  {
    name: 'a valid body of 200 KiB is accepted by the handler (#1 end to end: by-reference.test.ts)',
    raw: JSON.stringify({
      requestId: 'big-1',
      cluster: 'hpc',
      demands: Array.from({ length: 13 }, () => ({ nodearray: 'ondemand', count: 1, nodeAttributes: { pad: 'p'.repeat(15_000) } })),
    }),
    status: 202,
  },
  { name: 'a body of 256 KiB + 1 byte', raw: `${scale()}${' '.repeat(256 * 1024 + 1 - scale().length)}`, status: 413 },
];

describe('hostile input over HTTP: the named corpus', () => {
  it.each(httpCases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const answer = await post(c.route ?? 'scale-requests', c.raw, c.headers ?? {});
    expect(answer.status).toBe(c.status);
    if (c.status >= 400) {
      expect(answer.contentType).toBe('application/problem+json');
      expect(answer.body).toMatchObject({ status: c.status });
      expect(typeof answer.body.detail).toBe('string');
      expect(answer.world.submitted).toEqual([]);
    }
    if (c.path !== undefined) {
      const paths = (answer.body.errors as { path: string }[]).map((e) => e.path);
      expect(
        paths.some((p) => (typeof c.path === 'string' ? p === c.path : c.path!.test(p))),
        `paths ${paths.join(', ')}`,
      ).toBe(true);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('#4 GET /api/scale-requests/.. is a 400 naming requestId, not a lookup', async () => {
    for (const id of ['.', '..']) {
      const answer = await getStatus(id);
      expect(answer.status).toBe(400);
      expect((answer.body.errors as { path: string }[])[0]!.path).toBe('requestId');
    }
  });
});

describe('#5 signatures bind timestamp, method and path; replays are refused', () => {
  const SECRET = 'scheduler-hmac-key-0123456789';
  const NEXT = 'scheduler-hmac-key-next-98765';

  it('#5 refuses a body-only signature (the old form) even with a fresh timestamp', async () => {
    const world = fakeDeps();
    world.world.secret = SECRET;
    const raw = scale();
    const { createHmac } = await import('node:crypto');
    const bodyOnly = `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`;
    const answer = await post('scale-requests', raw, { 'x-scaler-signature': bodyOnly, 'x-scaler-timestamp': String(Math.floor(world.world.nowMs / 1000)) }, world);
    expect(answer.status).toBe(401);
    expect(answer.contentType).toBe('application/problem+json');
  });

  it('#5 refuses a captured signature replayed with a fresh X-Scaler-Timestamp', async () => {
    const world = fakeDeps();
    world.world.secret = SECRET;
    const raw = scale();
    const captured = signedHeaders(SECRET, raw, world.world.nowMs - 60_000);
    const replay = { ...captured, 'x-scaler-timestamp': String(Math.floor(world.world.nowMs / 1000)) };
    expect((await post('scale-requests', raw, replay, world)).status).toBe(401);
  });

  it('#5 one signature of an empty body is not valid for both /scale-out/pause and /scale-out/resume', async () => {
    const world = fakeDeps();
    world.world.secret = SECRET;
    const forPause = signedHeaders(SECRET, '', world.world.nowMs, '/api/scale-out/pause');
    const { resumeScaleOut } = await import('../../src/http/routes.ts');
    const { httpRequest } = await import('../http/fakes.ts');
    const resumed = await resumeScaleOut(world.deps, httpRequest('POST', '/api/scale-out/resume', { raw: '', headers: forPause }));
    expect(resumed.status).toBe(401);
    expect((await post('pause', '', forPause, world)).status).toBe(200);
  });

  it('#5 refuses the exact same signed request a second time inside the window (replay cache)', async () => {
    const world = fakeDeps();
    world.world.secret = SECRET;
    const raw = scale();
    const headers = signedHeaders(SECRET, raw, world.world.nowMs);
    expect((await post('scale-requests', raw, headers, world)).status).toBe(202);
    const again = await post('scale-requests', raw, headers, world);
    expect(again.status).toBe(401);
    expect(again.body.detail).toMatch(/already used/);
  });

  it('accepts either of two active secrets during rotation', async () => {
    const world = fakeDeps({ signingSecrets: async () => [NEXT, SECRET] });
    const a = scale({ requestId: 'rot-1' });
    const b = scale({ requestId: 'rot-2' });
    expect((await post('scale-requests', a, signedHeaders(SECRET, a, world.world.nowMs), world)).status).toBe(202);
    expect((await post('scale-requests', b, signedHeaders(NEXT, b, world.world.nowMs), world)).status).toBe(202);
    const c = scale({ requestId: 'rot-3' });
    expect((await post('scale-requests', c, signedHeaders('a-retired-key-000000000', c, world.world.nowMs), world)).status).toBe(401);
  });

  it('the 401 of a refused signature is problem+json', async () => {
    const world = fakeDeps({ requireSignatures: true });
    world.world.secret = SECRET;
    const answer = await post('scale-requests', scale(), {}, world);
    expect(answer.status).toBe(401);
    expect(answer.contentType).toBe('application/problem+json');
    expect(answer.body).toMatchObject({ status: 401, code: 'HTTP_SIGNATURE' });
  });
});

interface QueueCase {
  name: string;
  message: unknown;
  /** `processed`: admitted and worked on; `rejected`: a rejected record under `key`. */
  expect: 'processed' | 'rejected';
  /** The record's key: the request id, or `msg` for `msg-<queue message id>`. */
  key?: string;
  reason?: RegExp;
}

const queueCases: QueueCase[] = [
  {
    name: '#2 callbackUrl "not a url" on the queue',
    message: JSON.parse(scale({ requestId: 'q-cb', callbackUrl: 'not a url' })),
    expect: 'rejected',
    key: 'q-cb',
    reason: /callbackUrl/,
  },
  {
    name: '#2 callbackUrl "http://[::1" on the queue',
    message: JSON.parse(scale({ requestId: 'q-cb2', callbackUrl: 'http://[::1' })),
    expect: 'rejected',
    key: 'q-cb2',
    reason: /callbackUrl/,
  },
  {
    name: '#3 nodeAttributes 2,000 deep on the queue',
    message: withNodeAttributes(attrsOfDepth(2_000), 'q-deep2k'),
    expect: 'rejected',
    key: 'q-deep2k',
    reason: /nodeAttributes/,
  },
  {
    name: '#3 nodeAttributes 3,000 deep on the queue (parsed by the host)',
    message: JSON.parse(withNodeAttributes(attrsOfDepth(3_000), 'q-deep3k')),
    expect: 'rejected',
    key: 'q-deep3k',
    reason: /nodeAttributes/,
  },
  { name: 'a message nested 10,000 deep', message: nestedObjectText(10_000), expect: 'rejected', key: 'msg' },
  { name: '#4 requestId "." on the queue', message: JSON.parse(scale({ requestId: '.' })), expect: 'rejected', key: 'msg', reason: /requestId/ },
  { name: '#4 requestId ".." on the queue', message: JSON.parse(scale({ requestId: '..' })), expect: 'rejected', key: 'msg', reason: /requestId/ },
  { name: '#7 a UTF-8 BOM before JSON text on the queue', message: BOM + scale({ requestId: 'q-bom' }), expect: 'processed', key: 'q-bom' },
  { name: '#7 a UTF-8 BOM in a Buffer', message: Buffer.from(BOM + scale({ requestId: 'q-bom-buf' }), 'utf8'), expect: 'processed', key: 'q-bom-buf' },
  { name: '#7 continue message whose id has / # ?', message: { $scaler: 'continue', requestId: 'a/b#c?d', reason: 'sweeper' }, expect: 'rejected', key: 'msg', reason: /continue/ },
  { name: '#7 continue message with an empty id', message: { $scaler: 'continue', requestId: '', reason: 'sweeper' }, expect: 'rejected', key: 'msg' },
  { name: '#7 continue message with a 10 KiB id', message: { $scaler: 'continue', requestId: 'x'.repeat(10_240) }, expect: 'rejected', key: 'msg' },
  { name: 'text that is not JSON', message: 'hello, scaler', expect: 'rejected', key: 'msg', reason: /not JSON/ },
  { name: 'base64 text the host did not decode', message: encodeQueueMessage(JSON.parse(scale({ requestId: 'q-b64' }))), expect: 'processed', key: 'q-b64' },
  { name: 'invalid UTF-8 bytes', message: Buffer.from([0x7b, 0xff, 0x7d]), expect: 'rejected', key: 'msg' },
  { name: 'a JSON array', message: [1, 2, 3], expect: 'rejected', key: 'msg' },
  { name: 'a JSON number', message: 42, expect: 'rejected', key: 'msg' },
  { name: 'null', message: null, expect: 'rejected', key: 'msg' },
  {
    name: 'demands 1,001 items',
    message: JSON.parse(scale({ requestId: 'q-many', demands: Array.from({ length: 1001 }, () => ({ nodearray: 'ondemand', count: 1 })) })),
    expect: 'rejected',
    key: 'q-many',
    reason: /demands/,
  },
  { name: 'count "4" on the queue', message: JSON.parse(scale({ requestId: 'q-count' }, { count: '4' })), expect: 'rejected', key: 'q-count', reason: /demands\.0\.count/ },
  { name: 'a valid request on the queue', message: JSON.parse(scale({ requestId: 'q-ok' })), expect: 'processed', key: 'q-ok' },
];

describe('hostile input on the scale queue: the named corpus', () => {
  it.each(queueCases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const q = queueHarness();
    const outcome = await q.deliver(c.message);
    expect(outcome.errors).toEqual([]);
    expect(outcome.poisoned).toBe(false);
    expect(outcome.attempts).toBe(1);
    const key = c.key === 'msg' ? `msg-${q.lastMessageId()}` : c.key!;
    const entry = await q.ledger.get(key);
    expect(entry, `a record under ${key}`).not.toBeNull();
    if (c.expect === 'rejected') {
      expect(entry!.record.state).toBe('rejected');
      expect(q.state.counts.rejectedMessages).toBe(1);
      if (c.reason) expect(entry!.record.reason).toMatch(c.reason);
    } else {
      expect(entry!.record.state).not.toBe('rejected');
      expect(q.state.counts.rejectedMessages ?? 0).toBe(0);
    }
  });
});

describe('internal callback messages with odd ids', () => {
  it.each(['a/b#c?d', '', '..', 'x'.repeat(2000)])('ignores a callback message for %j without touching storage', async (requestId) => {
    const { createCallbackSender } = await import('../../src/tracking/callbacks.ts');
    const { silentLogger } = await import('../../src/platform/log.ts');
    const asked: string[] = [];
    const sender = createCallbackSender({
      storage: undefined as never,
      names: undefined as never,
      ledger: {
        get: async (id) => {
          asked.push(id);
          return null;
        },
      },
      signingSecret: async () => undefined,
      now: () => 0,
      logger: silentLogger,
    });
    await expect(sender.handleCallbackMessage({ $callback: 'deliver', requestId }, { dequeueCount: 1 })).resolves.toBeUndefined();
    expect(asked).toEqual([]);
  });
});

describe('corpus size', () => {
  it('has at least 60 named cases', () => {
    expect(httpCases.length + queueCases.length).toBeGreaterThanOrEqual(60);
  });
});
