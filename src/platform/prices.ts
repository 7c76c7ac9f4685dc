/**
 * The price table (docs/api.md, Cost): what one hour of a machine type costs in a region, regular
 * and spot, in one currency. A local file (`PRICES_FILE`) for `npm start` and tests; on Azure the
 * Retail Prices API may refresh it daily (`retail-prices.ts`), and its answer is used only where it
 * has a price. Pure: no I/O here.
 *
 * A request's cost is node-seconds × the hourly price / 3600, each node priced by its own machine
 * type, region and spot-ness (see `costOf` in `src/ledger/cost.ts`).
 */
import { z } from 'zod';
import { type DocumentResult, parseJsonDocument } from './json-document.ts';

const hourly = z.number({ error: 'must be a price per hour ≥ 0' }).min(0, 'must be a price per hour ≥ 0').max(100_000, 'must be ≤ 100000 per hour');

export const MachinePrice = z
  .object({
    /** Pay-as-you-go price of one hour. */
    regular: hourly,
    /** Spot price of one hour; absent = spot nodes of this type are priced as regular. */
    spot: hourly.optional(),
  })
  .strict();
export type MachinePrice = z.infer<typeof MachinePrice>;

export const PriceDocument = z
  .object({
    /** ISO 4217 code, e.g. `USD`: every price and budget is in it. */
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be a 3-letter currency code such as USD'),
    /** Per region (`westeurope`, or `*` for any region not listed), per machine type (case-insensitive). */
    prices: z.record(z.string().min(1, 'must name a region or be *'), z.record(z.string().min(1, 'must name a machine type'), MachinePrice)),
  })
  .strict();
export type PriceDocument = z.infer<typeof PriceDocument>;

/** What a node is priced by. */
export interface Priced {
  machineType?: string | null | undefined;
  region?: string | null | undefined;
  spot?: boolean | undefined;
}

/** The price table as the meters use it. */
export interface Prices {
  readonly currency: string;
  /** Price of one hour of this node, or null when the table has none for its machine type and region. */
  hourly(node: Priced): number | null;
}

/** `prices.westeurope.Standard_F2s_v2.spot: must be a price per hour ≥ 0`, or the value. */
export function parsePriceDocument(text: string): DocumentResult<PriceDocument> {
  return parseJsonDocument(PriceDocument, text);
}

const key = (region: string, machineType: string) => `${region.toLowerCase()}\u0000${machineType.toLowerCase()}`;

/**
 * The table over one or more documents, the first that prices a node winning (the Retail Prices
 * cache before the local file). Documents in another currency than the first are ignored.
 */
export function pricesOf(...documents: (PriceDocument | undefined)[]): Prices | undefined {
  const docs = documents.filter((d): d is PriceDocument => d !== undefined);
  if (docs.length === 0) return undefined;
  const currency = docs[0]!.currency;
  const table = new Map<string, MachinePrice>();
  for (const doc of [...docs].reverse()) {
    if (doc.currency !== currency) continue;
    for (const [region, types] of Object.entries(doc.prices)) for (const [type, price] of Object.entries(types)) table.set(key(region, type), price);
  }
  return {
    currency,
    hourly(node) {
      if (!node.machineType) return null;
      const price = (node.region ? table.get(key(node.region, node.machineType)) : undefined) ?? table.get(key('*', node.machineType));
      if (!price) return null;
      return node.spot ? (price.spot ?? price.regular) : price.regular;
    },
  };
}
