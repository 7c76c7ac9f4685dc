/**
 * Fuzzing the HTTP routes and the scale-queue handler (issue 14) with fast-check: random JSON,
 * mutated valid requests, random bytes, deep nesting, huge strings and odd encodings. Every run
 * generates {@link RUNS} bodies for HTTP and {@link RUNS} for the queue (a fresh seed each run;
 * a failure prints its seed and the shrunk body).
 *
 * Asserted for every body: no 5xx; a 4xx is problem+json and a validation 400 names its fields;
 * accepted bodies are valid requests; on the queue nothing throws (nothing would reach the poison
 * queue — every failure here is permanent, so a throw is a bug), and a message with a usable
 * requestId leaves a record under it (or under `msg-<queue message id>` when it has none).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeQueueMessage } from '../../src/platform/storage.ts';
import { parseRequestMessage, RequestId } from '../../src/ledger/schemas.ts';
import { decodeIntakeMessage } from '../../src/requests/intake-guards.ts';
import { fakeDeps } from '../http/fakes.ts';
import { nestedArrayText, nestedObjectText, post, queueHarness, type PostRoute } from './harness.ts';

/** Bodies per property and run (HTTP and queue each). */
const RUNS = 1000;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const validRequest = fc.record({
  requestId: fc.stringMatching(/^[A-Za-z0-9._:-]{1,24}$/),
  cluster: fc.constantFrom('hpc', 'other'),
  demands: fc.array(
    fc.record(
      {
        nodearray: fc.constantFrom('ondemand', 'mpi'),
        count: fc.integer({ min: 1, max: 40 }),
        machineTypes: fc.constantFrom(['Standard_F32s_v2'], ['Standard_HC44rs']),
        colocated: fc.boolean(),
        jobId: fc.string({ maxLength: 12 }),
        nodeAttributes: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 }),
      },
      { requiredKeys: ['nodearray', 'count'] },
    ),
    { minLength: 1, maxLength: 3 },
  ),
  callbackUrl: fc.constantFrom(undefined, 'https://hooks.example.com/x', 'not a url', 'http://[::1', 'https://', '//x'),
});

const mutation = fc.record({
  op: fc.constantFrom('set', 'delete', 'add'),
  at: fc.nat(),
  key: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'kind', 'requestId', 'count', 'callbackUrl', 'nodeAttributes')),
  value: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom('.', '..', '', -1, Number.POSITIVE_INFINITY, 'a/b#c?d', 'https://exa mple.com')),
});

/** Applies mutations at containers chosen by index (walks without recursion). */
function mutate(base: Json, mutations: { op: string; at: number; key: string; value: unknown }[]): Json {
  const root = structuredClone(base) as Json;
  for (const m of mutations) {
    const containers: (Json[] | { [k: string]: Json })[] = [];
    const stack: Json[] = [root];
    while (stack.length) {
      const v = stack.pop()!;
      if (v && typeof v === 'object') {
        containers.push(v);
        for (const x of Object.values(v)) stack.push(x);
      }
    }
    const target = containers[m.at % containers.length]!;
    const keys = Object.keys(target);
    if (Array.isArray(target)) {
      if (m.op === 'delete' && target.length) target.splice(m.at % target.length, 1);
      else target[m.op === 'add' ? target.length : m.at % Math.max(1, target.length)] = m.value as Json;
    } else if (m.op === 'delete' && keys.length) delete target[keys[m.at % keys.length]!];
    else
      Object.defineProperty(target, m.op === 'add' || !keys.length ? m.key : keys[m.at % keys.length]!, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  return root;
}

const stripUndefined = (r: Record<string, unknown>): Json => JSON.parse(JSON.stringify(r)) as Json;

const mutatedText = fc.tuple(validRequest, fc.array(mutation, { maxLength: 3 })).map(([r, ms]) => JSON.stringify(mutate(stripUndefined(r), ms)));

const deepText = fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('object', 'array', 'nodeAttributes', 'unknown-key')).map(([depth, where]) => {
  if (where === 'object') return nestedObjectText(depth);
  if (where === 'array') return nestedArrayText(depth);
  const inner = nestedObjectText(depth);
  return where === 'nodeAttributes'
    ? `{"requestId":"deep-${depth}","cluster":"hpc","demands":[{"nodearray":"ondemand","count":1,"nodeAttributes":${inner}}]}`
    : `{"requestId":"deep-${depth}","cluster":"hpc","demands":[{"nodearray":"ondemand","count":1}],"x":${inner}}`;
});

const hugeText = fc
  .tuple(fc.integer({ min: 1_000, max: 300_000 }), fc.constantFrom('requestId', 'cluster', 'jobId', 'callbackUrl', 'nodeAttributes', 'padding'))
  .map(([n, field]) => {
    const big = 'x'.repeat(n);
    const demand: Record<string, unknown> = { nodearray: 'ondemand', count: 1 };
    const body: Record<string, unknown> = { requestId: 'huge-1', cluster: 'hpc', demands: [demand] };
    if (field === 'jobId') demand.jobId = big;
    else if (field === 'nodeAttributes') demand.nodeAttributes = { big };
    else if (field === 'callbackUrl') body.callbackUrl = `https://h.example.com/${big}`;
    else if (field === 'padding') return `${JSON.stringify(body)}${' '.repeat(n)}`;
    else body[field] = big;
    return JSON.stringify(body);
  });

/** A body as bytes: text in UTF-8, or re-encoded oddly. */
const oddBytes = fc
  .tuple(fc.oneof(mutatedText, fc.json()), fc.constantFrom('bom', 'utf16le', 'latin1', 'truncate', 'nul', 'invalid-byte', 'bom-twice'))
  .map(([text, how]): Uint8Array => {
    const utf8 = Buffer.from(text, 'utf8');
    switch (how) {
      case 'bom':
        return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8]);
      case 'bom-twice':
        return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]), utf8]);
      case 'utf16le':
        return Buffer.from(text, 'utf16le');
      case 'latin1':
        return Buffer.from(`${text.slice(0, -1)}é${text.slice(-1)}`, 'latin1');
      case 'truncate':
        return utf8.subarray(0, Math.floor(utf8.length / 2));
      case 'nul':
        return Buffer.concat([utf8.subarray(0, 3), Buffer.from([0]), utf8.subarray(3)]);
      default:
        return Buffer.concat([utf8.subarray(0, 2), Buffer.from([0xc3, 0x28]), utf8.subarray(2)]);
    }
  });

