/**
 * The optional daily refresh of the price table (`prices.ts`) from the public Azure Retail Prices
 * API, so that costs follow Azure's list prices without anyone editing `PRICES_FILE`.
 *
 * {@link fetchRetailPrices} asks once per region for the pay-as-you-go Virtual Machines meters,
 * follows `NextPageLink` (same origin only), and keeps Linux, hourly, non-Low-Priority meters: a
 * `… Spot` SKU is the spot price of its machine type, any other the regular one; where several
 * meters price the same thing the lowest non-zero one wins. A machine type with a spot price but no
 * regular one is left out (the table needs a regular price).
 *
 * {@link RetailPriceCache} keeps the answer in one Table entity (PartitionKey `prices`, RowKey
 * `retail`) shared by every instance, refreshes it when older than a day or when the regions
 * change, and falls back to the stored document (however old) when the API fails: a pricing outage
 * must never stop scaling, and the API is asked at most once a day (once an hour after a failure).
 */
import type { TableClient } from '@azure/data-tables';
import { z } from 'zod';
import { ScalerError } from './errors.ts';
import { PriceDocument } from './prices.ts';
import { statusOf } from './storage.ts';
import { packJson, unpackJson } from './table-json.ts';

export const RETAIL_PRICES_URL = 'https://prices.azure.com/api/retail/prices';
const API_VERSION = '2023-01-01-preview';
const HOUR_MS = 60 * 60_000;

export class RetailPricesError extends ScalerError<'RETAIL_PRICES_UNAVAILABLE'> {
  override name = 'RetailPricesError';
  constructor(message: string, options?: ErrorOptions) {
    super('RETAIL_PRICES_UNAVAILABLE', message, options);
  }
}

export interface RetailPricesLogger {
  warn(message: string, fields?: object): void;
}

export interface FetchRetailPricesOptions {
  /** The API's address without a query; default {@link RETAIL_PRICES_URL}. */
  baseUrl?: string;
  /** ARM region names (`westeurope`); one query each. */
  regions: string[];
  /** ISO 4217 code; default `USD`. */
  currency?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Pages per region before giving up; default 200 (the API answers 100 items a page). */
  maxPages?: number;
  /** Per page, request and body; default 30 s. */
  timeoutMs?: number;
  /** Told how many items did not have the expected shape and were skipped. */
  logger?: RetailPricesLogger;
}

// Lenient: the API adds fields over time; only what is read below is required.
const RetailItem = z.looseObject({
  currencyCode: z.string(),
  retailPrice: z.number().min(0).max(100_000),
  armRegionName: z.string(),
  armSkuName: z.string().min(1),
  skuName: z.string(),
  productName: z.string(),
  type: z.string(),
  unitOfMeasure: z.string(),
});
type RetailItem = z.infer<typeof RetailItem>;

const RetailPage = z.looseObject({
  Items: z.array(z.unknown()),
  NextPageLink: z.string().nullish(),
});

const REGION = /^[a-z0-9]{1,64}$/;
const CURRENCY = /^[A-Z]{3}$/;

/** Regions as the table and the filter use them: lower case, each once, sorted. */
export function normalizeRegions(regions: readonly string[]): string[] {
  return [...new Set(regions.map((r) => r.trim().toLowerCase()).filter((r) => r !== ''))].sort();
}

/** The Retail Prices API's answer for `regions` as a price document (hourly, Linux, pay-as-you-go). */
export async function fetchRetailPrices(options: FetchRetailPricesOptions): Promise<PriceDocument> {
  const baseUrl = options.baseUrl ?? RETAIL_PRICES_URL;
  const currency = options.currency ?? 'USD';
  const doFetch = options.fetch ?? globalThis.fetch;
  const maxPages = options.maxPages ?? 200;
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!CURRENCY.test(currency)) throw new RetailPricesError(`currency must be a 3-letter code such as USD, not ${JSON.stringify(currency.slice(0, 10))}`);
  const regions = normalizeRegions(options.regions);
  for (const region of regions) if (!REGION.test(region)) throw new RetailPricesError(`region ${JSON.stringify(region.slice(0, 64))} is not an ARM region name`);
  const origin = new URL(baseUrl).origin;

  const prices: PriceDocument['prices'] = {};
  let skipped = 0;
  for (const region of regions) {
    const first = new URL(baseUrl);
    first.searchParams.set('api-version', API_VERSION);
    first.searchParams.set('currencyCode', `'${currency}'`);
    first.searchParams.set('$filter', `serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq '${region}'`);
    const best = new Map<string, { regular?: number; spot?: number }>();
    let url: URL | undefined = first;
    for (let page = 1; url; page++) {
      if (page > maxPages) throw new RetailPricesError(`Retail Prices for ${region}: more than ${maxPages} pages from ${first.pathname}`);
      const body = await getPage(doFetch, url, page, timeoutMs, options.signal);
      for (const raw of body.Items) {
        const item = RetailItem.safeParse(raw);
        if (!item.success) {
          skipped++;
          continue;
        }
        const meter = meterOf(item.data, region, currency);
        if (!meter) continue;
        const prior = best.get(meter.machineType) ?? {};
        prior[meter.kind] = lower(prior[meter.kind], item.data.retailPrice);
        best.set(meter.machineType, prior);
      }
      url = body.NextPageLink ? nextPage(body.NextPageLink, url, origin) : undefined;
    }
    const types: Record<string, { regular: number; spot?: number }> = {};
    for (const [machineType, p] of [...best].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (p.regular === undefined) continue;
      types[machineType] = p.spot === undefined ? { regular: p.regular } : { regular: p.regular, spot: p.spot };
    }
    if (Object.keys(types).length > 0) prices[region] = types;
  }
  if (skipped > 0) options.logger?.warn('Retail Prices: skipped items without the expected fields', { skipped });
  return { currency, prices };
}

