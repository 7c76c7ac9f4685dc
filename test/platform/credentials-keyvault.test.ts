import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TokenCredential } from '@azure/core-auth';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { CredentialError, keyVaultCredentialProvider, secretSource, type SecretSourceOptions } from '../../src/platform/credentials.ts';
import { selfSignedCert, startFakeServer } from '../cyclecloud/fake-server.ts';
import '../helpers/log-capture.ts';

/**
 * A fake Key Vault on loopback, spoken to by the real SecretClient: 401 challenge first, then
 * Bearer requests to `GET /secrets/<name>/?api-version=…` (reference/azure-functions-notes.md §5).
 * HTTPS with a self-signed certificate: the Key Vault policy refuses to send a token over http.
 */
interface FakeVault {
  url: string;
  /** The certificate to trust. */
  cert: string;
  secrets: Map<string, string>;
  /** Authorised reads per secret name. */
  hits: Map<string, number>;
  /** When set, authorised reads wait for it. */
  gate?: Promise<void>;
  close(): Promise<void>;
}

async function startFakeVault(): Promise<FakeVault> {
  const tls = selfSignedCert();
  const vault: FakeVault = { url: '', cert: tls.cert, secrets: new Map(), hits: new Map(), close: async () => {} };
  const server: Server = createServer(tls, (req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (!req.headers.authorization) {
        res.writeHead(401, {
          'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"',
        });
        return res.end();
      }
      const match = /^\/secrets\/([^/]+)\/?$/.exec(u.pathname);
      if (req.method !== 'GET' || !match || !u.searchParams.get('api-version') || req.headers.authorization !== 'Bearer fake-token') {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { code: 'BadRequest', message: 'unexpected request' } }));
      }
      const name = decodeURIComponent(match[1]!);
      vault.hits.set(name, (vault.hits.get(name) ?? 0) + 1);
      await vault.gate;
      const value = vault.secrets.get(name);
      if (value === undefined) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { code: 'SecretNotFound', message: `A secret with (name/id) ${name} was not found in this key vault.` } }));
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ value, id: `${vault.url}/secrets/${name}/0123456789abcdef`, attributes: { enabled: true } }));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  vault.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  vault.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return vault;
}

const fakeCredential: TokenCredential = { getToken: async () => ({ token: 'fake-token', expiresOnTimestamp: Date.now() + 3_600_000 }) };

