/**
 * An in-memory stand-in for the Table and Queue clients the product uses, with the semantics the
 * product depends on: 409 on a second insert, 404 on a missing row, 412 when an ETag no longer
 * matches, a fresh ETag on every write, entity group transactions that land whole or not at all,
 * and key filters (`PartitionKey|RowKey eq|ne|ge|gt|le|lt '…'` joined by `and`/`or`). For tests that
 * run thousands of interleavings, where azurite's milliseconds per call add up; everything else
 * runs on azurite.
 */
import type { Storage } from '../../src/platform/storage.ts';

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

class StatusError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

type Clause = { key: 'PartitionKey' | 'RowKey'; op: string; value: string };

function parseFilter(filter: string | undefined): Clause[][] {
  if (!filter) return [[]];
  // OR of ANDs, the only shapes the product writes.
  return filter.split(/\s+or\s+/).map((part) =>
    part.split(/\s+and\s+/).map((c) => {
      const m = /^\(?\s*(PartitionKey|RowKey)\s+(eq|ne|ge|gt|le|lt)\s+'((?:[^']|'')*)'\s*\)?$/.exec(c.trim());
      if (!m) throw new Error(`memory storage: unsupported filter clause ${c}`);
      return { key: m[1] as Clause['key'], op: m[2]!, value: m[3]!.replace(/''/g, "'") };
    }),
  );
}

function matches(e: Entity, any: Clause[][]): boolean {
  return any.some((all) =>
    all.every(({ key, op, value }) => {
      const v = key === 'PartitionKey' ? e.partitionKey : e.rowKey;
      switch (op) {
        case 'eq':
          return v === value;
        case 'ne':
          return v !== value;
        case 'ge':
          return v >= value;
        case 'gt':
          return v > value;
        case 'le':
          return v <= value;
        default:
          return v < value;
      }
    }),
  );
}

let etagSeq = 0;
const nextEtag = (): string => `W/"mem-${++etagSeq}"`;
const keyOf = (pk: string, rk: string): string => `${pk}\u0000${rk}`;

class MemoryTable {
  readonly #rows = new Map<string, { entity: Entity; etag: string }>();

  async createTable(): Promise<void> {}

  async createEntity(entity: Entity): Promise<{ etag: string }> {
    const k = keyOf(entity.partitionKey, entity.rowKey);
    if (this.#rows.has(k)) throw new StatusError(409, 'EntityAlreadyExists');
    const etag = nextEtag();
    this.#rows.set(k, { entity: structuredClone(entity), etag });
    return { etag };
  }

  async getEntity(pk: string, rk: string): Promise<Entity & { etag: string }> {
    const row = this.#rows.get(keyOf(pk, rk));
    if (!row) throw new StatusError(404, 'ResourceNotFound');
    return { ...structuredClone(row.entity), etag: row.etag };
  }

  #write(entity: Entity, mode: string | undefined, etag: string | undefined, mustExist: boolean): { etag: string } {
    const k = keyOf(entity.partitionKey, entity.rowKey);
    const row = this.#rows.get(k);
    if (!row && mustExist) throw new StatusError(404, 'ResourceNotFound');
    if (row && etag !== undefined && etag !== '*' && etag !== row.etag) throw new StatusError(412, 'UpdateConditionNotSatisfied');
    const { etag: _e, ...plain } = entity as Entity & { etag?: unknown };
    const next = mode === 'Merge' && row ? { ...row.entity, ...structuredClone(plain) } : structuredClone(plain);
    const fresh = nextEtag();
    this.#rows.set(k, { entity: next as Entity, etag: fresh });
    return { etag: fresh };
  }

  async updateEntity(entity: Entity, mode?: string, options?: { etag?: string }): Promise<{ etag: string }> {
    return this.#write(entity, mode ?? 'Merge', options?.etag, true);
  }

  async upsertEntity(entity: Entity, mode?: string): Promise<{ etag: string }> {
    return this.#write(entity, mode ?? 'Merge', undefined, false);
  }

