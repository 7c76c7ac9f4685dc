/**
 * An in-memory {@link RequestLedgerApi} with the Table ledger's semantics (conditional create,
 * read-modify-write with version checks, `mutate` possibly re-run), for benches and fast tests.
 */
import type { AdmitResult, LedgerEntry, RequestLedgerApi } from '../../src/ledger/types.ts';
import type { RequestMessage } from '../../src/ledger/schemas.ts';
import { isFinal, newEntry, rejectedEntry } from '../../src/ledger/record.ts';

export class MemoryLedger implements RequestLedgerApi {
  readonly #rows = new Map<string, { version: number; json: string }>();
  readonly #deadlineMs: number;

  constructor(options: { deadlineMs?: number } = {}) {
    this.#deadlineMs = options.deadlineMs ?? 30 * 60_000;
  }

  async get(requestId: string): Promise<LedgerEntry | null> {
    const row = this.#rows.get(requestId);
    if (!row) return null;
    return { ...(JSON.parse(row.json) as LedgerEntry), etag: String(row.version) };
  }

  async admit(message: RequestMessage, nowMs: number): Promise<AdmitResult> {
    const entry = newEntry(message, nowMs, this.#deadlineMs);
    const existing = await this.get(message.requestId);
    if (existing) return { outcome: existing.bodyHash === entry.bodyHash ? 'duplicate' : 'conflict', entry: existing };
    this.#write(entry);
    return { outcome: 'created', entry: (await this.get(message.requestId))! };
  }

  async reject(requestId: string, cluster: string | null, reason: string, errors: { path: string; message: string }[], nowMs: number): Promise<LedgerEntry> {
    const existing = await this.get(requestId);
    if (existing) return existing;
    this.#write(rejectedEntry(requestId, cluster, reason, errors, nowMs));
    return (await this.get(requestId))!;
  }

  async update(requestId: string, mutate: (entry: LedgerEntry) => LedgerEntry | void): Promise<LedgerEntry> {
    for (;;) {
      const current = await this.get(requestId);
      if (!current) throw Object.assign(new Error(`request ${requestId} is not in the ledger`), { code: 'LEDGER_NOT_FOUND' });
      const working = structuredClone(current);
      const next = mutate(working) ?? working;
      // Yield once so concurrent updaters really interleave, as they do over the network.
      await Promise.resolve();
      const row = this.#rows.get(requestId)!;
      if (String(row.version) !== current.etag) continue;
      this.#write(next);
      return (await this.get(requestId))!;
    }
  }

  async listOpen(cluster?: string): Promise<LedgerEntry[]> {
    return (await this.#all()).filter((e) => !isFinal(e) && e.request && (cluster === undefined || e.record.cluster === cluster));
  }

  async #all(): Promise<LedgerEntry[]> {
    return Promise.all([...this.#rows.keys()].map(async (k) => (await this.get(k))!));
  }

  #write(entry: LedgerEntry): void {
    const { etag: _etag, ...body } = entry;
    const version = (this.#rows.get(entry.record.requestId)?.version ?? 0) + 1;
    this.#rows.set(entry.record.requestId, { version, json: JSON.stringify(body) });
  }
}
