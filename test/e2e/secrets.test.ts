/**
 * Secrets never reach a log line, an error or a record — proven on the running product: every line
 * `npm start` writes while it handles refused keys, bad signatures, CycleCloud failures and signed
 * callbacks is scanned for the CycleCloud password, its Basic header, the HMAC key and the function
 * key (which only the start-up banner may show, because the contract asks for it there).
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signRequest, verifySignature } from '../../src/platform/signature.ts';
import { startScaler, type RunningScaler } from './harness.ts';
import '../helpers/log-capture.ts';

const SIGNING_SECRET = 'e2e-signing-secret-0123456789abcdef';
const FUNCTION_KEY = 'e2e-function-key-fedcba9876543210';
let host: RunningScaler;
let callbacks: Server;
let callbackUrl: string;
const received: { headers: Record<string, unknown>; body: string }[] = [];

beforeAll(async () => {
  callbacks = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => callbacks.listen(0, '127.0.0.1', r));
  const addr = callbacks.address();
  callbackUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/hook`;
  host = await startScaler({
    storageConnectionString: inject('storageConnectionString'),
    env: { SCALER_SIGNING_SECRET: SIGNING_SECRET, FUNCTION_KEY, LOG_LEVEL: 'debug' },
  });
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await new Promise((r) => callbacks?.close(r));
});

describe('secrets on the running product', () => {
  it('keeps the password, Basic header, HMAC key and function key out of every log line, answer and record', async () => {
    // Act: a wrong key, a bad signature, a create CycleCloud fails, and a signed request with a callback
    const wrongKey = await fetch(`${host.base}/scale-requests/x`, { headers: { 'x-functions-key': 'not-the-key' } });
    const body = JSON.stringify({ requestId: 'sec-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }], callbackUrl });
    const badSig = await host.api('/scale-requests', {
      method: 'POST',
      body,
      headers: { 'x-scaler-signature': `sha256=${'0'.repeat(64)}`, 'x-scaler-timestamp': String(Math.floor(Date.now() / 1000)) },
    });
    await host.sim$('/__sim/faults', {
      method: 'POST',
      body: JSON.stringify({ method: 'POST', pathRegex: 'nodes/create', kind: 'status', status: 500, times: 1 }),
      headers: { 'content-type': 'application/json' },
    });
    const { signature, timestamp } = signRequest(SIGNING_SECRET, { method: 'POST', path: '/api/scale-requests', body }, Date.now());
    const accepted = await host.api('/scale-requests', { method: 'POST', body, headers: { 'x-scaler-signature': signature, 'x-scaler-timestamp': timestamp } });
    const record = await host.waitFinal('sec-1', 45_000);
    const deadline = Date.now() + 15_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));

    // Assess: the calls did what they should
    expect(wrongKey.status).toBe(401);
    expect(badSig.status).toBe(401);
    expect(accepted.status).toBe(202);
    expect(record.state).toBe('fulfilled');
    expect(received.length).toBeGreaterThanOrEqual(1);
    expect(
      verifySignature(SIGNING_SECRET, received[0]!.body, received[0]!.headers['x-scaler-signature'] as string, received[0]!.headers['x-scaler-timestamp'] as string, Date.now()).ok,
    ).toBe(true);

    // Assess: no secret anywhere but the banner's function key
    const basic = Buffer.from(`${host.sim.username}:${host.sim.password}`).toString('base64');
    const lines = host
      .output()
      .split('\n')
      .filter((l) => !/^\s*(Function key:|curl |npx ccscale )/.test(l));
    expect(lines.length).toBeGreaterThan(20); // the scan sees the product's logs, not an empty buffer
    expect(lines.join('\n')).toMatch(/"level":"warn"/); // including the failure paths
    expect(lines).toContainNoSecret([host.sim.password, basic, SIGNING_SECRET, FUNCTION_KEY]);
    expect([await wrongKey.text(), await badSig.text(), JSON.stringify(record), received[0]!.body]).toContainNoSecret([host.sim.password, basic, SIGNING_SECRET, FUNCTION_KEY]);
  }, 90_000);
});