  async deleteEntity(pk: string, rk: string, options?: { etag?: string }): Promise<void> {
    const k = keyOf(pk, rk);
    const row = this.#rows.get(k);
    if (!row) throw new StatusError(404, 'ResourceNotFound');
    if (options?.etag !== undefined && options.etag !== '*' && options.etag !== row.etag) throw new StatusError(412, 'UpdateConditionNotSatisfied');
    this.#rows.delete(k);
  }

  async submitTransaction(actions: [string, Entity, string?, { etag?: string }?][]): Promise<{ status: number }> {
    // All or nothing: check every action against a copy first.
    const saved = new Map(this.#rows);
    try {
      for (const [kind, entity, mode, options] of actions) {
        if (kind === 'create') await this.createEntity(entity);
        else if (kind === 'update') await this.updateEntity(entity, mode, options);
        else if (kind === 'upsert') await this.upsertEntity(entity, mode);
        else if (kind === 'delete') await this.deleteEntity(entity.partitionKey, entity.rowKey, options);
        else throw new Error(`memory storage: unknown transaction action ${kind}`);
      }
    } catch (error) {
      this.#rows.clear();
      for (const [k, v] of saved) this.#rows.set(k, v);
      throw error;
    }
    return { status: 202 };
  }

  listEntities(options?: { queryOptions?: { filter?: string; select?: string[] } }): AsyncIterableIterator<Entity & { etag: string }> {
    const clauses = parseFilter(options?.queryOptions?.filter);
    const rows = [...this.#rows.values()]
      .filter((r) => matches(r.entity, clauses))
      .sort((a, b) => (a.entity.partitionKey < b.entity.partitionKey ? -1 : a.entity.partitionKey > b.entity.partitionKey ? 1 : a.entity.rowKey < b.entity.rowKey ? -1 : 1))
      .map((r) => ({ ...structuredClone(r.entity), etag: r.etag }));
    const iterator = (async function* () {
      yield* rows;
    })();
    return Object.assign(iterator, {
      byPage: (o?: { maxPageSize?: number }) =>
        (async function* () {
          const size = o?.maxPageSize ?? 1000;
          for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
        })(),
    });
  }
}

class MemoryQueue {
  readonly messages: { messageId: string; messageText: string; visibleAtMs: number; dequeueCount: number; popReceipt: string }[] = [];
  #seq = 0;
  async createIfNotExists(): Promise<void> {}
  async sendMessage(text: string, options?: { visibilityTimeout?: number }): Promise<{ messageId: string }> {
    const messageId = `mem-msg-${++this.#seq}`;
    this.messages.push({ messageId, messageText: text, visibleAtMs: Date.now() + (options?.visibilityTimeout ?? 0) * 1000, dequeueCount: 0, popReceipt: `pr-${this.#seq}` });
    return { messageId };
  }
  async getProperties(): Promise<{ approximateMessagesCount: number }> {
    return { approximateMessagesCount: this.messages.length };
  }
  async deleteMessage(messageId: string): Promise<void> {
    const i = this.messages.findIndex((m) => m.messageId === messageId);
    if (i >= 0) this.messages.splice(i, 1);
  }
}

/** A {@link Storage} held in memory (tables and queues by name). */
export function memoryStorage(): Storage & { queues: Map<string, MemoryQueue> } {
  const tables = new Map<string, MemoryTable>();
  const queues = new Map<string, MemoryQueue>();
  const s = {
    queues,
    table(name: string) {
      let t = tables.get(name);
      if (!t) tables.set(name, (t = new MemoryTable()));
      return t;
    },
    queue(name: string) {
      let q = queues.get(name);
      if (!q) queues.set(name, (q = new MemoryQueue()));
      return q;
    },
    async ensure(): Promise<void> {},
  };
  return s as unknown as Storage & { queues: Map<string, MemoryQueue> };
}
