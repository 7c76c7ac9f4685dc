/**
 * Storage names used by the scaler. Queues and tables live in the `AzureWebJobsStorage` account.
 * Tests pass a unique prefix so that parallel test files share one azurite without clashing.
 */
export interface StorageNames {
  /** Request ledger. */
  requestsTable: string;
  /** Latest cluster snapshots and their history. */
  snapshotsTable: string;
  /** Operation tracker state. */
  operationsTable: string;
  /** Capacity-failure memory with backoff. */
  capacityTable: string;
  /** Small shared state: pause switch, counters. */
  stateTable: string;
  /** Scale and terminate requests (docs/api.md §3). */
  scaleQueue: string;
  /** Where the Functions host moves messages after maxDequeueCount. */
  scalePoisonQueue: string;
  /** Tracker wake-ups, sent with a visibility delay. */
  trackerQueue: string;
  /** Callback deliveries, retried apart from the tracker. */
  callbackQueue: string;
}

export const DEFAULT_SCALE_QUEUE = 'scale-requests';
export const poisonQueueName = (queue: string): string => `${queue}-poison`;

/** `prefix` must be lowercase letters/digits (table names allow nothing else). */
export function storageNames(options: { prefix?: string; scaleQueue?: string } = {}): StorageNames {
  const prefix = options.prefix ?? 'scaler';
  if (!/^[a-z][a-z0-9]{0,39}$/.test(prefix)) throw new Error(`storage prefix "${prefix}" must be lowercase letters and digits`);
  const scaleQueue = options.scaleQueue ?? DEFAULT_SCALE_QUEUE;
  return {
    requestsTable: `${prefix}requests`,
    snapshotsTable: `${prefix}snapshots`,
    operationsTable: `${prefix}operations`,
    capacityTable: `${prefix}capacity`,
    stateTable: `${prefix}state`,
    scaleQueue,
    scalePoisonQueue: poisonQueueName(scaleQueue),
    trackerQueue: `${prefix}-tracker`,
    callbackQueue: `${prefix}-callbacks`,
  };
}
