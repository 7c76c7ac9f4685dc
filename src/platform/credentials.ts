/**
 * CycleCloud credentials and cached Key Vault secrets.
 *
 * In Azure the CycleCloud username and password live in Key Vault (managed identity); locally they
 * may come straight from settings. Either way callers see a {@link CredentialProvider}: `get()` is
 * cheap (a short-lived cache, one vault call shared by concurrent callers) and `invalidate()` makes
 * the next `get()` fetch again, which the CycleCloud client does on a 401 so a rotated password is
 * picked up within one request.
 *
 * `@azure/identity` and `@azure/keyvault-secrets` are imported on first use only: they are heavy,
 * and a cold start that never touches Key Vault (local development) should not pay for them.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { SecretClient, SecretClientOptions } from '@azure/keyvault-secrets';
import { z } from 'zod';
import { registerSecret } from './log.ts';
import { ScalerError } from './errors.ts';

export interface CycleCloudCredentials {
  username: string;
  password: string;
}

export interface GetCredentialsOptions {
  abortSignal?: AbortSignal;
}

export interface CredentialProvider {
  get(options?: GetCredentialsOptions): Promise<CycleCloudCredentials>;
  /** Forgets the cached value; the next `get()` fetches again (called on a CycleCloud 401). */
  invalidate(): void;
}

export type CredentialErrorCode =
  /** The secret does not exist (or has no value). */
  | 'SECRET_NOT_FOUND'
  /** The vault could not be read: network, permissions, throttling. */
  | 'SECRET_UNAVAILABLE'
  /** The secret exists but is not in a usable format. */
  | 'SECRET_MALFORMED';

/** Errors of this module. Messages name the secret and the problem, never the value. */
export class CredentialError extends ScalerError<CredentialErrorCode> {
  override name = 'CredentialError' as const;
  /** The Key Vault secret concerned, when there is one. */
  readonly secretName?: string;

  constructor(code: CredentialErrorCode, message: string, options: ErrorOptions & { secretName?: string } = {}) {
    super(code, message, options);
    if (options.secretName !== undefined) this.secretName = options.secretName;
  }
}

function remember(creds: CycleCloudCredentials): CycleCloudCredentials {
  registerSecret(creds.password);
  return creds;
}

/** Fixed credentials (local development: `CYCLECLOUD_USERNAME`/`CYCLECLOUD_PASSWORD`, the simulator). */
export function staticCredentialProvider(creds: CycleCloudCredentials): CredentialProvider {
  const value = Object.freeze(remember({ username: creds.username, password: creds.password }));
  return {
    get: async () => value,
    // Nothing to refetch: a 401 with fixed credentials is final.
    invalidate: () => {},
  };
}

const CredentialJson = z.object({
  username: z.string().trim().min(1, 'must be a non-empty string'),
  password: z.string().min(1, 'must be a non-empty string'),
});

/**
 * Reads a credential secret: `{"username":"…","password":"…"}` or `user:password` (split at the
 * first colon, so the password may contain colons). Throws `CredentialError` (`SECRET_MALFORMED`)
 * naming what is wrong, never the value.
 */
export function parseCredentialSecret(value: string): CycleCloudCredentials {
  const text = value.trim();
  if (text.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // JSON.parse's message quotes the text: do not pass it on.
      throw new CredentialError('SECRET_MALFORMED', 'credential secret starts with "{" but is not valid JSON');
    }
    const parsed = CredentialJson.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') || 'value';
      throw new CredentialError('SECRET_MALFORMED', `credential secret JSON: ${field}: ${issue?.code === 'invalid_type' ? 'must be a non-empty string' : issue?.message}`);
    }
    return { username: parsed.data.username, password: parsed.data.password };
  }
  const colon = text.indexOf(':');
  if (colon < 0) throw new CredentialError('SECRET_MALFORMED', 'credential secret must be {"username","password"} JSON or user:password');
  const username = text.slice(0, colon).trim();
  const password = text.slice(colon + 1);
  if (!username) throw new CredentialError('SECRET_MALFORMED', 'credential secret user:password has an empty username');
  if (!password) throw new CredentialError('SECRET_MALFORMED', 'credential secret user:password has an empty password');
  return { username, password };
}

export interface GetSecretOptions {
  abortSignal?: AbortSignal;
}

/** Named secrets with a cache (HMAC signing keys, the CycleCloud credential secret). */
export interface SecretSource {
  /** The secret's current value. Throws `CredentialError`. */
  getSecret(name: string, options?: GetSecretOptions): Promise<string>;
  /** Forgets `name` (or everything): the next `getSecret` fetches again. */
  invalidate(name?: string): void;
}

export interface SecretSourceOptions {
  /** e.g. `https://my-vault.vault.azure.net`. */
  vaultUrl: string;
  /** Default: `DefaultAzureCredential`, with `managedIdentityClientId` = {@link managedIdentityClientId}. */
  credential?: TokenCredential;
  /** Client id of a user-assigned managed identity. Default: `process.env.AZURE_CLIENT_ID`. */
  managedIdentityClientId?: string;
  /** Passed to `SecretClient` (tests: `allowInsecureConnection`, `retryOptions`). */
  secretClientOptions?: SecretClientOptions;
  /** How long a fetched value is served from memory. Default 300000 (5 minutes); ≤ 0 disables the cache. */
  maxAgeMs?: number;
  /** Clock. Default `Date.now`. */
  now?: () => number;
}

