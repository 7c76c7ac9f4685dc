/**
 * App settings (docs/api.md §2) → one typed, frozen {@link Config}, parsed once at start-up.
 *
 * A missing or malformed setting throws {@link ConfigError} naming that ONE setting and what is
 * wrong with it, never its value (some are secrets, and the rest do not need echoing to be fixed).
 * An empty setting counts as unset, as the Function App portal makes it easy to leave one blank.
 *
 * The settings, their meaning and defaults: the one table in docs/api.md §2, which
 * test/docs-settings.test.ts checks against the names and defaults this file reads.
 */
import { parseTenantsDocument, type TenantsDocument } from './tenants.ts';
import { parsePriceDocument, type PriceDocument } from './prices.ts';
import { readFileSync } from 'node:fs';
import { CronPattern } from 'croner';
import { z } from 'zod';
import { registerSecret, type LogLevel } from './log.ts';
import { storageConnectionFromEnv, type StorageConnection } from './storage.ts';
import { ScalerError } from './errors.ts';
import { LEASE_SECONDS, MAX_LIFETIME_SECONDS } from './lifetimes.ts';

export type ConfigMode = 'local' | 'azure';

export interface LoadConfigOptions {
  /** `azure` requires what only the local host can default (CycleCloud URL, clusters, storage). */
  mode: ConfigMode;
  /** Reads `CYCLECLOUD_CA_PEM` when it is a path. Default: `fs.readFileSync(path, 'utf8')`. */
  readFile?: (path: string) => string;
}

/** Where the CycleCloud username and password come from. */
export type CycleCloudCredentialSource =
  | { readonly kind: 'keyVault'; readonly vaultUrl: string; readonly secretName: string }
  | { readonly kind: 'settings'; readonly username: string; readonly password: string }
  /** Local mode without `CYCLECLOUD_URL`: the embedded simulator hands out its own. */
  | { readonly kind: 'simulator' };

export interface Config {
  readonly mode: ConfigMode;
  /** Undefined only in local mode: run the embedded simulator. */
  readonly cycleCloudUrl: string | undefined;
  /** Undefined only in local mode: the simulator's clusters. */
  readonly cycleCloudClusters: readonly string[] | undefined;
  readonly keyVaultUrl: string | undefined;
  readonly cycleCloudCredentialsSecret: string;
  readonly cycleCloudCredentials: CycleCloudCredentialSource;
  /** PEM text (read from the file when the setting was a path). */
  readonly cycleCloudCaPem: string | undefined;
  readonly cycleCloudTlsInsecure: boolean;
  /** Undefined only in local mode: the local host starts azurite. */
  readonly storage: StorageConnection | undefined;
  readonly scaleRequestsQueue: string;
  readonly snapshotSchedule: string;
  readonly port: number;
  /** Undefined: the local host generates one and prints it. */
  readonly functionKey: string | undefined;
  readonly snapshotMaxAgeMs: number;
  readonly snapshotStaleAfterFailures: number;
  readonly snapshotHistory: number;
  readonly requestDeadlineMs: number;
  /** `ORPHAN_GRACE_MINUTES`: grace before an unaccounted node with the scaler's tags is adopted or terminated. */
  readonly orphanGraceMs: number;
  /** `DEFAULT_LEASE_SECONDS`: the lease of a caller's scale request that names none; undefined = no lease. */
  readonly defaultLeaseSeconds: number | undefined;
  /** `DEFAULT_MAX_LIFETIME_SECONDS`: the max lifetime of a caller's scale request that names none; undefined = none. */
  readonly defaultMaxLifetimeSeconds: number | undefined;
  /** `RETENTION_DAYS`: how long final records, tracker rows and snapshots are kept. */
  readonly retentionMs: number;
  readonly bootTimeoutMs: number;
  readonly terminateOnBootTimeout: boolean;
  readonly trackerPollMinMs: number;
  readonly trackerPollMaxMs: number;
  readonly maxReplanAttempts: number;
  readonly capacityBackoffMinMs: number;
  readonly capacityBackoffMaxMs: number;
  readonly scaleOutPaused: boolean;
  /** `CREATE_WINDOW_MS`: group-commit window per cluster (0 = no batching). */
  readonly createWindowMs: number;
  /** `CREATE_WINDOW_MAX_MS`: the longest a batch's window stays open. */
  readonly createWindowMaxMs: number;
  /** `CREATE_MAX_SETS`: sets after which a batch closes at once. */
  readonly createMaxSets: number;
  /** `CYCLECLOUD_MAX_CONCURRENT_CREATES`: creates in flight per cluster across the fleet. */
  readonly maxConcurrentCreates: number;
  /** POSTs must carry a valid signature (docs/api.md §4); needs a signing secret. */
  readonly requireSignedWebhooks: boolean;
  readonly signingSecretName: string | undefined;
  readonly signingSecret: string | undefined;
  /** A second key accepted on incoming signatures during rotation (Key Vault secret name / value). */
  readonly signingSecretSecondaryName: string | undefined;
  readonly signingSecretSecondary: string | undefined;
  /** `CALLBACK_ALLOWED_HOSTS`, lower case; empty = any public https host. */
  readonly callbackAllowedHosts: readonly string[];
  /** `TENANTS` (inline), parsed; undefined when unset (then maybe `tenantsSecretName`). */
  readonly tenantsDocument: TenantsDocument | undefined;
  /** `TENANTS_SECRET_NAME`: the Key Vault secret holding the tenants document. */
  readonly tenantsSecretName: string | undefined;
  /** `PRICES_FILE`, read and parsed at start-up (docs/api.md, Cost); undefined = no local price table. */
  readonly priceDocument: PriceDocument | undefined;
  /** `PRICES_FROM_AZURE`: refresh prices daily from the Azure Retail Prices API (`PRICES_API_URL`). */
  readonly pricesFromAzure: boolean;
  readonly pricesApiUrl: string;
  readonly storagePrefix: string;
  readonly azureClientId: string | undefined;
  readonly logLevel: LogLevel;
}

