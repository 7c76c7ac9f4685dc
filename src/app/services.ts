/**
 * The composition root: builds every service the function handlers use from one parsed
 * configuration. Nothing here decides anything; it only connects the parts.
 *
 * Built lazily on the first invocation (not at import), once per process, so a cold start pays
 * only for what the first trigger needs and a bad setting fails the invocation with one message
 * naming it instead of crashing the worker.
 */
import { parseTenantsDocument, type Tenants, tenantsOf } from '../platform/tenants.ts';
import { clusterSize, tenantHoldings } from '../requests/tenant-share.ts';
import { inFlightOf } from '../requests/reservations.ts';
import { ConfigError, loadConfig, type Config, type ConfigMode } from '../platform/config.ts';
import { createLogger, setLogLevel, type Logger } from '../platform/log.ts';
import { storageNames, type StorageNames } from '../platform/names.ts';
import { Storage } from '../platform/storage.ts';
import { isScalerError } from '../platform/errors.ts';
import { credentialProviderFromSource, secretSource, staticCredentialProvider, type CredentialProvider, type SecretSource } from '../platform/credentials.ts';
import { createCycleCloudClient, type CycleCloudClient } from '../cyclecloud/client.ts';
import { isCycleCloudError } from '../cyclecloud/errors.ts';
import { Governor, governed } from '../cyclecloud/governor.ts';
import { createRequestPipeline, type RequestPipeline } from '../requests/pipeline.ts';
import { leaseView, release, renew, soonestLeases } from '../requests/lifecycle.ts';
import { closeGivenUp, runSlurmSync, type SlurmSyncDeps } from '../slurm/sync.ts';
import { SnapshotUnavailableError } from '../requests/submit.ts';
import { SnapshotStore } from '../snapshots/store.ts';
import { CapacityMemory } from '../snapshots/capacity-store.ts';
import { getFreshSnapshot } from '../snapshots/capture.ts';
import { statusView } from '../snapshots/snapshot.ts';
import { createTracker, type Tracker } from '../tracking/tracker.ts';
import { callbackQueue, createCallbackSender, type CallbackSender } from '../tracking/callbacks.ts';
import { plan } from '../planning/planner.ts';
import { planNamed } from '../planning/named.ts';
import { queueDepthFrom, type HttpDeps } from '../http/deps.ts';
import { RequestLedger } from '../ledger/ledger.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import { continuePort, storageQueueSender } from '../requests/queue.ts';
import { storageReplayCache } from '../platform/replay-cache.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { CapacityBackoff } from '../planning/types.ts';
import { SharedRead } from '../platform/shared-read.ts';
import type { MetricsHost } from '../platform/metrics-host.ts';
import { processMetrics } from './telemetry.ts';
import { type Prices, pricesOf } from '../platform/prices.ts';
import { RetailPriceCache, fetchRetailPrices } from '../platform/retail-prices.ts';
import { meterSpend } from '../tracking/meter.ts';
import type { TenantSpend } from '../requests/tenant-share.ts';

/** How long one process shares a snapshot or backoff read between its runs. */
const SHARED_READ_MS = 1_000;
export interface Services {
  config: Config;
  /** The price table in force (PRICES_FILE, and the Retail Prices cache where it answers); undefined = no cost. */
  prices(): Prices | undefined;
  /** With PRICES_FROM_AZURE: the Retail Prices cache for these regions, refreshed when a day old (the snapshot timer calls it). */
  refreshPrices(regions: readonly string[]): Promise<void>;
  /** Per tenant, what it spent today and this month (UTC) on every configured cluster (the cost meter; 5 s cache). */
  tenantSpend(nowMs: number): Promise<TenantSpend>;
  logger: Logger;
  names: StorageNames;
  storage: Storage;
  cyclecloud: CycleCloudClient;
  snapshots: SnapshotStore;
  capacity: CapacityMemory;
  tracker: Tracker;
  callbacks: CallbackSender;
  pipeline: RequestPipeline;
  http: HttpDeps;
  /** The clusters the snapshot timer covers. */
  clusters: readonly string[];
  /** Queues the callback of a final record (one with a `callbackUrl`); what the ledger calls when an entry becomes final. */
  onFinal(entry: LedgerEntry): Promise<void>;
  /** The latest stored snapshot, or a live one when it is older than the bound; null when CycleCloud cannot be read. */
  freshSnapshot(cluster: string, maxAgeMs: number): Promise<ClusterSnapshot | null>;
  close(): Promise<void>;
}

