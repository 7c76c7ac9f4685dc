import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { isCycleCloudError } from '../../src/cyclecloud/errors.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { selfSignedCert, startFakeServer, type FakeServer } from './fake-server.ts';

// CycleCloud ships a self-signed certificate: prove the three ways of dealing with it.
describe('CycleCloud client over HTTPS with a self-signed certificate', () => {
  let cert: string;
  let server: FakeServer;

  beforeAll(async () => {
    const tls = selfSignedCert();
    cert = tls.cert;
    server = await startFakeServer(() => ({ status: 200, json: { action: 'create', startTime: '2026-01-01T00:00:00Z' } }), tls);
  });

  afterAll(async () => {
    await server?.close();
  });

  const credentials = staticCredentialProvider({ username: 'u', password: 'tls-test-password' });

  it('fails without the CA with a TLS CC_NETWORK error, and does not retry it', async () => {
    // Prepare
    const before = server.calls.length;
    const cc = createCycleCloudClient({ baseUrl: server.url, credentials, sleep: async () => {} });
    // Act
    const error = await cc.getOperation('op').catch((e: unknown) => e);
    await cc.close();
    // Assess
    expect(isCycleCloudError(error) && error.code).toBe('CC_NETWORK');
    expect((error as Error).message).toContain('TLS');
    expect(server.calls.length).toBe(before);
  });

  it('succeeds when the certificate is given as caPem', async () => {
    // Prepare
    const cc = createCycleCloudClient({ baseUrl: server.url, credentials, caPem: cert });
    // Act
    const op = await cc.getOperation('op');
    await cc.close();
    // Assess
    expect(op.action).toBe('create');
  });

  it('succeeds with insecure: true', async () => {
    // Prepare
    const cc = createCycleCloudClient({ baseUrl: server.url, credentials, insecure: true });
    // Act
    const op = await cc.getOperation('op');
    await cc.close();
    // Assess
    expect(op.action).toBe('create');
  });
});