/** A setting that stops start-up. `setting` is its name; the message never contains its value. */
export class ConfigError extends ScalerError<'CONFIG_INVALID'> {
  override name = 'ConfigError' as const;
  readonly setting: string;

  constructor(setting: string, problem: string, options?: ErrorOptions) {
    super('CONFIG_INVALID', `Setting ${setting} ${problem}`, options);
    this.setting = setting;
  }
}

export type Env = Record<string, string | undefined>;

// ---- value schemas (input: the trimmed, non-empty text of a setting) -----------------------------

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

/** A positive duration in the setting's unit; fractions allowed (tests use sub-minute values). */
const positiveNumber = z
  .string()
  .regex(/^\d+(\.\d+)?$/, 'must be a positive number')
  .transform(Number)
  .pipe(z.number().positive('must be greater than 0'));

const boolean = z
  .string()
  .transform((v) => v.toLowerCase())
  .pipe(z.enum(['true', 'false'], { error: 'must be true or false' }))
  .transform((v) => v === 'true');

const httpUrl = (protocols: readonly string[]) =>
  z
    .string()
    .superRefine((text, ctx) => {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        ctx.addIssue({ code: 'custom', message: `must be a URL (${protocols.join(' or ')})` });
        return;
      }
      if (!protocols.includes(url.protocol.slice(0, -1))) ctx.addIssue({ code: 'custom', message: `must be a ${protocols.join(' or ')} URL` });
      else if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not contain credentials' });
    })
    .transform((text) => text.replace(/\/+$/, ''));

/** Key Vault secret names: 1–127 letters, digits and dashes. */
const secretName = z.string().regex(/^[0-9A-Za-z-]{1,127}$/, 'must be a Key Vault secret name (1-127 letters, digits and dashes)');

// Azure queue names: 3-63 lowercase letters, digits and single dashes; room left for "-poison".
const queueName = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/, 'must be a queue name (lowercase letters, digits and single dashes)')
  .min(3, 'must be at least 3 characters')
  .max(56, 'must be at most 56 characters (its "-poison" queue must fit in 63)');