describe('Key Vault secrets through the real SecretClient', () => {
  let vault: FakeVault;
  let nowMs = 1_000_000;

  const options = (extra: Partial<SecretSourceOptions> = {}): SecretSourceOptions => ({
    vaultUrl: vault.url,
    credential: fakeCredential,
    secretClientOptions: { tlsOptions: { ca: vault.cert }, disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } },
    now: () => nowMs,
    ...extra,
  });

  beforeAll(async () => {
    vault = await startFakeVault();
  });
  afterAll(() => vault.close());
  afterEach(() => {
    vault.secrets.clear();
    vault.hits.clear();
    delete vault.gate;
  });

  it('reads a JSON credential secret and serves it from the cache within maxAgeMs', async () => {
    // Prepare
    vault.secrets.set('cc-json', JSON.stringify({ username: 'admin', password: 'json-secret-pw' }));
    const provider = keyVaultCredentialProvider({ ...options({ maxAgeMs: 60_000 }), secretName: 'cc-json' });
    // Act
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await provider.get());
    nowMs += 59_999;
    results.push(await provider.get());
    // Assess
    expect(results.every((r) => r.username === 'admin' && r.password === 'json-secret-pw')).toBe(true);
    expect(vault.hits.get('cc-json')).toBe(1);
  });

  it('fetches again once maxAgeMs has passed, picking up a rotated value', async () => {
    // Prepare
    vault.secrets.set('cc-colon', 'admin:old-password');
    const provider = keyVaultCredentialProvider({ ...options({ maxAgeMs: 1000 }), secretName: 'cc-colon' });
    const first = await provider.get();
    vault.secrets.set('cc-colon', 'admin:new-password');
    // Act
    nowMs += 1000;
    const second = await provider.get();
    // Assess
    expect(first.password).toBe('old-password');
    expect(second.password).toBe('new-password');
    expect(vault.hits.get('cc-colon')).toBe(2);
  });

  it('shares one vault read among concurrent callers (single flight); one caller may abort alone', async () => {
    // Prepare
    vault.secrets.set('hmac', 'signing-key-value');
    let open!: () => void;
    vault.gate = new Promise<void>((resolve) => (open = resolve));
    const source = secretSource(options());
    const controller = new AbortController();
    // Act
    const waiting = Array.from({ length: 5 }, () => source.getSecret('hmac'));
    const aborted = source.getSecret('hmac', { abortSignal: controller.signal });
    controller.abort(new Error('caller gave up'));
    await expect(aborted).rejects.toThrow('caller gave up');
    open();
    const values = await Promise.all(waiting);
    // Assess
    expect(values).toEqual(Array(5).fill('signing-key-value'));
    expect(vault.hits.get('hmac')).toBe(1);
  });

  it('invalidate() forces the next read to go to the vault', async () => {
    // Prepare
    vault.secrets.set('hmac', 'v1-signing-key');
    const source = secretSource(options());
    await source.getSecret('hmac');
    vault.secrets.set('hmac', 'v2-signing-key');
    // Act
    const cached = await source.getSecret('hmac');
    source.invalidate('hmac');
    const fresh = await source.getSecret('hmac');
    // Assess
    expect(cached).toBe('v1-signing-key');
    expect(fresh).toBe('v2-signing-key');
    expect(vault.hits.get('hmac')).toBe(2);
  });

  it('a missing secret is a clear SECRET_NOT_FOUND naming it, and is not cached', async () => {
    // Prepare
    const provider = keyVaultCredentialProvider({ ...options(), secretName: 'cyclecloud-credentials' });
    // Act
    const error = await provider.get().catch((e: unknown) => e);
    vault.secrets.set('cyclecloud-credentials', 'admin:later-password');
    const later = await provider.get();
    // Assess
    expect(error).toBeInstanceOf(CredentialError);
    expect((error as CredentialError).code).toBe('SECRET_NOT_FOUND');
    expect((error as CredentialError).message).toContain('"cyclecloud-credentials" was not found');
    expect(later.password).toBe('later-password');
  });

  it('a malformed secret is SECRET_MALFORMED without its value', async () => {
    // Prepare
    vault.secrets.set('bad', '{"username":"admin","password":');
    const provider = keyVaultCredentialProvider({ ...options(), secretName: 'bad' });
    // Act
    const error = await provider.get().catch((e: unknown) => e);
    // Assess
    expect((error as CredentialError).code).toBe('SECRET_MALFORMED');
    expect([error, JSON.stringify(error)]).toContainNoSecret(['{"username":"admin","password":']);
  });

  it('an unreachable vault is SECRET_UNAVAILABLE', async () => {
    // Prepare
    const source = secretSource(options({ vaultUrl: 'https://127.0.0.1:1' }));
    // Act
    const error = await source.getSecret('x').catch((e: unknown) => e);
    // Assess
    expect((error as CredentialError).code).toBe('SECRET_UNAVAILABLE');
  });

  it('end to end: CycleCloud refuses the cached password, the client refetches once and succeeds with the rotated one', async () => {
    // Prepare
    vault.secrets.set('cc', JSON.stringify({ username: 'admin', password: 'before-rotation' }));
    const accepted = `Basic ${Buffer.from('admin:after-rotation').toString('base64')}`;
    const cycleCloud = await startFakeServer((call) =>
      call.headers.authorization === accepted ? { status: 200, json: { action: 'create', startTime: '2026-01-01T00:00:00Z' } } : { status: 401, text: 'Unauthorized' },
    );
    const credentials = keyVaultCredentialProvider({ ...options({ maxAgeMs: 300_000 }), secretName: 'cc' });
    await credentials.get(); // the old password is now cached
    vault.secrets.set('cc', JSON.stringify({ username: 'admin', password: 'after-rotation' }));
    const cc = createCycleCloudClient({ baseUrl: cycleCloud.url, credentials });
    // Act
    const op = await cc.getOperation('op-1');
    await cc.close();
    await cycleCloud.close();
    // Assess
    expect(op.action).toBe('create');
    expect(cycleCloud.calls.map((c) => c.headers.authorization === accepted)).toEqual([false, true]);
    expect(vault.hits.get('cc')).toBe(2);
  });
});
