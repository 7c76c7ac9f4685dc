import { afterAll, beforeAll, beforeEach, describe, expect, it, inject } from 'vitest';
import { Storage } from '../../src/platform/storage.ts';
import { verifySignature } from '../../src/platform/signature.ts';
import type { StorageNames } from '../../src/platform/names.ts';
import { createCallbackSender, type CallbackSenderDeps } from '../../src/tracking/callbacks.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { newEntry } from '../../src/ledger/record.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { uniqueNames } from '../helpers/names.ts';
import { peekAll, pumpOnce } from './pump.ts';
import { startReceiver, type Receiver } from './receiver.ts';

const SECRET = 'callback-hmac-key-0123456789';

let rx: Receiver;
let baseUrl: string;

beforeAll(async () => {
  rx = await startReceiver('');
  baseUrl = rx.url;
});

afterAll(() => rx.close());

let names: StorageNames;
let storage: Storage;
const T0 = Date.now();

function finalEntry(requestId: string, callbackUrl: string | undefined): LedgerEntry {
  const e = newEntry({ kind: 'scale', requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }], ...(callbackUrl ? { callbackUrl } : {}) }, T0, 30 * 60_000);
  e.record.state = 'fulfilled';
  return e;
}

function sender(entries: Record<string, LedgerEntry>, over: Partial<CallbackSenderDeps> = {}) {
  const logs = captureLogs();
  const s = createCallbackSender({
    storage,
    names,
    ledger: { get: async (id) => entries[id] ?? null },
    signingSecret: async () => SECRET,
    now: () => Date.now(),
    logger: logs.logger,
    retryDelaysMs: [0, 0],
    // The receiver listens on loopback http: local development.
    target: { allowedHosts: [], localDevelopment: true },
    ...over,
  });
  return { s, logs };
}

const pump = (handle: (m: unknown, meta: { dequeueCount: number }) => Promise<void>) => pumpOnce(storage, names.callbackQueue, handle);

beforeEach(async () => {
  names = uniqueNames();
  storage = Storage.fromConnectionString(inject('storageConnectionString'));
  await storage.ensure({ tables: [names.stateTable], queues: [names.callbackQueue] });
  rx.received.length = 0;
  rx.script.length = 0;
});

describe('callbacks', () => {
  it('POSTs the record signed, with the request id, and the signature verifies', async () => {
    // Prepare
    const entry = finalEntry('job-1', `${baseUrl}/hook?token=abc`);
    const { s, logs } = sender({ 'job-1': entry });
    // Act
    await s.enqueue('job-1');
    await pump(s.handleCallbackMessage);
    // Assess
    expect(rx.received).toHaveLength(1);
    const { headers, body } = rx.received[0]!;
    expect(headers['content-type']).toBe('application/json');
    expect(headers['x-scaler-request-id']).toBe('job-1');
    expect(JSON.parse(body)).toEqual(entry.record);
    expect(verifySignature(SECRET, body, headers['x-scaler-signature'] as string, headers['x-scaler-timestamp'] as string, Date.now())).toMatchObject({ ok: true });
    expect([...logs.lines]).toContainNoSecret([SECRET, headers['x-scaler-signature'] as string, 'token=abc']);
    expect(await peekAll(storage, names.callbackQueue)).toEqual([]);
  });

  it('retries after a 500 and delivers on the next try', async () => {
    // Prepare
    rx.script.push(500);
    const { s } = sender({ 'job-2': finalEntry('job-2', `${baseUrl}/hook`) });
    await s.enqueue('job-2');
    // Act
    await pump(s.handleCallbackMessage);
    const requeued = await peekAll(storage, names.callbackQueue);
    await pump(s.handleCallbackMessage);
    // Assess
    expect(requeued).toEqual([{ $callback: 'deliver', requestId: 'job-2', attempt: 1 }]);
    expect(rx.received).toHaveLength(2);
    expect(rx.received[1]!.body).toBe(rx.received[0]!.body);
    expect(await peekAll(storage, names.callbackQueue)).toEqual([]);
  });

  it('gives up after the last retry and says so', async () => {
    rx.script.push(500, 503, 502);
    const { s, logs } = sender({ 'job-3': finalEntry('job-3', `${baseUrl}/hook`) });
    await s.enqueue('job-3');
    for (let i = 0; i < 4; i++) await pump(s.handleCallbackMessage);
    expect(rx.received).toHaveLength(3);
    expect(logs.entries().some((l) => l.msg === 'callback given up' && l.attempts === 3)).toBe(true);
    expect(await peekAll(storage, names.callbackQueue)).toEqual([]);
  });

  it('treats a receiver that does not answer in time as a failure', async () => {
    rx.script.push('hang');
    const { s } = sender({ 'job-4': finalEntry('job-4', `${baseUrl}/hook`) }, { timeoutMs: 300 });
    await s.enqueue('job-4');
    await pump(s.handleCallbackMessage);
    expect(await peekAll(storage, names.callbackQueue)).toEqual([{ $callback: 'deliver', requestId: 'job-4', attempt: 1 }]);
  });

  it('delivers one record version once, however many messages ask', async () => {
    const { s } = sender({ 'job-5': finalEntry('job-5', `${baseUrl}/hook`) });
    await Promise.all([s.enqueue('job-5'), s.enqueue('job-5'), s.enqueue('job-5')]);
    await pump(s.handleCallbackMessage);
    await pump(s.handleCallbackMessage);
    expect(rx.received).toHaveLength(1);
  });

  it('sends unsigned when no secret is configured, and skips requests without a callbackUrl', async () => {
    const { s } = sender({ 'job-6': finalEntry('job-6', `${baseUrl}/hook`), 'job-7': finalEntry('job-7', undefined) }, { signingSecret: async () => undefined });
    await s.enqueue('job-6');
    await s.enqueue('job-7');
    await pump(s.handleCallbackMessage);
    expect(rx.received).toHaveLength(1);
    expect(rx.received[0]!.headers['x-scaler-signature']).toBeUndefined();
  });

  it('does not call back for a request that is not final', async () => {
    const open = finalEntry('job-8', `${baseUrl}/hook`);
    open.record.state = 'submitted';
    const { s } = sender({ 'job-8': open });
    await s.enqueue('job-8');
    await pump(s.handleCallbackMessage);
    expect(rx.received).toHaveLength(0);
  });
});