/** Which price an item is, or undefined when it is not a Linux pay-as-you-go hourly meter of `region`. */
function meterOf(item: RetailItem, region: string, currency: string): { machineType: string; kind: 'regular' | 'spot' } | undefined {
  if (item.type !== 'Consumption' || item.unitOfMeasure !== '1 Hour') return undefined;
  if (item.currencyCode !== currency || item.armRegionName.toLowerCase() !== region) return undefined;
  if (item.productName.trimEnd().endsWith('Windows')) return undefined;
  const sku = item.skuName.trimEnd();
  if (sku.endsWith('Low Priority')) return undefined;
  return { machineType: item.armSkuName, kind: sku.endsWith(' Spot') ? 'spot' : 'regular' };
}

/** The lowest non-zero of two prices; 0 only when both are 0. */
function lower(prior: number | undefined, price: number): number {
  if (prior === undefined) return price;
  if (prior === 0) return price;
  if (price === 0) return prior;
  return Math.min(prior, price);
}

function nextPage(link: string, current: URL, origin: string): URL {
  let next: URL;
  try {
    next = new URL(link, current);
  } catch {
    throw new RetailPricesError(`Retail Prices NextPageLink from ${current.pathname} is not a URL`);
  }
  if (next.origin !== origin) throw new RetailPricesError(`Retail Prices NextPageLink points to another host (${next.host}); refused`);
  return next;
}

