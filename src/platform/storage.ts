/**
 * Table and queue clients for the `AzureWebJobsStorage` account: a connection string (azurite,
 * development) or identity-based settings (`AzureWebJobsStorage__accountName` or
 * `__queueServiceUri`/`__tableServiceUri`, with `__clientId` for a user-assigned identity).
 * The only module that constructs storage SDK clients.
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import type { TokenCredential } from '@azure/core-auth';

export type StorageConnection = { kind: 'connectionString'; connectionString: string } | { kind: 'identity'; queueServiceUri: string; tableServiceUri: string; clientId?: string };

const DEV_STORAGE = 'UseDevelopmentStorage=true';

/** Reads the `AzureWebJobsStorage` setting family from an environment. */
export function storageConnectionFromEnv(env: Record<string, string | undefined>): StorageConnection | undefined {
  const cs = env.AzureWebJobsStorage;
  if (cs) return { kind: 'connectionString', connectionString: cs };
  const account = env.AzureWebJobsStorage__accountName;
  const queueServiceUri = env.AzureWebJobsStorage__queueServiceUri ?? (account ? `https://${account}.queue.core.windows.net` : undefined);
  const tableServiceUri = env.AzureWebJobsStorage__tableServiceUri ?? (account ? `https://${account}.table.core.windows.net` : undefined);
  if (!queueServiceUri || !tableServiceUri) return undefined;
  const clientId = env.AzureWebJobsStorage__clientId;
  return { kind: 'identity', queueServiceUri, tableServiceUri, ...(clientId ? { clientId } : {}) };
}

let credentialPromise: Promise<TokenCredential> | undefined;
async function identityCredential(clientId?: string): Promise<TokenCredential> {
  // Loaded lazily: @azure/identity is heavy and only needed in Azure (cold start).
  credentialPromise ??= import('@azure/identity').then(({ ManagedIdentityCredential, DefaultAzureCredential }) =>
    clientId ? new ManagedIdentityCredential({ clientId }) : new DefaultAzureCredential(),
  );
  return credentialPromise;
}

function isHttp(connectionString: string): boolean {
  return connectionString === DEV_STORAGE || /Endpoint=http:\/\//i.test(connectionString) || /DefaultEndpointsProtocol=http;/i.test(connectionString);
}

export class Storage {
  readonly #conn: StorageConnection;
  readonly #tables = new Map<string, TableClient>();
  readonly #queues = new Map<string, QueueClient>();
  readonly #credential: TokenCredential | undefined;

  private constructor(conn: StorageConnection, credential?: TokenCredential) {
    this.#conn = conn;
    this.#credential = credential;
  }

  static async connect(conn: StorageConnection): Promise<Storage> {
    const credential = conn.kind === 'identity' ? await identityCredential(conn.clientId) : undefined;
    return new Storage(conn, credential);
  }

  /** Synchronous form for connection strings (tests, local host). */
  static fromConnectionString(connectionString: string): Storage {
    return new Storage({ kind: 'connectionString', connectionString });
  }

  table(name: string): TableClient {
    let client = this.#tables.get(name);
    if (!client) {
      const c = this.#conn;
      client =
        c.kind === 'connectionString'
          ? TableClient.fromConnectionString(c.connectionString, name, { allowInsecureConnection: isHttp(c.connectionString) })
          : new TableClient(`${c.tableServiceUri.replace(/\/$/, '')}`, name, this.#credential!);
      this.#tables.set(name, client);
    }
    return client;
  }

  queue(name: string): QueueClient {
    let client = this.#queues.get(name);
    if (!client) {
      const c = this.#conn;
      client =
        c.kind === 'connectionString'
          ? QueueServiceClient.fromConnectionString(c.connectionString).getQueueClient(name)
          : new QueueClient(`${c.queueServiceUri.replace(/\/$/, '')}/${name}`, this.#credential!);
      this.#queues.set(name, client);
    }
    return client;
  }

  /** Creates tables and queues if missing (idempotent; run once per process). */
  async ensure(names: { tables?: string[]; queues?: string[] }): Promise<void> {
    await Promise.all([...(names.tables ?? []).map((t) => this.table(t).createTable()), ...(names.queues ?? []).map((q) => this.queue(q).createIfNotExists())]);
  }
}

/** A storage (Table or Queue) error's HTTP status, if it has one: 404 missing, 409 exists, 412 ETag lost. */
export function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * `{ abortSignal }` for an Azure SDK call, or `{}` when there is none: the SDK's options type does not
 * accept an explicit `undefined` (`exactOptionalPropertyTypes`).
 */
export function abortOption(options: { abortSignal?: AbortSignal | undefined }): { abortSignal?: AbortSignal } {
  return options.abortSignal ? { abortSignal: options.abortSignal } : {};
}

/** Queue text as the Functions host expects it by default (`messageEncoding: base64`). */
export function encodeQueueMessage(body: unknown): string {
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8').toString('base64');
}

/** The inverse of {@link encodeQueueMessage}; the raw UTF-8 text. */
export function decodeQueueMessage(text: string): string {
  return Buffer.from(text, 'base64').toString('utf8');
}