export interface CreateServicesOptions {
  mode: ConfigMode;
  now?: () => number;
  logger?: Logger;
  /**
   * Used instead of connecting to `AzureWebJobsStorage` (the setting must still be present). For
   * rehearsals and chaos tests that wrap the real connection to inject failures. Default: connect.
   */
  storage?: Storage;
  /** Used instead of a client built from the CycleCloud settings (same purpose). Default: built from the settings. */
  cyclecloud?: CycleCloudClient;
  /** How long a call waits for a governor slot before its request waits instead (ms). Default 2000; rehearsals on a virtual clock use 0. */
  governorWaitMs?: number;
  /** Requests admitted over HTTP that start at once in this process (`RequestPipelineOptions.fastPathConcurrency`). Default 32 (they mostly wait in a batch window); 0 = queue only (deterministic rehearsals). */
  fastPathConcurrency?: number;
  /** Where `GET /api/metrics` reads the process's OpenTelemetry figures; absent = that route answers 404. */
  metrics?: MetricsHost;
}

/** Builds the services from an environment (app settings). Creates missing tables and queues. */
export async function createServices(env: Record<string, string | undefined>, options: CreateServicesOptions): Promise<Services> {
  const config = loadConfig(env, { mode: options.mode });
  setLogLevel(config.logLevel);
  const now = options.now ?? Date.now;
  const logger = options.logger ?? createLogger();
  if (!config.storage) throw new Error('AzureWebJobsStorage is not set (the local host sets it when it starts azurite)');
  if (!config.cycleCloudUrl) throw new Error('CYCLECLOUD_URL is not set (the local host sets it when it starts the simulator)');

  const names = storageNames({ prefix: config.storagePrefix, scaleQueue: config.scaleRequestsQueue });
  const storage = options.storage ?? (await Storage.connect(config.storage));
  await storage.ensure({
    tables: [names.requestsTable, names.snapshotsTable, names.operationsTable, names.capacityTable, names.stateTable],
    queues: [names.scaleQueue, names.trackerQueue, names.callbackQueue],
  });

  let secrets: SecretSource | undefined;
  const vault = (): SecretSource => {
    if (!config.keyVaultUrl) throw new Error('KEY_VAULT_URL is not set');
    secrets ??= secretSource({ vaultUrl: config.keyVaultUrl, ...(config.azureClientId ? { managedIdentityClientId: config.azureClientId } : {}) });
    return secrets;
  };
  const creds = config.cycleCloudCredentials;
  let credentials: CredentialProvider;
  if (creds.kind === 'keyVault') credentials = credentialProviderFromSource(vault(), creds.secretName);
  else if (creds.kind === 'settings') credentials = staticCredentialProvider({ username: creds.username, password: creds.password });
  else throw new Error('CycleCloud credentials are not set (CYCLECLOUD_USERNAME/CYCLECLOUD_PASSWORD or KEY_VAULT_URL)');

  const client =
    options.cyclecloud ??
    createCycleCloudClient({
      baseUrl: config.cycleCloudUrl,
      credentials,
      ...(config.cycleCloudCaPem ? { caPem: config.cycleCloudCaPem } : {}),
      insecure: config.cycleCloudTlsInsecure,
      logger,
      now,
    });
  // Every instance agrees through storage: creates in flight per cluster, one batch per cluster, and
  // a 429/503 with Retry-After pausing every instance's CycleCloud calls (src/cyclecloud/governor.ts).
  const governor = new Governor({
    storage,
    names,
    maxConcurrentCreates: config.maxConcurrentCreates,
    now,
    ...(options.governorWaitMs !== undefined ? { acquireWaitMs: options.governorWaitMs } : {}),
  });
  const cyclecloud = governed(client, governor, logger, now);

  const warnedNoSigningSecret = new Set<string>();
  const secretFrom = async (value: string | undefined, name: string | undefined): Promise<string | undefined> => {
    if (value) return value;
    if (!name) return undefined;
    try {
      return await vault().getSecret(name);
    } catch (error) {
      // Not created yet (the deployment names it; an operator stores it): run unsigned, say so once.
      if (!isScalerError(error, 'SECRET_NOT_FOUND')) throw error;
      if (!warnedNoSigningSecret.has(name)) logger.warn('signing secret not found in Key Vault: it is not used until it exists', { secretName: name });
      warnedNoSigningSecret.add(name);
      return undefined;
    }
  };
  const signingSecret = (): Promise<string | undefined> => secretFrom(config.signingSecret, config.signingSecretName);
  // docs/api.md §4: two keys may be active at once (rotation); callbacks are signed with the first.
  const signingSecrets = async (): Promise<readonly string[]> =>
    (await Promise.all([signingSecret(), secretFrom(config.signingSecretSecondary, config.signingSecretSecondaryName)])).filter((s): s is string => !!s);

  const tenants = await loadTenants();
  async function loadTenants(): Promise<Tenants | undefined> {
    if (config.tenantsDocument) return tenantsOf(config.tenantsDocument);
    if (!config.tenantsSecretName) return undefined;
    const parsed = parseTenantsDocument(await vault().getSecret(config.tenantsSecretName));
    // Named like a bad inline TENANTS, with the secret's name and never its text.
    if (!parsed.ok) throw new ConfigError('TENANTS_SECRET_NAME', `(Key Vault secret ${config.tenantsSecretName}): ${parsed.problem}`);
    return tenantsOf(parsed.value);
  }

  // Prices: the Retail Prices cache (when enabled and it has answered) before the local file.
  let prices = pricesOf(config.priceDocument);
  const retail = config.pricesFromAzure
    ? new RetailPriceCache({
        table: storage.table(names.stateTable),
        now,
        fetchPrices: (regions) => fetchRetailPrices({ baseUrl: config.pricesApiUrl, regions, currency: config.priceDocument?.currency ?? 'USD' }),
        logger: logger.child({ component: 'retail-prices' }),
      })
    : undefined;
  const refreshPrices = async (regions: readonly string[]): Promise<void> => {
    if (!retail || regions.length === 0) return;
    prices = pricesOf(await retail.current([...regions]), config.priceDocument);
  };
  // A budget in another currency than the price table's could never be compared: refused at start-up.
  for (const name of tenants?.names ?? []) {
    const budget = tenants!.get(name)?.budget;
    if (budget?.currency && prices && budget.currency !== prices.currency) {
      throw new ConfigError(
        config.tenantsSecretName ? 'TENANTS_SECRET_NAME' : 'TENANTS',
        `tenants.${name}.budget.currency: is ${budget.currency} but the price table's is ${prices.currency}`,
      );
    }
  }
  const spendRead = new SharedRead<TenantSpend>(5_000, now);
  const tenantSpend = (nowMs: number): Promise<TenantSpend> =>
    spendRead.get('all', async () => {
      const total = new Map<string, { today: number; month: number }>();
      const table = storage.table(names.stateTable);
      for (const cluster of config.cycleCloudClusters ?? []) {
        for (const [tenant, x] of await meterSpend(table, cluster, nowMs)) {
          const t = total.get(tenant) ?? { today: 0, month: 0 };
          total.set(tenant, { today: t.today + x.today, month: t.month + x.month });
        }
      }
      return total;
    });

  const snapshots = new SnapshotStore(storage, names, {
    now,
    historySize: config.snapshotHistory,
    retentionMs: config.retentionMs,
    failureThreshold: config.snapshotStaleAfterFailures,
  });
  const capacity = new CapacityMemory(storage, names, {
    policy: { minMs: config.capacityBackoffMinMs, maxMs: config.capacityBackoffMaxMs },
  });

  // Every run reads the cluster's snapshot (its node list too) and its capacity backoffs: one read
  // per process per second serves them all (src/platform/shared-read.ts).
  const sharedSnapshots = new SharedRead<ClusterSnapshot | null>(SHARED_READ_MS, now);
  const sharedBackoffs = new SharedRead<CapacityBackoff[]>(SHARED_READ_MS, now);
  const runCapacity = {
    active: async (cluster: string, nowMs: number) => (await sharedBackoffs.get(cluster, () => capacity.active(cluster, nowMs))).filter((b) => b.untilMs > nowMs),
    recordFailure: async (failure: Parameters<CapacityMemory['recordFailure']>[0], nowMs: number) => {
      try {
        return await capacity.recordFailure(failure, nowMs);
      } finally {
        sharedBackoffs.forget(failure.cluster);
      }
    },
  };
  const freshSnapshot = (cluster: string, maxAgeMs: number): Promise<ClusterSnapshot | null> =>
    sharedSnapshots.get(`${cluster}\u0000${maxAgeMs}`, () => readFreshSnapshot(cluster, maxAgeMs));
  const readFreshSnapshot = async (cluster: string, maxAgeMs: number): Promise<ClusterSnapshot | null> => {
    const health = await snapshots.health(cluster);
    // A cluster marked stale (consecutive failed reads) is read live whatever its last snapshot's age.
    const bound = health?.stale ? -1 : maxAgeMs;
    try {
      return await getFreshSnapshot({ cyclecloud, store: snapshots, logger: logger.child({ cluster }), now }, cluster, bound);
    } catch (error) {
      if (isCycleCloudError(error) && error.code === 'CC_NOT_FOUND') {
        throw new SnapshotUnavailableError(`cluster ${cluster} does not exist in CycleCloud (${new URL(config.cycleCloudUrl!).host})`, { cause: error, permanent: true });
      }
      const stored = await snapshots.latest(cluster);
      const after = await snapshots.health(cluster);
      const ageMs = stored ? now() - Date.parse(stored.takenAt) : Infinity;
      // CycleCloud cannot be read now. A young enough snapshot of a cluster that is not stale is still
      // good to plan on; otherwise planning freezes and the request waits, saying why.
      if (stored && ageMs <= maxAgeMs && !after?.stale) return stored;
      if (!stored && !after) return null;
      const failures = after?.consecutiveFailures ?? 0;
      const what = stored ? `its last snapshot is ${Math.round(ageMs / 1000)} s old` : 'it has never been read';
      throw new SnapshotUnavailableError(
        `cluster ${cluster} is stale: ${what} and CycleCloud could not be read (${failures} consecutive failure${failures === 1 ? '' : 's'}` +
          `${after?.lastError ? `, last: ${after.lastError}` : ''}); planning waits instead of acting on old numbers`,
        { cause: error },
      );
    }
  };

  // Wired in dependency order, no late references: ledger → callbacks → tracker → pipeline. The
  // ledger's onFinal needs only the callback queue; the tracker reaches the pipeline through its
  // port (a continue message on the scale queue), never through the pipeline object.
  const finalCallbacks = callbackQueue(storage, names);
  // Every final request with a callbackUrl gets its callback, whoever finalised it (the sender
  // de-duplicates per record version, so the tracker queueing it too is harmless).
  const onFinal = async (entry: LedgerEntry): Promise<void> => {
    if (!entry.request?.callbackUrl) return;
    try {
      await finalCallbacks.enqueue(entry.record.requestId);
    } catch (error) {
      logger.error('could not queue the callback of a final request', { requestId: entry.record.requestId, error });
    }
  };
  const ledger = new RequestLedger({ storage, names, now, deadlineMs: config.requestDeadlineMs, onFinal });

  // http and loopback targets only for the local host (README "Security").
  const callbackTarget = { allowedHosts: config.callbackAllowedHosts, localDevelopment: config.mode === 'local' };
  const callbacks = createCallbackSender({
    storage,
    names,
    ledger,
    signingSecret,
    now,
    logger,
    target: callbackTarget,
  });
  const tracker = createTracker({
    cyclecloud,
    storage,
    names,
    ledger,
    pipeline: continuePort(storageQueueSender(storage, names.scaleQueue)),
    now,
    callbacks,
    capacity,
    logger,
    config: {
      pollMinMs: config.trackerPollMinMs,
      pollMaxMs: config.trackerPollMaxMs,
      bootTimeoutMs: config.bootTimeoutMs,
      terminateOnBootTimeout: config.terminateOnBootTimeout,
      maxReplanAttempts: config.maxReplanAttempts,
    },
  });

  const pipeline = createRequestPipeline({
    ledger,
    storage,
    names,
    cyclecloud,
    fastPathConcurrency: options.fastPathConcurrency ?? 32,
    createWindow: { windowMs: config.createWindowMs, windowMaxMs: config.createWindowMaxMs, maxSets: config.createMaxSets },
    governor,
    callbackTarget,
    ...(tenants ? { tenants } : {}),
    budgets: { spend: async (nowMs) => (prices ? tenantSpend(nowMs) : new Map()), currency: () => prices?.currency ?? '' },
    ...(config.cycleCloudClusters ? { clusters: config.cycleCloudClusters } : {}),
    tracker,
    snapshots: { getFresh: freshSnapshot, forget: () => sharedSnapshots.forget() },
    capacity: runCapacity,
    onFinal,
    lifecycleDefaults: {
      ...(config.defaultLeaseSeconds !== undefined ? { leaseSeconds: config.defaultLeaseSeconds } : {}),
      ...(config.defaultMaxLifetimeSeconds !== undefined ? { maxLifetimeSeconds: config.defaultMaxLifetimeSeconds } : {}),
    },
    config: {
      pausedBySetting: config.scaleOutPaused,
      deadlineMs: config.requestDeadlineMs,
      maxReplanAttempts: config.maxReplanAttempts,
      snapshotMaxAgeMs: config.snapshotMaxAgeMs,
      // The snapshot source already refused anything older than the bound; this is the safety net.
      planOptions: { maxSnapshotAgeSec: Math.max(1, Math.round((config.snapshotMaxAgeMs * 2) / 1000)) },
    },
    now,
    logger,
  });

  const clusters = config.cycleCloudClusters ?? [];
  const slurmSyncDeps: SlurmSyncDeps = {
    now,
    logger: logger.child({ route: 'slurm-sync' }),
    listOpen: (cluster) => pipeline.ledger.listOpen(cluster),
    getEntry: (id) => pipeline.ledger.get(id),
    updateEntry: (id, mutate) => pipeline.ledger.update(id, mutate),
    list: (q) => pipeline.ledger.listing.list(q),
    snapshot: (cluster) => snapshots.latest(cluster),
    backoffs: (cluster, nowMs) => capacity.active(cluster, nowMs),
    submitRequest: (m) => pipeline.submitRequest(m, { scheduler: true }),
  };
  const http: HttpDeps = {
    now,
    logger,
    submitRequest: (m, o) => pipeline.submitRequest(m, o),
    renew: (id, seconds) => renew(pipeline.lifecycle(logger.child({ route: 'renew' })), id, seconds),
    release: (id) => release(pipeline.lifecycle(logger.child({ route: 'release' })), id),
    slurmSync: (report) => runSlurmSync(slurmSyncDeps, report),
    slurmGaveUp: (cluster, names) => closeGivenUp(slurmSyncDeps, cluster, names),
    ...(options.metrics ? { metricsText: options.metrics.prometheusText } : {}),
    ...(tenants ? { tenants } : {}),
    prices: () => prices,
    tenantCosts: async (nowMs) => (prices ? tenantSpend(nowMs) : new Map()),
    tenantUsage: async (cluster) => {
      const snapshot = await snapshots.latest(cluster);
      if (!snapshot) return null;
      const { items } = await pipeline.reservations.read(cluster);
      return { holdings: tenantHoldings(snapshot, items, Date.parse(snapshot.takenAt)), size: clusterSize(snapshot) };
    },
    leases: {
      view: (nowMs) => leaseView({ ledger: pipeline.ledger, leases: pipeline.leases }, nowMs),
      soonest: (limit) => soonestLeases({ ledger: pipeline.ledger, leases: pipeline.leases }, limit),
    },
    callbackTarget,
    // The plan route subtracts what the submission path does: the cluster's capacity reservations.
    ledger: {
      getRecord: (id) => pipeline.ledger.getRecord(id),
      tombstone: (id) => pipeline.ledger.tombstone(id),
      inFlight: async (cluster, sinceMs) => inFlightOf((await pipeline.reservations.read(cluster)).items, sinceMs),
    },
    state: pipeline.state,
    snapshots,
    capacity,
    plan: (input) => planNamed(input, plan),
    planOptions: { maxSnapshotAgeSec: Math.max(1, Math.round((config.snapshotMaxAgeMs * 2) / 1000)) },
    statusView: (s, nowMs, o) => statusView(s, nowMs, o),
    readLive: async (cluster) => {
      try {
        return await getFreshSnapshot({ cyclecloud, store: snapshots, logger: logger.child({ cluster }), now }, cluster, -1);
      } catch (error) {
        if (isCycleCloudError(error) && error.code === 'CC_NOT_FOUND') return null;
        throw error;
      }
    },
    configuredClusters: () => clusters,
    queueDepth: queueDepthFrom(storage),
    queues: { scaleQueue: names.scaleQueue, scalePoisonQueue: names.scalePoisonQueue },
    // The request list and histories the console's read routes use.
    requests: pipeline.ledger.listing,
    signingSecret,
    signingSecrets,
    replayCache: storageReplayCache(storage, names.stateTable, now),
    requireSignatures: config.requireSignedWebhooks,
    governor,
  };

  return {
    config,
    prices: () => prices,
    refreshPrices,
    tenantSpend,
    logger,
    names,
    storage,
    cyclecloud,
    snapshots,
    capacity,
    tracker,
    callbacks,
    pipeline,
    http,
    clusters,
    onFinal,
    freshSnapshot,
    close: () => cyclecloud.close(),
  };
}

let shared: Promise<Services> | undefined;

/**
 * The process-wide services, built on first use from `process.env`. `SCALER_MODE=local` (set by the
 * local host) relaxes what only the local host can default; anything else is Azure.
 */
export function services(): Promise<Services> {
  shared ??= processMetrics(process.env).then((metrics) => createServices(process.env, { mode: process.env.SCALER_MODE === 'local' ? 'local' : 'azure', metrics }));
  // A failed build (Key Vault down, bad setting) must not stick: the next invocation tries again.
  shared.catch(() => {
    shared = undefined;
  });
  return shared;
}

/** Tests only: forget the process-wide services. */
export function resetServices(): void {
  shared = undefined;
}