async function getPage(doFetch: typeof fetch, url: URL, page: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<z.infer<typeof RetailPage>> {
  const where = `${url.pathname} (page ${page})`;
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let text: string;
  let status: number;
  try {
    const response = await doFetch(url, { headers: { accept: 'application/json' }, signal: combined });
    status = response.status;
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      throw new RetailPricesError(`Retail Prices answered ${status} for ${where}`);
    }
    text = await response.text();
  } catch (error) {
    if (error instanceof RetailPricesError) throw error;
    if (signal?.aborted) throw new RetailPricesError(`Retail Prices request for ${where} was cancelled`, { cause: signal.reason });
    if (timeout.aborted) throw new RetailPricesError(`Retail Prices request for ${where} timed out after ${timeoutMs} ms`);
    throw new RetailPricesError(`Retail Prices request for ${where} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RetailPricesError(`Retail Prices answered ${status} for ${where} with a body that is not JSON`);
  }
  const parsed = RetailPage.safeParse(json);
  if (!parsed.success) throw new RetailPricesError(`Retail Prices answered ${status} for ${where} without an Items list`);
  return parsed.data;
}

export interface RetailPriceCacheOptions {
  table: TableClient;
  now?: () => number;
  /** How old the stored document may be; default 24 h. */
  refreshMs?: number;
  /** After a failed fetch, how long until the next attempt; default 1 h (never more often than refreshMs). */
  retryMs?: number;
  /** Usually `(regions) => fetchRetailPrices({ regions })`. */
  fetchPrices: (regions: string[]) => Promise<PriceDocument>;
  logger?: RetailPricesLogger;
}

interface Stored {
  document: PriceDocument;
  fetchedAtMs: number;
  regions: string;
}

const PARTITION = 'prices';
const ROW = 'retail';
/** A stored time this far in the future is believed (clock skew between instances), further is not. */
const SKEW_MS = 5 * 60_000;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** A Table property read back as a number (`Int64` comes back as `{ value, type }`). */
function numberOf(value: unknown): number {
  if (value !== null && typeof value === 'object' && 'value' in value) return Number((value as { value: unknown }).value);
  return Number(value);
}

/** The Retail Prices document, stored in one Table entity and refreshed at most once per `refreshMs`. */
export class RetailPriceCache {
  readonly #table: TableClient;
  readonly #now: () => number;
  readonly #refreshMs: number;
  readonly #retryMs: number;
  readonly #fetchPrices: (regions: string[]) => Promise<PriceDocument>;
  readonly #logger: RetailPricesLogger | undefined;
  /** The last document read or fetched by this process. */
  #memory: Stored | undefined;
  #lastFailureMs: number | undefined;
  #tableReady: Promise<void> | undefined;
  readonly #inFlight = new Map<string, Promise<PriceDocument | undefined>>();

  constructor(options: RetailPriceCacheOptions) {
    this.#table = options.table;
    this.#now = options.now ?? Date.now;
    this.#refreshMs = options.refreshMs ?? 24 * HOUR_MS;
    this.#retryMs = Math.min(options.retryMs ?? HOUR_MS, this.#refreshMs);
    this.#fetchPrices = options.fetchPrices;
    this.#logger = options.logger;
  }

  /**
   * The document for `regions`: the stored one while fresh, else a new one from the API, else (the
   * API failing) the stored one however old, else undefined. Never throws.
   */
  async current(regions: string[]): Promise<PriceDocument | undefined> {
    const wanted = normalizeRegions(regions);
    const key = wanted.join(',');
    if (this.#memory && this.#fresh(this.#memory, key)) return this.#memory.document;
    let pending = this.#inFlight.get(key);
    if (!pending) {
      pending = this.#refresh(wanted, key).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  #fresh(stored: Stored, key: string): boolean {
    const age = this.#now() - stored.fetchedAtMs;
    return stored.regions === key && age >= -SKEW_MS && age < this.#refreshMs;
  }

  async #refresh(regions: string[], key: string): Promise<PriceDocument | undefined> {
    // Another instance may have refreshed it since this one last looked.
    const stored = (await this.#read()) ?? this.#memory;
    if (stored) this.#memory = stored;
    if (stored && this.#fresh(stored, key)) return stored.document;
    if (this.#lastFailureMs !== undefined && this.#now() - this.#lastFailureMs < this.#retryMs) return stored?.document;

    let document: PriceDocument;
    try {
      const parsed = PriceDocument.safeParse(await this.#fetchPrices(regions));
      if (!parsed.success) throw new RetailPricesError(`Retail Prices gave an invalid price document: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      document = parsed.data;
    } catch (error) {
      this.#lastFailureMs = this.#now();
      this.#logger?.warn(stored ? 'Retail Prices refresh failed; using the stored prices' : 'Retail Prices refresh failed; no stored prices', {
        error: messageOf(error),
        ...(stored ? { fetchedAtMs: stored.fetchedAtMs } : {}),
      });
      return stored?.document;
    }
    this.#lastFailureMs = undefined;
    const fresh: Stored = { document, fetchedAtMs: this.#now(), regions: key };
    this.#memory = fresh;
    await this.#write(fresh);
    return document;
  }

  async #read(): Promise<Stored | undefined> {
    let entity: Record<string, unknown>;
    try {
      entity = await this.#table.getEntity<Record<string, unknown>>(PARTITION, ROW);
    } catch (error) {
      if (statusOf(error) !== 404) this.#logger?.warn('Retail Prices: cannot read the stored prices', { error: messageOf(error) });
      return undefined;
    }
    try {
      const document = PriceDocument.parse(unpackJson(entity));
      const fetchedAtMs = numberOf(entity.fetchedAtMs);
      if (!Number.isFinite(fetchedAtMs)) throw new Error('fetchedAtMs is not a number');
      return { document, fetchedAtMs, regions: typeof entity.regions === 'string' ? entity.regions : '' };
    } catch (error) {
      this.#logger?.warn('Retail Prices: the stored prices are unreadable; ignoring them', { error: messageOf(error) });
      return undefined;
    }
  }

  async #write(stored: Stored): Promise<void> {
    try {
      await this.#ensureTable();
      await this.#table.upsertEntity({ partitionKey: PARTITION, rowKey: ROW, ...packJson(stored.document), fetchedAtMs: stored.fetchedAtMs, regions: stored.regions }, 'Replace');
    } catch (error) {
      this.#logger?.warn('Retail Prices: cannot store the prices; this process keeps them in memory', { error: messageOf(error) });
    }
  }

  #ensureTable(): Promise<void> {
    return (this.#tableReady ??= this.#table.createTable().then(
      () => {},
      (error: unknown) => {
        if (statusOf(error) === 409) return;
        this.#tableReady = undefined;
        throw error;
      },
    ));
  }
}
