import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCycleCloudClient } from '../../src/cyclecloud/client.ts';
import { staticCredentialProvider } from '../../src/platform/credentials.ts';
import { captureLogs, captureConsole, expectNoSecrets, findSecret } from '../helpers/log-capture.ts';
import { startFakeServer, type FakeServer } from './fake-server.ts';

const CREDS = { username: 'scaler', password: 'Sup3r-Secret-Pa55word' };
const BASIC = `Basic ${Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64')}`;

describe('no secret reaches a log line, an error message or a serialised error', () => {
  let server: FakeServer;

  beforeAll(async () => {
    // A hostile server that echoes what it received into its error bodies.
    server = await startFakeServer((call) => {
      if (call.path.endsWith('/unauthorized')) return { status: 401, text: `denied for ${call.headers.authorization}` };
      if (call.path.endsWith('/broken')) return { status: 500, json: { Message: `boom ${call.headers.authorization}`, Detail: `password=${CREDS.password}` } };
      if (call.path.endsWith('/status')) return { status: 200, json: { maxCount: CREDS.password, nodearrays: [] } };
      return { status: 503, text: `retry me ${call.headers.authorization}` };
    });
  });
  afterAll(() => server.close());

  it('for 401, 500, 503-with-retries and a bad body', async () => {
    // Prepare
    const logs = captureLogs();
    const cc = createCycleCloudClient({
      baseUrl: server.url,
      credentials: staticCredentialProvider(CREDS),
      logger: logs.logger,
      sleep: async () => {},
      retry: { maxRetries: 2 },
    });
    // Act
    const errors = await Promise.all([
      cc.getOperation('unauthorized').catch((e: unknown) => e),
      cc.createNodes('broken', { sets: [{ nodearray: 'a', count: 1 }] }).catch((e: unknown) => e),
      cc.getOperation('flaky').catch((e: unknown) => e),
      cc.getClusterStatus('hpc').catch((e: unknown) => e),
    ]);
    await cc.close();
    // Assess
    expect(errors.every((e) => e instanceof Error)).toBe(true);
    expect(logs.lines.length).toBeGreaterThan(0);
    expect(logs.lines).toContainNoSecret([CREDS.password, BASIC]);
    expect(errors).toContainNoSecret([CREDS.password, BASIC]);
    expect(errors.map((e) => JSON.stringify(e))).toContainNoSecret([CREDS.password, BASIC]);
    expect(errors.map((e) => String(e))).toContainNoSecret([CREDS.password, BASIC]);
  });

  it('the matcher and helper do catch a leaked secret in its raw, encoded and base64 forms', () => {
    // Prepare
    const leakyError = Object.assign(new Error('x'), { detail: { auth: BASIC } });
    const console = captureConsole();
    console.lines.length = 0;
    // Act
    globalThis.console.log('leaked', CREDS.password);
    console.restore();
    // Assess
    expect(['fine', `p=${encodeURIComponent(CREDS.password)}`]).not.toContainNoSecret([CREDS.password]);
    expect([Buffer.from(CREDS.password).toString('base64')]).not.toContainNoSecret([CREDS.password]);
    expect([leakyError]).not.toContainNoSecret([BASIC]);
    expect(console.lines).not.toContainNoSecret([CREDS.password]);
    expect(findSecret(['a', 'b', `${CREDS.password}`], ['nope', CREDS.password])).toEqual({ index: 2, secretIndex: 1 });
    expect(() => expectNoSecrets(['ok', CREDS.password], [CREDS.password])).toThrow('secret #0 appears in value #1');
    expect(() => expectNoSecrets(['ok'], [CREDS.password])).not.toThrow();
  });
});
