import { describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES, readBoundedBody } from '../../src/http/body.ts';
import { explainPlan, pauseScaleOut, submitScaleRequest, submitTerminate } from '../../src/http/routes.ts';
import { Problem } from '../../src/http/schemas.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { fakeDeps, headerOf, httpRequest, scaleBody, signedHeaders } from './fakes.ts';

const problemOf = (res: { jsonBody?: unknown }) => Problem.parse(res.jsonBody);

/** A body of exactly `bytes` bytes that is still valid JSON (padding in a string). */
function jsonOfSize(bytes: number): string {
  const head = '{"requestId":"big","cluster":"hpc","demands":[{"nodearray":"ondemand","count":1,"jobId":"';
  const tail = '"}]}';
  return head + 'x'.repeat(bytes - head.length - tail.length) + tail;
}

/** A stream that hands out `chunk`-byte pieces forever and counts what was pulled. */
function endlessStream(chunk: number): { stream: ReadableStream<Uint8Array>; pulled: () => number; cancelled: () => boolean } {
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += chunk;
      controller.enqueue(new Uint8Array(chunk).fill(0x20));
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, pulled: () => pulled, cancelled: () => cancelled };
}

describe('body size limit (413 over 256 KiB)', () => {
  it('refuses by content-length before reading anything', async () => {
    // Prepare: a body that would throw if anyone read it.
    const stream = new ReadableStream<Uint8Array>({
      pull() {
        throw new Error('the body must not be read');
      },
    });
    // Act
    const outcome = await readBoundedBody({ headers: new Headers({ 'content-length': String(MAX_BODY_BYTES + 1) }), body: stream });
    // Assess
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.response.status).toBe(413);
      expect(problemOf(outcome.response).detail).toContain('262144 bytes');
    }
  });

  it('stops reading a body without content-length just past the limit', async () => {
    const endless = endlessStream(16 * 1024);
    const outcome = await readBoundedBody({ headers: new Headers(), body: endless.stream });
    expect(outcome.ok).toBe(false);
    expect(endless.cancelled()).toBe(true);
    // Read at most the limit plus one chunk (and whatever the stream queued ahead).
    expect(endless.pulled()).toBeLessThanOrEqual(MAX_BODY_BYTES + 3 * 16 * 1024);
  });

  it('accepts a body of exactly 256 KiB', async () => {
    const { deps } = fakeDeps();
    const raw = jsonOfSize(MAX_BODY_BYTES);
    expect(Buffer.byteLength(raw)).toBe(MAX_BODY_BYTES);
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers: { 'content-length': String(MAX_BODY_BYTES) } }));
    // jobId is longer than 256 characters: the body was read and validated, not refused for size.
    expect(res.status).toBe(400);
    expect(problemOf(res).errors!.map((e) => e.path)).toEqual(['demands.0.jobId']);
  });

  it('answers 413 problem+json on the route with content-length', async () => {
    const { deps, world } = fakeDeps();
    const raw = jsonOfSize(MAX_BODY_BYTES + 1);
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers: { 'content-length': String(MAX_BODY_BYTES + 1) } }));
    expect(res.status).toBe(413);
    expect(headerOf(res, 'content-type')).toBe('application/problem+json');
    expect(problemOf(res)).toMatchObject({ status: 413, code: 'HTTP_TOO_LARGE' });
    expect(world.submitted).toHaveLength(0);
  });

  it('answers 413 on the route without content-length', async () => {
    const { deps } = fakeDeps();
    const req = httpRequest('POST', '/api/terminate', { raw: jsonOfSize(MAX_BODY_BYTES + 100) });
    expect(req.headers.get('content-length')).toBeNull();
    const res = await submitTerminate(deps, req);
    expect(res.status).toBe(413);
  });

  it('applies to /api/plan too', async () => {
    const { deps } = fakeDeps();
    const res = await explainPlan(deps, httpRequest('POST', '/api/plan', { raw: jsonOfSize(MAX_BODY_BYTES * 2) }));
    expect(res.status).toBe(413);
  });
});

