/**
 * The replay cache of docs/api.md §4: a signature seen before inside its 5-minute window is refused.
 *
 * Stored in the state table (PartitionKey `sig-<10-minute bucket of the signature's timestamp>`,
 * RowKey the signature's hex digest), so every instance of the Function App shares it. The insert
 * is conditional (create, 409 when present): two instances receiving the same signed request at
 * once accept exactly one. Buckets older than the window are deleted by {@link pruneReplayCache}.
 */
import type { Storage } from './storage.ts';
import { statusOf } from './storage.ts';

export interface ReplayCache {
  /**
   * Remembers `digest` (a signature's hex) whose timestamp is `timestampMs`; false when it was seen
   * already (a replay).
   */
  remember(digest: string, timestampMs: number): Promise<boolean>;
}

const BUCKET_MS = 10 * 60_000;
const PARTITION_PREFIX = 'sig-';

const bucketOf = (timestampMs: number) => `${PARTITION_PREFIX}${Math.floor(timestampMs / BUCKET_MS)}`;

/** A replay cache over a storage table (the scaler's `stateTable`). */
export function storageReplayCache(storage: Pick<Storage, 'table'>, tableName: string, now: () => number = Date.now): ReplayCache {
  return {
    async remember(digest, timestampMs) {
      try {
        await storage.table(tableName).createEntity({ partitionKey: bucketOf(timestampMs), rowKey: digest.toLowerCase(), seenAtMs: now() });
        return true;
      } catch (error) {
        if (statusOf(error) === 409) return false;
        throw error;
      }
    },
  };
}

/** Deletes buckets whose every timestamp is older than `windowMs` (called from the snapshot timer). */
export async function pruneReplayCache(storage: Pick<Storage, 'table'>, tableName: string, nowMs: number, windowMs: number): Promise<number> {
  const oldest = Math.floor((nowMs - windowMs) / BUCKET_MS) - 1;
  const table = storage.table(tableName);
  let deleted = 0;
  const rows = table.listEntities<{ partitionKey: string; rowKey: string }>({
    queryOptions: { filter: `PartitionKey ge '${PARTITION_PREFIX}' and PartitionKey lt '${PARTITION_PREFIX}~'`, select: ['PartitionKey', 'RowKey'] },
  });
  for await (const row of rows) {
    const bucket = Number(row.partitionKey.slice(PARTITION_PREFIX.length));
    if (!Number.isFinite(bucket) || bucket >= oldest) continue;
    try {
      await table.deleteEntity(row.partitionKey, row.rowKey);
      deleted++;
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }
  return deleted;
}

/** An in-process replay cache (tests, and a fallback when no storage one is wired). */
export function memoryReplayCache(now: () => number = Date.now, windowMs = 2 * 5 * 60_000): ReplayCache {
  const seen = new Map<string, number>();
  return {
    async remember(digest, timestampMs) {
      const t = now();
      for (const [k, at] of seen) if (t - at > windowMs) seen.delete(k);
      const key = digest.toLowerCase();
      if (seen.has(key)) return false;
      seen.set(key, Math.max(t, timestampMs));
      return true;
    },
  };
}
