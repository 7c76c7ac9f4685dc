import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Env, type LoadConfigOptions } from '../../src/platform/config.ts';
import { formatLine } from '../../src/platform/log.ts';
import '../helpers/log-capture.ts';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0FGRUJBQkU=\n-----END CERTIFICATE-----\n';

/** The smallest valid Azure configuration. */
const AZURE: Env = {
  CYCLECLOUD_URL: 'https://cyclecloud.example.com:8443',
  CYCLECLOUD_CLUSTERS: 'hpc, gpu ,hpc',
  KEY_VAULT_URL: 'https://scaler-kv.vault.azure.net/',
  AzureWebJobsStorage__accountName: 'scalerstorage',
};

function configError(env: Env, options: LoadConfigOptions = { mode: 'local' }): ConfigError {
  try {
    loadConfig(env, options);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig: defaults', () => {
  it('local mode with nothing set runs the simulator and azurite with docs/api.md §2 defaults', () => {
    // Act
    const config = loadConfig({}, { mode: 'local' });
    // Assess
    expect(config).toMatchObject({
      mode: 'local',
      cycleCloudUrl: undefined,
      cycleCloudClusters: undefined,
      cycleCloudCredentials: { kind: 'simulator' },
      cycleCloudCredentialsSecret: 'cyclecloud-credentials',
      cycleCloudTlsInsecure: false,
      storage: undefined,
      scaleRequestsQueue: 'scale-requests',
      snapshotSchedule: '0 */1 * * * *',
      port: 7071,
      functionKey: undefined,
    });
  });

  it('the scaler settings default as documented, durations in ms', () => {
    // Act
    const config = loadConfig({}, { mode: 'local' });
    // Assess
    expect(config).toMatchObject({
      snapshotMaxAgeMs: 120_000,
      snapshotStaleAfterFailures: 3,
      snapshotHistory: 10,
      requestDeadlineMs: 30 * 60_000,
      bootTimeoutMs: 30 * 60_000,
      terminateOnBootTimeout: true,
      trackerPollMinMs: 5_000,
      trackerPollMaxMs: 60_000,
      maxReplanAttempts: 3,
      capacityBackoffMinMs: 5 * 60_000,
      capacityBackoffMaxMs: 30 * 60_000,
      scaleOutPaused: false,
      signingSecretName: undefined,
      signingSecret: undefined,
      storagePrefix: 'scaler',
      azureClientId: undefined,
      logLevel: 'info',
    });
  });

  it('azure mode reads the required settings; clusters are trimmed and deduplicated', () => {
    // Act
    const config = loadConfig(AZURE, { mode: 'azure' });
    // Assess
    expect(config.cycleCloudUrl).toBe('https://cyclecloud.example.com:8443');
    expect(config.cycleCloudClusters).toEqual(['hpc', 'gpu']);
    expect(config.cycleCloudCredentials).toEqual({ kind: 'keyVault', vaultUrl: 'https://scaler-kv.vault.azure.net', secretName: 'cyclecloud-credentials' });
    expect(config.storage).toEqual({
      kind: 'identity',
      queueServiceUri: 'https://scalerstorage.queue.core.windows.net',
      tableServiceUri: 'https://scalerstorage.table.core.windows.net',
    });
  });

  it('converts every duration setting to ms, fractions allowed', () => {
    // Act
    const config = loadConfig(
      {
        SNAPSHOT_MAX_AGE_SECONDS: '30',
        REQUEST_DEADLINE_MINUTES: '0.5',
        BOOT_TIMEOUT_MINUTES: '12',
        TRACKER_POLL_MIN_SECONDS: '0.25',
        TRACKER_POLL_MAX_SECONDS: '2',
        CAPACITY_BACKOFF_MIN_MINUTES: '1',
        CAPACITY_BACKOFF_MAX_MINUTES: '1',
        TERMINATE_ON_BOOT_TIMEOUT: 'FALSE',
        SCALE_OUT_PAUSED: 'true',
        LOG_LEVEL: 'DEBUG',
        PORT: '0',
      },
      { mode: 'local' },
    );
    // Assess
    expect(config).toMatchObject({
      snapshotMaxAgeMs: 30_000,
      requestDeadlineMs: 30_000,
      bootTimeoutMs: 720_000,
      trackerPollMinMs: 250,
      trackerPollMaxMs: 2_000,
      capacityBackoffMinMs: 60_000,
      capacityBackoffMaxMs: 60_000,
      terminateOnBootTimeout: false,
      scaleOutPaused: true,
      logLevel: 'debug',
      port: 0,
    });
  });

  it('treats blank settings as unset', () => {
    // Act
    const config = loadConfig({ PORT: '  ', SNAPSHOT_SCHEDULE: '', CYCLECLOUD_URL: '' }, { mode: 'local' });
    // Assess
    expect(config.port).toBe(7071);
    expect(config.snapshotSchedule).toBe('0 */1 * * * *');
    expect(config.cycleCloudUrl).toBeUndefined();
  });

  it('returns a deeply frozen object', () => {
    // Act
    const config = loadConfig(AZURE, { mode: 'azure' });
    // Assess
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.cycleCloudClusters)).toBe(true);
    expect(Object.isFrozen(config.cycleCloudCredentials)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('loadConfig: credentials, TLS and storage', () => {
  it('uses direct credentials when no Key Vault is configured, and registers the password', () => {
    // Act
    const config = loadConfig(
      { CYCLECLOUD_URL: 'http://127.0.0.1:8080', CYCLECLOUD_CLUSTERS: 'hpc', CYCLECLOUD_USERNAME: 'admin', CYCLECLOUD_PASSWORD: ' spaced-password ' },
      { mode: 'local' },
    );
    // Assess
    expect(config.cycleCloudCredentials).toEqual({ kind: 'settings', username: 'admin', password: ' spaced-password ' });
    expect(formatLine('info', 'x', { text: 'pw= spaced-password .' })).not.toContain('spaced-password');
  });

  it('Key Vault wins over direct credentials and uses CYCLECLOUD_CREDENTIALS_SECRET', () => {
    // Act
    const config = loadConfig({ ...AZURE, CYCLECLOUD_CREDENTIALS_SECRET: 'cc-prod', CYCLECLOUD_USERNAME: 'a', CYCLECLOUD_PASSWORD: 'b-password' }, { mode: 'azure' });
    // Assess
    expect(config.cycleCloudCredentials).toMatchObject({ kind: 'keyVault', secretName: 'cc-prod' });
  });

  it('accepts CYCLECLOUD_CA_PEM as PEM text with \\n escapes', () => {
    // Act
    const config = loadConfig({ CYCLECLOUD_CA_PEM: PEM.trim().replace(/\n/g, '\\n') }, { mode: 'local' });
    // Assess
    expect(config.cycleCloudCaPem).toBe(PEM);
  });

  it('accepts CYCLECLOUD_CA_PEM as a path to a PEM file', () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const path = join(dir, 'ca.pem');
    writeFileSync(path, PEM);
    // Act
    const config = loadConfig({ CYCLECLOUD_CA_PEM: path, CYCLECLOUD_TLS_INSECURE: 'true' }, { mode: 'local' });
    rmSync(dir, { recursive: true, force: true });
    // Assess
    expect(config.cycleCloudCaPem).toBe(PEM);
    expect(config.cycleCloudTlsInsecure).toBe(true);
  });

  it('keeps a storage connection string and registers its account key', () => {
    // Prepare
    const key = 'c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw==';
    const cs = `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${key};EndpointSuffix=core.windows.net`;
    // Act
    const config = loadConfig({ ...AZURE, AzureWebJobsStorage: cs }, { mode: 'azure' });
    // Assess
    expect(config.storage).toEqual({ kind: 'connectionString', connectionString: cs });
    expect(formatLine('info', 'x', { text: cs })).not.toContain(key);
  });
});

describe('loadConfig: a bad setting stops start-up, named, without its value', () => {
  it.each([
    ['CYCLECLOUD_URL', 'not a url', 'must be a URL'],
    ['CYCLECLOUD_URL', 'ftp://cyclecloud.example.com', 'must be a http or https URL'],
    ['CYCLECLOUD_URL', 'https://admin:hunter2pw@cc.example.com', 'must not contain credentials'],
    ['CYCLECLOUD_CLUSTERS', ' , ', 'at least one cluster'],
    ['CYCLECLOUD_CLUSTERS', 'hpc,bad name', 'cluster names'],
    ['KEY_VAULT_URL', 'http://vault.example.com', 'https URL'],
    ['CYCLECLOUD_CREDENTIALS_SECRET', 'not_allowed!', 'Key Vault secret name'],
    ['CYCLECLOUD_CA_PEM', '/nonexistent/ca-file.pem', 'readable PEM file'],
    ['CYCLECLOUD_CA_PEM', '-----BEGIN CERTIFICATE----- truncated', 'not a PEM certificate'],
    ['CYCLECLOUD_TLS_INSECURE', 'yes please', 'true or false'],
    ['SCALE_REQUESTS_QUEUE', 'Scale_Requests', 'queue name'],
    ['SCALE_REQUESTS_QUEUE', `q${'x'.repeat(60)}`, 'at most 56'],
    ['SNAPSHOT_SCHEDULE', '*/5 * * * *', '6-field NCRONTAB'],
    ['SNAPSHOT_SCHEDULE', '0 0 25 * * *', 'not a valid NCRONTAB'],
    ['SNAPSHOT_SCHEDULE', '00:05:00', '6-field NCRONTAB'],
    ['PORT', 'seventy', 'whole number'],
    ['PORT', '70000', 'at most 65535'],
    ['FUNCTION_KEY', 'has white space', 'whitespace'],
    ['SNAPSHOT_MAX_AGE_SECONDS', 'two minutes', 'positive number'],
    ['SNAPSHOT_MAX_AGE_SECONDS', '0', 'greater than 0'],
    ['SNAPSHOT_STALE_AFTER_FAILURES', '0', 'at least 1'],
    ['SNAPSHOT_HISTORY', '2.5', 'whole number'],
    ['REQUEST_DEADLINE_MINUTES', '-5', 'positive number'],
    ['BOOT_TIMEOUT_MINUTES', 'NaN', 'positive number'],
    ['TERMINATE_ON_BOOT_TIMEOUT', 'maybe', 'true or false'],
    ['TRACKER_POLL_MIN_SECONDS', 'fast', 'positive number'],
    ['MAX_REPLAN_ATTEMPTS', 'many', 'whole number'],
    ['CAPACITY_BACKOFF_MIN_MINUTES', '1e3', 'positive number'],
    ['SCALE_OUT_PAUSED', 'paused', 'true or false'],
    ['STORAGE_PREFIX', 'Scaler-1', 'lowercase letters and digits'],
    ['AZURE_CLIENT_ID', 'my-identity', 'GUID'],
    ['LOG_LEVEL', 'verbose', 'debug, info, warn or error'],
  ])('%s = %j', (setting, value, problem) => {
    // Act
    const error = configError({ [setting]: value });
    // Assess
    expect(error.name).toBe('ConfigError');
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.setting).toBe(setting);
    expect(error.message).toMatch(new RegExp(`^Setting ${setting} `));
    expect(error.message).toContain(problem);
    // Values of a few characters ("0") occur in any sentence; longer ones must not be echoed.
    if (value.length >= 4) expect([error.message, JSON.stringify(error)]).toContainNoSecret([value]);
  });

  it.each([
    ['CYCLECLOUD_URL', {}],
    ['CYCLECLOUD_CLUSTERS', { CYCLECLOUD_URL: AZURE.CYCLECLOUD_URL }],
    ['KEY_VAULT_URL', { ...AZURE, KEY_VAULT_URL: undefined }],
    ['AzureWebJobsStorage', { ...AZURE, AzureWebJobsStorage__accountName: undefined }],
  ] as const)('azure mode: missing %s', (setting, env) => {
    // Act
    const error = configError(env, { mode: 'azure' });
    // Assess
    expect(error.setting).toBe(setting);
    expect(error.message).toContain('is required');
  });

  it('local mode with a CycleCloud URL needs credentials', () => {
    expect(configError({ CYCLECLOUD_URL: 'https://cc.example.com' }).setting).toBe('KEY_VAULT_URL');
  });

  it('local mode with a CycleCloud URL needs CYCLECLOUD_CLUSTERS (no simulator to take them from)', () => {
    const error = configError({ CYCLECLOUD_URL: 'https://cc.example.com', CYCLECLOUD_USERNAME: 'u', CYCLECLOUD_PASSWORD: 'secret-pass' });
    expect(error.setting).toBe('CYCLECLOUD_CLUSTERS');
    expect(error.message).toContain('when CYCLECLOUD_URL is set');
  });

  it('local mode refuses half an identity-based storage configuration', () => {
    expect(configError({ AzureWebJobsStorage__queueServiceUri: 'https://a.queue.core.windows.net' }).setting).toBe('AzureWebJobsStorage');
  });

  it.each([
    ['TRACKER_POLL_MAX_SECONDS', { TRACKER_POLL_MIN_SECONDS: '30', TRACKER_POLL_MAX_SECONDS: '10' }],
    ['CAPACITY_BACKOFF_MAX_MINUTES', { CAPACITY_BACKOFF_MIN_MINUTES: '30', CAPACITY_BACKOFF_MAX_MINUTES: '5' }],
    ['SIGNING_SECRET_NAME', { SIGNING_SECRET_NAME: 'scaler-hmac' }],
  ] as const)('a setting that contradicts another: %s', (setting, env) => {
    expect(configError(env).setting).toBe(setting);
  });

  it('names only the first bad setting when several are bad', () => {
    // Act
    const error = configError({ PORT: 'x', SNAPSHOT_SCHEDULE: 'bad', LOG_LEVEL: 'loud' });
    // Assess
    expect(error.setting).toBe('SNAPSHOT_SCHEDULE');
    expect(error.message).not.toContain('PORT');
    expect(error.message).not.toContain('LOG_LEVEL');
  });

  it('never includes secret values, even when the bad setting is the secret', () => {
    // Prepare
    const password = 'Correct-Horse-Battery-Staple';
    const signing = 'short-hmac';
    const key = 'QWNjb3VudEtleVNlY3JldA==';
    const cases: Env[] = [
      { CYCLECLOUD_URL: 'https://cc.example.com', CYCLECLOUD_PASSWORD: password },
      { SCALER_SIGNING_SECRET: signing },
      { FUNCTION_KEY: `${password} x` },
      { AzureWebJobsStorage: `AccountName=a;AccountKey=${key}`, CYCLECLOUD_PASSWORD: password, CYCLECLOUD_USERNAME: 'u', LOG_LEVEL: 'loud' },
    ];
    // Act
    const errors = cases.map((env) => configError(env));
    // Assess
    expect(errors.map((e) => e.setting)).toEqual(['CYCLECLOUD_USERNAME', 'SCALER_SIGNING_SECRET', 'FUNCTION_KEY', 'LOG_LEVEL']);
    expect(errors).toContainNoSecret([password, signing, key]);
    expect(errors.map((e) => JSON.stringify(e))).toContainNoSecret([password, signing, key]);
  });
});

describe('REQUIRE_SIGNED_WEBHOOKS', () => {
  it('defaults to false and needs a signing secret when true', async () => {
    const { loadConfig, ConfigError } = await import('../../src/platform/config.ts');
    const base = { SCALER_SIGNING_SECRET: undefined } as Record<string, string | undefined>;
    expect(loadConfig(base, { mode: 'local' }).requireSignedWebhooks).toBe(false);
    expect(() => loadConfig({ ...base, REQUIRE_SIGNED_WEBHOOKS: 'true' }, { mode: 'local' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, REQUIRE_SIGNED_WEBHOOKS: 'true' }, { mode: 'local' })).toThrow(/REQUIRE_SIGNED_WEBHOOKS/);
    expect(loadConfig({ REQUIRE_SIGNED_WEBHOOKS: 'true', SCALER_SIGNING_SECRET: 'a-long-enough-secret' }, { mode: 'local' }).requireSignedWebhooks).toBe(true);
  });
});
