/**
 * Issue 14 #6: callbacks cannot be aimed inward. A resolver that answers private, link-local and
 * loopback addresses stands in for a hostile DNS name; the real sender runs on azurite.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { addressClass, checkCallbackTarget, guardedLookup, postGuarded, type CallbackTargetPolicy, type ResolvedAddress } from '../../src/tracking/callback-guard.ts';
import { createCallbackSender } from '../../src/tracking/callbacks.ts';
import { Storage } from '../../src/platform/storage.ts';
import { newEntry } from '../../src/ledger/record.ts';
import type { LedgerEntry } from '../../src/ledger/types.ts';
import { uniqueNames } from '../helpers/names.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { peekAll, pumpOnce } from '../tracking/pump.ts';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const resolvingTo =
  (...addresses: string[]) =>
  async (): Promise<ResolvedAddress[]> =>
    addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
const azure = (over: Partial<CallbackTargetPolicy> = {}): CallbackTargetPolicy => ({ allowedHosts: [], localDevelopment: false, ...over });

describe('address classes', () => {
  it.each([
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['168.63.129.16', 'azure-platform'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fd00::1', 'private'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['8.8.8.8', 'public'],
    ['2606:4700::1111', 'public'],
  ])('%s is %s', (address, cls) => {
    expect(addressClass(address)).toBe(cls);
  });
});

describe('#6 the send-time check (after DNS resolution)', () => {
  it.each([
    ['169.254.169.254', /link-local/],
    ['10.0.0.4', /private/],
    ['127.0.0.1', /loopback/],
    ['fe80::1', /link-local/],
    ['168.63.129.16', /azure-platform/],
  ])('refuses a public-looking name that resolves to %s', async (address, reason) => {
    const verdict = await checkCallbackTarget('https://hooks.example.com/x', azure({ resolve: resolvingTo(address) }));
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toMatch(reason);
  });

  it('refuses when any one of several addresses is internal', async () => {
    expect((await checkCallbackTarget('https://hooks.example.com/x', azure({ resolve: resolvingTo('8.8.8.8', '10.0.0.1') }))).ok).toBe(false);
  });

  it('refuses IP literals in internal ranges without asking DNS', async () => {
    const resolve = async () => {
      throw new Error('DNS must not be asked for an IP literal');
    };
    for (const url of ['https://169.254.169.254/latest/meta-data', 'https://10.0.0.1/', 'https://[::1]/', 'https://[::ffff:a9fe:a9fe]/']) {
      expect((await checkCallbackTarget(url, azure({ resolve }))).ok, url).toBe(false);
    }
  });

  it('allows a public host, and an internal one only when it is listed', async () => {
    expect((await checkCallbackTarget('https://hooks.example.com/x', azure({ resolve: resolvingTo('93.184.216.34') }))).ok).toBe(true);
    const listed = azure({ allowedHosts: ['scheduler.corp.internal'], resolve: resolvingTo('10.0.0.7') });
    expect((await checkCallbackTarget('https://scheduler.corp.internal/hook', listed)).ok).toBe(true);
    // With an allow-list, unlisted hosts are refused even when public.
    const other = await checkCallbackTarget('https://hooks.example.com/x', { ...listed, resolve: resolvingTo('93.184.216.34') });
    expect(other).toMatchObject({ ok: false, reason: expect.stringMatching(/CALLBACK_ALLOWED_HOSTS/) });
  });

  it('allows http only to loopback, and only in local development', async () => {
    expect((await checkCallbackTarget('http://127.0.0.1:9000/x', azure())).ok).toBe(false);
    expect((await checkCallbackTarget('http://127.0.0.1:9000/x', azure({ localDevelopment: true }))).ok).toBe(true);
    expect((await checkCallbackTarget('http://hooks.example.com/x', azure({ localDevelopment: true, resolve: resolvingTo('93.184.216.34') }))).ok).toBe(false);
    // Local development does not open private ranges.
    expect((await checkCallbackTarget('https://hooks.example.com/x', azure({ localDevelopment: true, resolve: resolvingTo('192.168.0.10') }))).ok).toBe(false);
  });

  it('refuses a name that does not resolve, without throwing', async () => {
    const resolve = async () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' }));
    expect(await checkCallbackTarget('https://nowhere.example/x', azure({ resolve }))).toMatchObject({ ok: false, reason: expect.stringMatching(/ENOTFOUND/) });
  });
});

describe('#6 the connection resolves through the guard (DNS rebinding)', () => {
  // A receiver that answers 200 and then streams a body for ever, noting when the client hangs up.
  let server: Server;
  let port = 0;
  let hungUp: Promise<void>;
  let onHangUp: () => void = () => {};
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('x'.repeat(16 * 1024)), 5);
      res.on('close', () => {
        clearInterval(timer);
        onHangUp();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );

  it('refuses inside the lookup when the name now resolves to an internal address', async () => {
    const lookup = guardedLookup(azure({ resolve: resolvingTo('169.254.169.254') }));
    const error = await new Promise<Error | null>((resolve) => lookup('hooks.example.com', { all: true }, (e) => resolve(e)));
    expect(error).toMatchObject({ code: 'CALLBACK_TARGET_REFUSED' });
  });

  it('connects to the address the guard checked, and hangs up without reading the answer body', async () => {
    hungUp = new Promise<void>((r) => (onHangUp = r));
    const policy = azure({ localDevelopment: true, resolve: resolvingTo('127.0.0.1') });
    const res = await postGuarded(`http://localhost:${port}/hook`, { 'content-type': 'application/json' }, '{}', policy, 5_000);
    expect(res.status).toBe(200);
    await hungUp; // the endless body was not read: the client closed the connection
    const refused = postGuarded(`http://localhost:${port}/hook`, { 'content-type': 'application/json' }, '{}', { ...policy, resolve: resolvingTo('10.0.0.1') }, 5_000);
    await expect(refused).rejects.toMatchObject({ code: 'CALLBACK_TARGET_REFUSED' });
  });
});

describe('#6 the callback sender never POSTs to a refused target', () => {
  let storage: Storage;
  beforeAll(() => {
    storage = Storage.fromConnectionString(inject('storageConnectionString'));
  });

  function finalEntry(requestId: string, callbackUrl: string): LedgerEntry {
    const e = newEntry({ kind: 'scale', requestId, cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }], callbackUrl }, Date.now(), 30 * 60_000);
    e.record.state = 'fulfilled';
    return e;
  }

  it.each([
    ['a metadata address behind a public name', 'https://metadata.example.com/x', azure({ resolve: resolvingTo('169.254.169.254') })],
    ['a private address behind a public name', 'https://hooks.example.com/x', azure({ resolve: resolvingTo('10.20.30.40') })],
    ['plain http to loopback in Azure', 'http://127.0.0.1:1/x', azure()],
  ])('%s: not sent, logged, not retried', async (_name, url, target) => {
    const names = uniqueNames();
    await storage.ensure({ tables: [names.stateTable], queues: [names.callbackQueue] });
    const logs = captureLogs();
    const sent: string[] = [];
    const fetchSpy = (async (u: string | URL | Request) => {
      sent.push(String(u));
      return new Response(null, { status: 204 });
    }) as typeof fetch;
    const s = createCallbackSender({
      storage,
      names,
      ledger: { get: async (id) => (id === 'ssrf-1' ? finalEntry('ssrf-1', url) : null) },
      signingSecret: async () => undefined,
      now: () => Date.now(),
      logger: logs.logger,
      fetch: fetchSpy,
      target,
      retryDelaysMs: [0],
    });
    await s.enqueue('ssrf-1');
    await pumpOnce(storage, names.callbackQueue, s.handleCallbackMessage);
    expect(sent).toEqual([]);
    expect(logs.entries()).toContainEqual(expect.objectContaining({ level: 'error', msg: 'callback refused: target not allowed' }));
    expect(await peekAll(storage, names.callbackQueue)).toEqual([]);
  });

  it('retries a callback whose host does not resolve right now (DNS may recover), sending nothing', async () => {
    const names = uniqueNames();
    await storage.ensure({ tables: [names.stateTable], queues: [names.callbackQueue] });
    const sent: string[] = [];
    const s = createCallbackSender({
      storage,
      names,
      ledger: { get: async (id) => (id === 'dns-1' ? finalEntry('dns-1', 'https://hooks.example.com/x') : null) },
      signingSecret: async () => undefined,
      now: () => Date.now(),
      logger: captureLogs().logger,
      fetch: (async (u: string | URL | Request) => {
        sent.push(String(u));
        return new Response(null, { status: 204 });
      }) as typeof fetch,
      target: azure({ resolve: async () => Promise.reject(Object.assign(new Error('temporary'), { code: 'EAI_AGAIN' })) }),
      retryDelaysMs: [0],
    });
    await s.enqueue('dns-1');
    await pumpOnce(storage, names.callbackQueue, s.handleCallbackMessage);
    expect(sent).toEqual([]);
    expect((await peekAll(storage, names.callbackQueue)).length).toBe(1);
  });
});