const body: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { arbitrary: fc.json({ maxDepth: 6 }), weight: 3 },
  { arbitrary: mutatedText, weight: 5 },
  { arbitrary: fc.uint8Array({ maxLength: 512 }), weight: 2 },
  { arbitrary: deepText, weight: 2 },
  { arbitrary: hugeText, weight: 1 },
  { arbitrary: oddBytes, weight: 2 },
);

const contentType = fc.constantFrom(
  'application/json',
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/xml',
  '',
  'application/json; charset=latin1',
  'application/vnd.api+json',
);
const route = fc.constantFrom<PostRoute>('scale-requests', 'terminate', 'plan');

describe(`fuzz: ${RUNS} generated bodies per run against the HTTP routes`, () => {
  it('never answers 5xx; every refusal is problem+json naming what is wrong', async () => {
    const world = fakeDeps();
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(route, body, contentType, async (r, raw, type) => {
        const answer = await post(r, raw, { 'content-type': type }, world);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        expect(answer.status).toBeLessThan(500);
        expect([200, 202, 400, 404, 409, 413, 415]).toContain(answer.status);
        if (answer.status >= 400) {
          expect(answer.contentType).toBe('application/problem+json');
          expect(answer.body.status).toBe(answer.status);
          expect(typeof answer.body.detail).toBe('string');
          if (answer.body.code === 'HTTP_VALIDATION') {
            const errors = answer.body.errors as { path: string; message: string }[];
            expect(errors.length).toBeGreaterThan(0);
            for (const e of errors) {
              expect(typeof e.path).toBe('string');
              expect(e.message.length).toBeGreaterThan(0);
            }
          }
        }
      }),
      { numRuns: RUNS },
    );
    // The generators reach both sides: accepted, invalid, not JSON, and not declared as JSON.
    for (const status of [202, 400, 415]) expect(statuses.get(status) ?? 0, `answers ${status}`).toBeGreaterThan(0);
    // Everything accepted was a valid request.
    for (const m of world.world.submitted) expect(parseRequestMessage(m).ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 300_000);
});

/** How the trigger may hand the message over: parsed object, text, bytes, or undecoded base64. */
const delivery = fc.constantFrom('object', 'text', 'buffer', 'base64');

describe(`fuzz: ${RUNS} generated messages per run against the scale-queue handler`, () => {
  it('never throws (no poison loop) and leaves a record for every message', async () => {
    const q = queueHarness();
    const actions = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(body, delivery, async (raw, how) => {
        const text = typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8');
        let message: unknown = typeof raw === 'string' ? raw : Buffer.from(raw);
        if (how === 'object') {
          try {
            message = JSON.parse(text);
          } catch {
            message = text;
          }
        } else if (how === 'text') message = text;
        else if (how === 'base64') message = encodeQueueMessage(text);
        const outcome = await q.deliver(message);
        expect(outcome.errors).toEqual([]);
        expect(outcome.poisoned).toBe(false);
        actions.set(outcome.result!.action, (actions.get(outcome.result!.action) ?? 0) + 1);
        const decoded = decodeIntakeMessage(message);
        const id = decoded.ok ? decoded.body.requestId : undefined;
        const key = RequestId.safeParse(id).success && outcome.result!.action !== 'rejected' ? (id as string) : outcome.result!.requestId;
        expect(await q.ledger.get(key), `record ${key}`).not.toBeNull();
        if (outcome.result!.action === 'rejected') expect(q.state.counts.rejectedMessages).toBeGreaterThan(0);
      }),
      { numRuns: RUNS },
    );
    expect(actions.get('rejected') ?? 0).toBeGreaterThan(0);
    expect(RUNS - (actions.get('rejected') ?? 0), 'some messages are valid and processed').toBeGreaterThan(0);
  }, 300_000);
});