const clusters = z
  .string()
  .transform((text) => [
    ...new Set(
      text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ])
  .pipe(z.array(z.string().regex(/^[^\s/\\?#%]+$/, 'must be cluster names without spaces or / \\ ? # %')).min(1, 'must name at least one cluster'));

const ncrontab = z.string().superRefine((text, ctx) => {
  if (text.split(/\s+/).length !== 6) {
    ctx.addIssue({ code: 'custom', message: 'must be a 6-field NCRONTAB expression: second minute hour day month day-of-week' });
    return;
  }
  try {
    new CronPattern(text, undefined, { mode: '6-part' });
  } catch {
    // croner's message quotes the pattern; the field count is already right, so say what remains.
    ctx.addIssue({ code: 'custom', message: 'is not a valid NCRONTAB expression (a field is out of range or malformed)' });
  }
});

const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a GUID (the managed identity client id)');

const logLevel = z
  .string()
  .transform((v) => v.toLowerCase())
  .pipe(z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be debug, info, warn or error' }));

const functionKey = z.string().min(4, 'must be at least 4 characters').regex(/^\S+$/, 'must not contain whitespace');

/** Host names or IP literals, comma-separated (no scheme, port or path). */
const hostList = z
  .string()
  .transform((text) => [
    ...new Set(
      text
        .split(',')
        .map((h) =>
          h
            .trim()
            .replace(/^\[|\]$/g, '')
            .toLowerCase(),
        )
        .filter(Boolean),
    ),
  ])
  .pipe(z.array(z.string().regex(/^(?:[a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63}$|^[0-9a-f:.]+$/, 'must be host names or IP addresses, comma-separated (no scheme, port or path)')));

const storagePrefix = z.string().regex(/^[a-z][a-z0-9]{0,39}$/, 'must be 1-40 lowercase letters and digits, starting with a letter');

// ---- reading -------------------------------------------------------------------------------------

const ms = { seconds: 1000, minutes: 60_000 } as const;

function firstProblem(error: z.ZodError): string {
  // zod's own messages describe the expected shape, never the received value.
  return error.issues[0]?.message ?? 'is invalid';
}

function problemText(message: string): string {
  return /^(must|is|has|needs)\b/.test(message) ? message : `is invalid: ${message}`;
}

/** The setting's trimmed text, or undefined when unset or blank. */
function raw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function parse<T>(env: Env, name: string, schema: z.ZodType<T, string>): T | undefined {
  const text = raw(env, name);
  if (text === undefined) return undefined;
  const result = schema.safeParse(text);
  if (!result.success) throw new ConfigError(name, problemText(firstProblem(result.error)));
  return result.data;
}

function required<T>(value: T | undefined, name: string, why: string): T {
  if (value === undefined) throw new ConfigError(name, `is required ${why}`);
  return value;
}

function readCaPem(env: Env, readFile: (path: string) => string): string | undefined {
  const text = raw(env, 'CYCLECLOUD_CA_PEM');
  if (text === undefined) return undefined;
  const isPem = (s: string) => /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(s);
  if (text.includes('-----BEGIN')) {
    // App settings are single-line: accept literal "\n" escapes.
    const pem = text.includes('\n') ? text : text.replace(/\\n/g, '\n');
    if (!isPem(pem)) throw new ConfigError('CYCLECLOUD_CA_PEM', 'is not a PEM certificate (BEGIN/END CERTIFICATE)');
    return `${pem.trim()}\n`;
  }
  let content: string;
  try {
    content = readFile(text);
  } catch (cause) {
    throw new ConfigError('CYCLECLOUD_CA_PEM', 'is neither PEM text nor a readable PEM file path', { cause });
  }
  if (!isPem(content)) throw new ConfigError('CYCLECLOUD_CA_PEM', 'names a file that holds no PEM certificate');
  return content;
}

/** Registers the key or SAS inside a storage connection string so logs scrub it. */
function registerConnectionSecrets(connection: StorageConnection | undefined): void {
  if (connection?.kind !== 'connectionString') return;
  for (const part of connection.connectionString.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && /^(AccountKey|SharedAccessSignature)$/i.test(part.slice(0, eq).trim())) registerSecret(part.slice(eq + 1).trim());
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Parses the settings in `env`. Throws {@link ConfigError} for the first bad setting, in the order
 * of the table above. Secret values it finds are registered with `registerSecret`.
 *
 * @example
 * const config = loadConfig(process.env, { mode: 'azure' });
 */
export function loadConfig(env: Env, options: LoadConfigOptions): Config {
  const { mode } = options;
  const azure = mode === 'azure';
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));

  const cycleCloudUrl = parse(env, 'CYCLECLOUD_URL', httpUrl(['http', 'https']));
  if (azure) required(cycleCloudUrl, 'CYCLECLOUD_URL', 'in Azure (the CycleCloud base URL, e.g. https://cyclecloud.example.com:8443)');
  const cycleCloudClusters = parse(env, 'CYCLECLOUD_CLUSTERS', clusters);
  if (azure) required(cycleCloudClusters, 'CYCLECLOUD_CLUSTERS', 'in Azure (comma-separated cluster names)');

  const keyVaultUrl = parse(env, 'KEY_VAULT_URL', httpUrl(['https']));
  const cycleCloudCredentialsSecret = parse(env, 'CYCLECLOUD_CREDENTIALS_SECRET', secretName) ?? 'cyclecloud-credentials';
  const username = raw(env, 'CYCLECLOUD_USERNAME');
  // The password is not trimmed: spaces may be part of it.
  const password = env.CYCLECLOUD_PASSWORD ? env.CYCLECLOUD_PASSWORD : undefined;
  registerSecret(password);
  let cycleCloudCredentials: CycleCloudCredentialSource;
  if (keyVaultUrl) {
    cycleCloudCredentials = { kind: 'keyVault', vaultUrl: keyVaultUrl, secretName: cycleCloudCredentialsSecret };
  } else if (username !== undefined || password !== undefined) {
    if (username === undefined) throw new ConfigError('CYCLECLOUD_USERNAME', 'is required when CYCLECLOUD_PASSWORD is set');
    if (password === undefined) throw new ConfigError('CYCLECLOUD_PASSWORD', 'is required when CYCLECLOUD_USERNAME is set');
    cycleCloudCredentials = { kind: 'settings', username, password };
  } else if (cycleCloudUrl === undefined) {
    cycleCloudCredentials = { kind: 'simulator' };
  } else {
    throw new ConfigError('KEY_VAULT_URL', 'is required to authenticate to CYCLECLOUD_URL (or set CYCLECLOUD_USERNAME and CYCLECLOUD_PASSWORD)');
  }

  // Locally too: with a real CycleCloud there is no simulator to take the cluster names from.
  if (cycleCloudUrl !== undefined)
    required(cycleCloudClusters, 'CYCLECLOUD_CLUSTERS', 'when CYCLECLOUD_URL is set (comma-separated cluster names the snapshot timer covers, e.g. CYCLECLOUD_CLUSTERS=hpc)');

  const cycleCloudCaPem = readCaPem(env, readFile);
  const cycleCloudTlsInsecure = parse(env, 'CYCLECLOUD_TLS_INSECURE', boolean) ?? false;

  const storage = storageConnectionFromEnv(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v?.trim() ? v.trim() : undefined])));
  if (azure) {
    required(storage, 'AzureWebJobsStorage', 'in Azure (a connection string, or AzureWebJobsStorage__accountName, or __queueServiceUri and __tableServiceUri)');
  } else if (!storage && (raw(env, 'AzureWebJobsStorage__queueServiceUri') || raw(env, 'AzureWebJobsStorage__tableServiceUri'))) {
    // Half an identity-based configuration would silently fall back to the embedded azurite.
    throw new ConfigError('AzureWebJobsStorage', 'identity-based settings need both __queueServiceUri and __tableServiceUri (or __accountName)');
  }
  registerConnectionSecrets(storage);

  const scaleRequestsQueue = parse(env, 'SCALE_REQUESTS_QUEUE', queueName) ?? 'scale-requests';
  const snapshotSchedule = parse(env, 'SNAPSHOT_SCHEDULE', ncrontab) ?? '0 */1 * * * *';
  const port = parse(env, 'PORT', wholeNumber(0, 65_535)) ?? 7071;
  const functionKeyValue = parse(env, 'FUNCTION_KEY', functionKey);
  registerSecret(functionKeyValue);

  const seconds = (name: string, fallback: number) => Math.round((parse(env, name, positiveNumber) ?? fallback) * ms.seconds);
  const minutes = (name: string, fallback: number) => Math.round((parse(env, name, positiveNumber) ?? fallback) * ms.minutes);

  const snapshotMaxAgeMs = seconds('SNAPSHOT_MAX_AGE_SECONDS', 120);
  const snapshotStaleAfterFailures = parse(env, 'SNAPSHOT_STALE_AFTER_FAILURES', wholeNumber(1)) ?? 3;
  const snapshotHistory = parse(env, 'SNAPSHOT_HISTORY', wholeNumber(0, 1000)) ?? 10;
  const requestDeadlineMs = minutes('REQUEST_DEADLINE_MINUTES', 30);
  const orphanGraceMs = minutes('ORPHAN_GRACE_MINUTES', 10);
  const defaultLeaseSeconds = parse(env, 'DEFAULT_LEASE_SECONDS', wholeNumber(LEASE_SECONDS.min, LEASE_SECONDS.max));
  const defaultMaxLifetimeSeconds = parse(env, 'DEFAULT_MAX_LIFETIME_SECONDS', wholeNumber(MAX_LIFETIME_SECONDS.min, MAX_LIFETIME_SECONDS.max));
  const retentionMs = Math.round((parse(env, 'RETENTION_DAYS', positiveNumber) ?? 30) * 1440 * ms.minutes);
  const bootTimeoutMs = minutes('BOOT_TIMEOUT_MINUTES', 30);
  const terminateOnBootTimeout = parse(env, 'TERMINATE_ON_BOOT_TIMEOUT', boolean) ?? true;
  const trackerPollMinMs = seconds('TRACKER_POLL_MIN_SECONDS', 5);
  const trackerPollMaxMs = seconds('TRACKER_POLL_MAX_SECONDS', 60);
  if (trackerPollMaxMs < trackerPollMinMs) throw new ConfigError('TRACKER_POLL_MAX_SECONDS', 'must not be less than TRACKER_POLL_MIN_SECONDS');
  const maxReplanAttempts = parse(env, 'MAX_REPLAN_ATTEMPTS', wholeNumber(0, 100)) ?? 3;
  const capacityBackoffMinMs = minutes('CAPACITY_BACKOFF_MIN_MINUTES', 5);
  const capacityBackoffMaxMs = minutes('CAPACITY_BACKOFF_MAX_MINUTES', 30);
  if (capacityBackoffMaxMs < capacityBackoffMinMs) throw new ConfigError('CAPACITY_BACKOFF_MAX_MINUTES', 'must not be less than CAPACITY_BACKOFF_MIN_MINUTES');
  const scaleOutPaused = parse(env, 'SCALE_OUT_PAUSED', boolean) ?? false;
  const createWindowMs = parse(env, 'CREATE_WINDOW_MS', wholeNumber(0, 10_000)) ?? 200;
  const createWindowMaxMs = parse(env, 'CREATE_WINDOW_MAX_MS', wholeNumber(0, 60_000)) ?? Math.max(1000, createWindowMs);
  if (createWindowMaxMs < createWindowMs) throw new ConfigError('CREATE_WINDOW_MAX_MS', 'must not be less than CREATE_WINDOW_MS');
  const createMaxSets = parse(env, 'CREATE_MAX_SETS', wholeNumber(1, 1000)) ?? 100;
  const maxConcurrentCreates = parse(env, 'CYCLECLOUD_MAX_CONCURRENT_CREATES', wholeNumber(1, 100)) ?? 1;
  const requireSignedWebhooks = parse(env, 'REQUIRE_SIGNED_WEBHOOKS', boolean) ?? false;

  const tenantsText = raw(env, 'TENANTS');
  let tenantsDocument: TenantsDocument | undefined;
  if (tenantsText !== undefined) {
    const parsed = parseTenantsDocument(tenantsText);
    if (!parsed.ok) throw new ConfigError('TENANTS', parsed.problem);
    tenantsDocument = parsed.value;
  }
  const tenantsSecretName = parse(env, 'TENANTS_SECRET_NAME', secretName);
  if (tenantsSecretName && tenantsDocument) throw new ConfigError('TENANTS_SECRET_NAME', 'set TENANTS or TENANTS_SECRET_NAME, not both');
  if (tenantsSecretName && !keyVaultUrl) throw new ConfigError('TENANTS_SECRET_NAME', 'needs KEY_VAULT_URL (the vault that holds it)');

  const pricesPath = raw(env, 'PRICES_FILE');
  let priceDocument: PriceDocument | undefined;
  if (pricesPath !== undefined) {
    let text: string;
    try {
      text = readFile(pricesPath);
    } catch (cause) {
      throw new ConfigError('PRICES_FILE', 'names a file that cannot be read', { cause });
    }
    const parsed = parsePriceDocument(text);
    if (!parsed.ok) throw new ConfigError('PRICES_FILE', `(${pricesPath}): ${parsed.problem}`);
    priceDocument = parsed.value;
  }
  const pricesFromAzure = parse(env, 'PRICES_FROM_AZURE', boolean) ?? false;
  const pricesApiUrl = parse(env, 'PRICES_API_URL', httpUrl(['https', 'http'])) ?? 'https://prices.azure.com/api/retail/prices';

  const signingSecretName = parse(env, 'SIGNING_SECRET_NAME', secretName);
  if (signingSecretName && !keyVaultUrl) throw new ConfigError('SIGNING_SECRET_NAME', 'needs KEY_VAULT_URL (the vault that holds it)');
  const signingSecret = env.SCALER_SIGNING_SECRET ? env.SCALER_SIGNING_SECRET : undefined;
  if (signingSecret !== undefined && signingSecret.length < 16) throw new ConfigError('SCALER_SIGNING_SECRET', 'must be at least 16 characters');
  registerSecret(signingSecret);
  if (requireSignedWebhooks && !signingSecret && !signingSecretName) {
    throw new ConfigError('REQUIRE_SIGNED_WEBHOOKS', 'needs a signing secret (SIGNING_SECRET_NAME or SCALER_SIGNING_SECRET)');
  }

  const signingSecretSecondaryName = parse(env, 'SIGNING_SECRET_SECONDARY_NAME', secretName);
  if (signingSecretSecondaryName && !keyVaultUrl) throw new ConfigError('SIGNING_SECRET_SECONDARY_NAME', 'needs KEY_VAULT_URL (the vault that holds it)');
  const signingSecretSecondary = env.SCALER_SIGNING_SECRET_SECONDARY ? env.SCALER_SIGNING_SECRET_SECONDARY : undefined;
  if (signingSecretSecondary !== undefined && signingSecretSecondary.length < 16) throw new ConfigError('SCALER_SIGNING_SECRET_SECONDARY', 'must be at least 16 characters');
  registerSecret(signingSecretSecondary);
  const callbackAllowedHosts = parse(env, 'CALLBACK_ALLOWED_HOSTS', hostList) ?? [];

  const storagePrefixValue = parse(env, 'STORAGE_PREFIX', storagePrefix) ?? 'scaler';
  const azureClientId = parse(env, 'AZURE_CLIENT_ID', guid);
  const level = parse(env, 'LOG_LEVEL', logLevel) ?? 'info';

  return deepFreeze<Config>({
    mode,
    cycleCloudUrl,
    cycleCloudClusters,
    keyVaultUrl,
    tenantsDocument,
    tenantsSecretName,
    priceDocument,
    pricesFromAzure,
    pricesApiUrl,
    cycleCloudCredentialsSecret,
    cycleCloudCredentials,
    cycleCloudCaPem,
    cycleCloudTlsInsecure,
    storage,
    scaleRequestsQueue,
    snapshotSchedule,
    port,
    functionKey: functionKeyValue,
    snapshotMaxAgeMs,
    snapshotStaleAfterFailures,
    snapshotHistory,
    requestDeadlineMs,
    orphanGraceMs,
    defaultLeaseSeconds,
    defaultMaxLifetimeSeconds,
    retentionMs,
    bootTimeoutMs,
    terminateOnBootTimeout,
    trackerPollMinMs,
    trackerPollMaxMs,
    maxReplanAttempts,
    capacityBackoffMinMs,
    capacityBackoffMaxMs,
    scaleOutPaused,
    createWindowMs,
    createWindowMaxMs,
    createMaxSets,
    maxConcurrentCreates,
    requireSignedWebhooks,
    signingSecretName,
    signingSecret,
    signingSecretSecondaryName,
    signingSecretSecondary,
    callbackAllowedHosts,
    storagePrefix: storagePrefixValue,
    azureClientId,
    logLevel: level,
  });
}