interface CacheEntry {
  value: string;
  fetchedAtMs: number;
}

interface Flight {
  promise: Promise<string>;
  generation: number;
}

/** Waits for `promise`, or rejects as soon as `signal` aborts (the shared fetch keeps running). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function isRestError(error: unknown): error is Error & { statusCode?: number; code?: string } {
  return error instanceof Error && error.name === 'RestError';
}

/**
 * A Key Vault {@link SecretSource}: values cached for `maxAgeMs`, concurrent misses share one
 * vault call (single flight), every value registered with `registerSecret` so it cannot reach a
 * log line. One caller's `abortSignal` stops only that caller's wait, not the shared fetch.
 */
export function secretSource(options: SecretSourceOptions): SecretSource {
  const maxAgeMs = options.maxAgeMs ?? 300_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  const flights = new Map<string, Flight>();
  // Bumped by invalidate(): a fetch that started before the invalidation must not refill the cache.
  const generations = new Map<string, number>();
  let clientPromise: Promise<SecretClient> | undefined;

  const generationOf = (name: string) => generations.get(name) ?? 0;

  const client = (): Promise<SecretClient> => {
    clientPromise ??= (async () => {
      const { SecretClient } = await import('@azure/keyvault-secrets');
      let credential = options.credential;
      if (!credential) {
        const { DefaultAzureCredential } = await import('@azure/identity');
        const clientId = options.managedIdentityClientId ?? process.env.AZURE_CLIENT_ID;
        credential = new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
      }
      return new SecretClient(options.vaultUrl, credential, options.secretClientOptions);
    })();
    // A failed construction (e.g. a bad URL) should not stick forever.
    clientPromise.catch(() => {
      clientPromise = undefined;
    });
    return clientPromise;
  };

  const fetchSecret = async (name: string): Promise<string> => {
    let value: string | undefined;
    try {
      const secret = await (await client()).getSecret(name);
      value = secret.value;
    } catch (error) {
      if (isRestError(error) && error.statusCode === 404) {
        throw new CredentialError('SECRET_NOT_FOUND', `Key Vault secret "${name}" was not found in ${options.vaultUrl}`, { cause: error, secretName: name });
      }
      const status = isRestError(error) && error.statusCode ? ` (HTTP ${error.statusCode})` : '';
      throw new CredentialError('SECRET_UNAVAILABLE', `Key Vault secret "${name}" could not be read from ${options.vaultUrl}${status}`, { cause: error, secretName: name });
    }
    if (value === undefined || value === '') {
      throw new CredentialError('SECRET_NOT_FOUND', `Key Vault secret "${name}" in ${options.vaultUrl} has no value`, { secretName: name });
    }
    registerSecret(value);
    return value;
  };

  return {
    getSecret(name, callOptions = {}) {
      const hit = cache.get(name);
      if (hit && maxAgeMs > 0 && now() - hit.fetchedAtMs < maxAgeMs) return Promise.resolve(hit.value);
      let flight = flights.get(name);
      if (!flight || flight.generation !== generationOf(name)) {
        const generation = generationOf(name);
        const promise = fetchSecret(name).then((value) => {
          if (generationOf(name) === generation && maxAgeMs > 0) cache.set(name, { value, fetchedAtMs: now() });
          return value;
        });
        flight = { promise, generation };
        flights.set(name, flight);
        const settled = flight;
        promise.then(
          () => flights.get(name) === settled && flights.delete(name),
          () => flights.get(name) === settled && flights.delete(name),
        );
      }
      return raceAbort(flight.promise, callOptions.abortSignal);
    },
    invalidate(name) {
      const names = name === undefined ? [...new Set([...cache.keys(), ...flights.keys(), ...generations.keys()])] : [name];
      for (const n of names) {
        cache.delete(n);
        generations.set(n, generationOf(n) + 1);
      }
    },
  };
}

/** A {@link SecretSource} over fixed values (local development, tests). */
export function staticSecretSource(values: Record<string, string>): SecretSource {
  for (const v of Object.values(values)) registerSecret(v);
  return {
    getSecret: async (name) => {
      const value = values[name];
      if (value === undefined) throw new CredentialError('SECRET_NOT_FOUND', `secret "${name}" is not configured`, { secretName: name });
      return value;
    },
    invalidate: () => {},
  };
}

export interface KeyVaultCredentialProviderOptions extends SecretSourceOptions {
  /** The secret holding `{"username","password"}` JSON or `user:password` (docs/api.md §2 default `cyclecloud-credentials`). */
  secretName: string;
}

/** {@link CredentialProvider} over one Key Vault secret (see {@link secretSource} for caching). */
export function keyVaultCredentialProvider(options: KeyVaultCredentialProviderOptions): CredentialProvider {
  return credentialProviderFromSource(secretSource(options), options.secretName);
}

/** {@link CredentialProvider} over any {@link SecretSource} (shares its cache). */
export function credentialProviderFromSource(source: SecretSource, secretName: string): CredentialProvider {
  return {
    async get(callOptions) {
      const value = await source.getSecret(secretName, callOptions);
      try {
        return remember(parseCredentialSecret(value));
      } catch (error) {
        if (error instanceof CredentialError) {
          throw new CredentialError(error.code, `secret "${secretName}": ${error.message}`, { secretName });
        }
        throw error;
      }
    },
    invalidate: () => source.invalidate(secretName),
  };
}