describe('incoming signatures (X-Scaler-Signature, X-Scaler-Timestamp)', () => {
  const SECRET = 'hmac-key-of-the-scheduler-0123456789';

  it('accepts a valid signature', async () => {
    const { deps, world } = fakeDeps();
    world.secret = SECRET;
    const raw = JSON.stringify(scaleBody());
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers: signedHeaders(SECRET, raw, world.nowMs) }));
    expect(res.status).toBe(202);
  });

  it('refuses a signature older than 5 minutes with 401', async () => {
    const logs = captureLogs();
    const { deps, world } = fakeDeps({ logger: logs.logger });
    world.secret = SECRET;
    const raw = JSON.stringify(scaleBody());
    const headers = signedHeaders(SECRET, raw, world.nowMs - 5 * 60_000 - 1_000);
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers }));
    expect(res.status).toBe(401);
    expect(problemOf(res)).toMatchObject({ code: 'HTTP_SIGNATURE' });
    expect(problemOf(res).detail).toMatch(/5 minutes/);
    expect(world.submitted).toHaveLength(0);
    expect(logs.entries()).toContainEqual(expect.objectContaining({ level: 'warn', reason: 'expired' }));
  });

  it('accepts a signature 4 minutes old', async () => {
    const { deps, world } = fakeDeps();
    world.secret = SECRET;
    const raw = JSON.stringify(scaleBody());
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers: signedHeaders(SECRET, raw, world.nowMs - 4 * 60_000) }));
    expect(res.status).toBe(202);
  });

  it('refuses a tampered body with 401 and never echoes the signature', async () => {
    const logs = captureLogs();
    const { deps, world } = fakeDeps({ logger: logs.logger });
    world.secret = SECRET;
    const raw = JSON.stringify(scaleBody());
    const headers = signedHeaders(SECRET, raw, world.nowMs);
    const tampered = raw.replace('"count":4', '"count":40');
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw: tampered, headers }));
    expect(res.status).toBe(401);
    expect(problemOf(res).detail).toMatch(/^X-Scaler-Signature does not match/);
    const hex = headers['x-scaler-signature']!.slice('sha256='.length);
    expect([JSON.stringify(res), ...logs.lines]).toContainNoSecret([hex, SECRET]);
    expect(world.submitted).toHaveLength(0);
  });

  it('refuses a malformed signature and a signature without timestamp', async () => {
    const { deps, world } = fakeDeps();
    world.secret = SECRET;
    const raw = JSON.stringify(scaleBody());
    const malformed = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers: { 'x-scaler-signature': 'md5=abc', 'x-scaler-timestamp': '1' } }));
    expect(malformed.status).toBe(401);
    const { signature } = { signature: signedHeaders(SECRET, raw, world.nowMs)['x-scaler-signature']! };
    const noTs = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers: { 'x-scaler-signature': signature } }));
    expect(noTs.status).toBe(401);
    expect(problemOf(noTs).detail).toContain('X-Scaler-Timestamp');
  });

  it('refuses unsigned POSTs when signatures are required, on every POST route', async () => {
    const { deps, world } = fakeDeps({ requireSignatures: true });
    world.secret = SECRET;
    const raw = JSON.stringify(scaleBody());
    for (const [handler, path] of [
      [submitScaleRequest, '/api/scale-requests'],
      [explainPlan, '/api/plan'],
      [pauseScaleOut, '/api/scale-out/pause'],
    ] as const) {
      const res = await handler(deps, httpRequest('POST', path, { raw }));
      expect(res.status, path).toBe(401);
    }
    expect(world.paused).toBe(false);
    // Signed, the same requests pass.
    const signed = await pauseScaleOut(deps, httpRequest('POST', '/api/scale-out/pause', { raw: '', headers: signedHeaders(SECRET, '', world.nowMs, '/api/scale-out/pause') }));
    expect(signed.status).toBe(200);
  });

  it('refuses everything when signatures are required but no secret is configured (fail closed)', async () => {
    const { deps } = fakeDeps({ requireSignatures: true });
    const raw = JSON.stringify(scaleBody());
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { raw, headers: signedHeaders('any', raw, Date.now()) }));
    expect(res.status).toBe(401);
  });

  it('accepts unsigned POSTs when not required, without asking for the secret', async () => {
    const { deps, world } = fakeDeps();
    world.secret = SECRET;
    const res = await submitScaleRequest(deps, httpRequest('POST', '/api/scale-requests', { body: scaleBody() }));
    expect(res.status).toBe(202);
    expect(world.secretReads).toBe(0);
  });
});
