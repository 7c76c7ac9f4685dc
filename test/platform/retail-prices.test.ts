import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TableClient } from '@azure/data-tables';
import type { PriceDocument } from '../../src/platform/prices.ts';
import { fetchRetailPrices, RetailPriceCache } from '../../src/platform/retail-prices.ts';

// --- A fake Retail Prices API ------------------------------------------------------------------

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;
let handler: Handler = (_req, res) => res.writeHead(404).end();
let requests: URL[] = [];
let server: Server;
let origin: string;
const PATH = '/api/retail/prices';

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', origin);
    requests.push(url);
    handler(req, res, url);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const json = (res: ServerResponse, body: unknown, status = 200) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

/** One meter as the API answers it, with the fields this module ignores too. */
function item(region: string, armSkuName: string, skuName: string, retailPrice: number | undefined, extra: Record<string, unknown> = {}) {
  return {
    currencyCode: 'USD',
    tierMinimumUnits: 0,
    ...(retailPrice === undefined ? {} : { retailPrice, unitPrice: retailPrice }),
    armRegionName: region,
    location: region,
    effectiveStartDate: '2024-01-01T00:00:00Z',
    meterId: randomBytes(8).toString('hex'),
    meterName: skuName,
    productId: 'DZH318Z0BQ4L',
    skuId: 'DZH318Z0BQ4L/00TG',
    productName: 'Virtual Machines FSv2 Series',
    skuName,
    serviceName: 'Virtual Machines',
    serviceId: 'DZH313Z7MMC8',
    serviceFamily: 'Compute',
    unitOfMeasure: '1 Hour',
    type: 'Consumption',
    isPrimaryMeterRegion: true,
    armSkuName,
    ...extra,
  };
}

const page = (items: unknown[], next: string | null) => ({
  BillingCurrency: 'USD',
  CustomerEntityId: 'Default',
  CustomerEntityType: 'Retail',
  Items: items,
  NextPageLink: next,
  Count: items.length,
});

const westeuropePage1 = [
  item('westeurope', 'Standard_F2s_v2', 'F2s v2', 0.0846),
  item('westeurope', 'Standard_F2s_v2', 'F2s v2 Spot', 0.0169),
  item('westeurope', 'Standard_F2s_v2', 'F2s v2', 0.1766, { productName: 'Virtual Machines FSv2 Series Windows' }),
  item('westeurope', 'Standard_F2s_v2', 'F2s v2 Spot', 0.0301, { productName: 'Virtual Machines FSv2 Series Windows' }),
  item('westeurope', 'Standard_F2s_v2', 'F2s v2 Low Priority', 0.0101),
  item('westeurope', 'Standard_F2s_v2', 'F2s v2', 0.05, { type: 'DevTestConsumption' }),
  item('westeurope', 'Standard_D4s_v5', 'D4s v5', 1100, { type: 'Reservation', unitOfMeasure: '1 Hour', reservationTerm: '1 Year' }),
  item('westeurope', 'Standard_D4s_v5', 'D4s v5', 0), // a zero meter: not the price while another one is not zero
  item('westeurope', 'Standard_D4s_v5', 'D4s v5', undefined), // no retailPrice: skipped and counted
  item('westeurope', 'Standard_F2s_v2', 'F2s v2', 0.001, { unitOfMeasure: '1/Month' }),
];
const westeuropePage2 = [
  item('westeurope', 'Standard_D4s_v5', 'D4s v5', 0.192),
  item('westeurope', 'Standard_D4s_v5', 'D4s v5 Spot', 0.0384),
  item('westeurope', 'Standard_F2s_v2', 'F2s v2', 0.09), // a second, dearer meter of the same price
  item('westeurope', 'Standard_NC6s_v3', 'NC6s v3 Spot', 0.6), // spot only: no entry
  item('westeurope', 'Standard_B1ls', 'B1ls', 0), // only zero meters: priced 0
  item('westeurope', 'Standard_B1ls', 'B1ls', 0),
  item('westeurope', 'Standard_E2s_v5', 'E2s v5', 0.126, { currencyCode: 'EUR' }), // another currency
  { armSkuName: 'Standard_X1', note: 'not a meter' }, // skipped and counted
];
const eastusPage = [
  item('eastus', 'Standard_F2s_v2', 'F2s v2', 0.0846),
  item('eastus', 'Standard_F2s_v2', 'F2s v2', 0.169, { productName: 'Virtual Machines FSv2 Series Windows' }),
  item('eastus', 'Standard_D4s_v5', 'D4s v5 Spot', 0.02),
  item('eastus', 'Standard_D4s_v5', 'D4s v5', 0.192),
];

/** Two pages for westeurope (the second by `$skip`), one for eastus, chosen by the `$filter`. */
const twoRegions: Handler = (_req, res, url) => {
  const filter = url.searchParams.get('$filter') ?? '';
  if (filter.includes("armRegionName eq 'westeurope'")) {
    if (url.searchParams.get('$skip') === '100') return json(res, page(westeuropePage2, null));
    const next = new URL(url);
    next.searchParams.set('$skip', '100');
    return json(res, page(westeuropePage1, next.href));
  }
  if (filter.includes("armRegionName eq 'eastus'")) return json(res, page(eastusPage, null));
  return json(res, page([], null));
};

const expected: PriceDocument = {
  currency: 'USD',
  prices: {
    eastus: { Standard_D4s_v5: { regular: 0.192, spot: 0.02 }, Standard_F2s_v2: { regular: 0.0846 } },
    westeurope: {
      Standard_B1ls: { regular: 0 },
      Standard_D4s_v5: { regular: 0.192, spot: 0.0384 },
      Standard_F2s_v2: { regular: 0.0846, spot: 0.0169 },
    },
  },
};

const warnings = () => {
  const seen: Array<{ message: string; fields: object | undefined }> = [];
  return { seen, logger: { warn: (message: string, fields?: object) => seen.push({ message, fields }) } };
};

describe('fetchRetailPrices', () => {
  it('builds the price document from every page of every region: Linux, hourly, pay-as-you-go, lowest non-zero, spot apart', async () => {
    requests = [];
    handler = twoRegions;
    const { seen, logger } = warnings();
    const doc = await fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope', 'EastUS', 'westeurope'], logger });
    expect(doc).toEqual(expected);
    // One filtered query per region (sorted, each once), plus westeurope's second page.
    expect(requests.map((r) => [r.pathname, r.searchParams.get('$filter'), r.searchParams.get('$skip')])).toEqual([
      [PATH, "serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq 'eastus'", null],
      [PATH, "serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq 'westeurope'", null],
      [PATH, "serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq 'westeurope'", '100'],
    ]);
    expect(requests[0]!.searchParams.get('api-version')).toBe('2023-01-01-preview');
    expect(requests[0]!.searchParams.get('currencyCode')).toBe("'USD'");
    // The two items without the fields that are used are counted, once.
    expect(seen).toEqual([{ message: expect.stringContaining('skipped'), fields: { skipped: 2 } }]);
  });

  it('asks for another currency when told, and uses the injected fetch', async () => {
    requests = [];
    handler = (_req, res, url) =>
      json(res, page([item('westeurope', 'Standard_F2s_v2', 'F2s v2', 0.08, { currencyCode: url.searchParams.get('currencyCode')?.slice(1, -1) })], null));
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const doc = await fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'], currency: 'EUR', fetch: counting });
    expect(doc).toEqual({ currency: 'EUR', prices: { westeurope: { Standard_F2s_v2: { regular: 0.08 } } } });
    expect(calls).toBe(1);
    expect(requests[0]!.searchParams.get('currencyCode')).toBe("'EUR'");
  });

  it('refuses a NextPageLink to another host, naming the host but not the query', async () => {
    requests = [];
    handler = (_req, res) => json(res, page([item('westeurope', 'Standard_F2s_v2', 'F2s v2', 0.08)], 'https://prices.example.net:8443/api/retail/prices?$skip=100&token=s3cret'));
    const error = await fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('prices.example.net:8443');
    expect((error as Error).message).not.toContain('s3cret');
    expect((error as Error).message).not.toContain('?');
    expect((error as { code?: string }).code).toBe('RETAIL_PRICES_UNAVAILABLE');
    expect(requests).toHaveLength(1); // the foreign link was never followed
  });

  it('throws on a non-2xx answer with the status and path, without the query', async () => {
    handler = (_req, res) => json(res, { error: 'boom' }, 500);
    const error = (await fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'] }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('500');
    expect(error.message).toContain(PATH);
    expect(error.message).not.toContain('filter');
    expect(error.message).not.toContain('Virtual Machines');
  });

  it('throws on a body that is not JSON, or has no Items', async () => {
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('<html>maintenance</html>');
    await expect(fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'] })).rejects.toThrow(/not JSON/);
    handler = (_req, res) => json(res, { Message: 'nope' });
    await expect(fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'] })).rejects.toThrow(/Items/);
  });

  it('gives up after maxPages pages of one region', async () => {
    requests = [];
    handler = (_req, res, url) => json(res, page([], url.href)); // a link to itself, forever
    await expect(fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'], maxPages: 3 })).rejects.toThrow(/more than 3 pages/);
    expect(requests).toHaveLength(3);
  });

  it('times out a page that does not come, and honours the caller’s signal', async () => {
    handler = () => {}; // never answers
    await expect(fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'], timeoutMs: 200 })).rejects.toThrow(/timed out after 200 ms/);
    const controller = new AbortController();
    const pending = fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'], signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toThrow(/cancelled/);
  });

  it('refuses a region or currency that would change the filter', async () => {
    await expect(fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ["westeurope' or serviceName eq 'x"] })).rejects.toThrow(/not an ARM region/);
    await expect(fetchRetailPrices({ baseUrl: `${origin}${PATH}`, regions: ['westeurope'], currency: "USD'" })).rejects.toThrow(/3-letter/);
  });
});

// --- The cache, on azurite ---------------------------------------------------------------------

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function freshTable(): TableClient {
  const letters = [...randomBytes(10)].map((b) => String.fromCharCode(97 + (b % 26))).join('');
  return TableClient.fromConnectionString(inject('storageConnectionString'), `rp${letters}`, { allowInsecureConnection: true });
}

const docA: PriceDocument = { currency: 'USD', prices: { westeurope: { Standard_F2s_v2: { regular: 0.0846, spot: 0.0169 } } } };
const docB: PriceDocument = { currency: 'USD', prices: { westeurope: { Standard_F2s_v2: { regular: 0.09 } } } };

/** A fetchPrices that answers from a script (a document, or an Error to throw) and counts its calls. */
function scripted(...answers: Array<PriceDocument | Error>) {
  const calls: string[][] = [];
  const fetchPrices = async (regions: string[]) => {
    calls.push(regions);
    const answer = answers[Math.min(calls.length, answers.length) - 1]!;
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { calls, fetchPrices };
}

describe('RetailPriceCache on azurite', () => {
  it('fetches when nothing is stored, stores it, serves it for refreshMs (also to a new instance), then fetches again', async () => {
    const table = freshTable(); // does not exist yet: created before the first write
    let t = 1_700_000_000_000;
    const now = () => t;
    const api = scripted(docA, docB);
    const cache = new RetailPriceCache({ table, now, fetchPrices: api.fetchPrices });

    expect(await cache.current(['westeurope', 'eastus'])).toEqual(docA);
    expect(api.calls).toEqual([['eastus', 'westeurope']]);
    const entity = await table.getEntity<Record<string, unknown>>('prices', 'retail');
    expect(entity.regions).toBe('eastus,westeurope');
    expect(Number(entity.fetchedAtMs)).toBe(t);

    t += DAY - 1;
    expect(await cache.current(['eastus', 'westeurope'])).toEqual(docA);
    expect(api.calls).toHaveLength(1);

    // A new process reads the stored document instead of asking the API.
    const other = scripted(docB);
    expect(await new RetailPriceCache({ table, now, fetchPrices: other.fetchPrices }).current(['westeurope', 'eastus'])).toEqual(docA);
    expect(other.calls).toHaveLength(0);

    t += 1;
    expect(await cache.current(['westeurope', 'eastus'])).toEqual(docB);
    expect(api.calls).toHaveLength(2);
    expect(await new RetailPriceCache({ table, now, fetchPrices: other.fetchPrices }).current(['eastus', 'westeurope'])).toEqual(docB);
    expect(other.calls).toHaveLength(0);
  });

  it('fetches again at once when the regions differ from the stored ones', async () => {
    const table = freshTable();
    const t = 1_700_000_000_000;
    const api = scripted(docA, docB);
    const cache = new RetailPriceCache({ table, now: () => t, fetchPrices: api.fetchPrices });
    expect(await cache.current(['westeurope'])).toEqual(docA);
    expect(await cache.current(['westeurope', 'northeurope'])).toEqual(docB);
    expect(api.calls).toEqual([['westeurope'], ['northeurope', 'westeurope']]);
  });

  it('keeps the stored document, however old, when a refresh fails; warns once; retries after an hour, not before', async () => {
    const table = freshTable();
    let t = 1_700_000_000_000;
    const now = () => t;
    const { seen, logger } = warnings();
    const failure = new Error('Retail Prices answered 503 for /api/retail/prices (page 1)');
    const api = scripted(docA, failure, failure, docB);
    const cache = new RetailPriceCache({ table, now, fetchPrices: api.fetchPrices, logger, refreshMs: 2 * HOUR });

    expect(await cache.current(['westeurope'])).toEqual(docA);
    t += 3 * HOUR;
    expect(await cache.current(['westeurope'])).toEqual(docA);
    expect(api.calls).toHaveLength(2);
    expect(seen).toEqual([{ message: expect.stringContaining('refresh failed'), fields: { error: failure.message, fetchedAtMs: 1_700_000_000_000 } }]);
    expect(JSON.stringify(seen)).not.toContain('    at ');

    // Within the hour after the failure: no new attempt, no new warning.
    t += HOUR - 1;
    expect(await cache.current(['westeurope'])).toEqual(docA);
    expect(api.calls).toHaveLength(2);
    expect(seen).toHaveLength(1);

    t += 1;
    expect(await cache.current(['westeurope'])).toEqual(docA);
    expect(api.calls).toHaveLength(3);
    expect(seen).toHaveLength(2);

    t += HOUR;
    expect(await cache.current(['westeurope'])).toEqual(docB);
    expect(api.calls).toHaveLength(4);
  });

  it('answers undefined when nothing is stored and the fetch fails, with one warning', async () => {
    const table = freshTable();
    const { seen, logger } = warnings();
    const api = scripted(new Error('fetch failed'));
    const cache = new RetailPriceCache({ table, now: () => 1_700_000_000_000, fetchPrices: api.fetchPrices, logger });
    expect(await cache.current(['westeurope'])).toBeUndefined();
    expect(await cache.current(['westeurope'])).toBeUndefined();
    expect(api.calls).toHaveLength(1);
    expect(seen).toEqual([{ message: expect.stringContaining('no stored prices'), fields: { error: 'fetch failed' } }]);
  });

  it('shares one fetch among concurrent calls', async () => {
    const table = freshTable();
    let calls = 0;
    let release: (doc: PriceDocument) => void = () => {};
    const fetchPrices = (_regions: string[]) => {
      calls++;
      return new Promise<PriceDocument>((resolve) => (release = resolve));
    };
    const cache = new RetailPriceCache({ table, now: () => 1_700_000_000_000, fetchPrices });
    const pending = Array.from({ length: 5 }, () => cache.current(['westeurope']));
    await new Promise((resolve) => setTimeout(resolve, 200)); // let every call reach the fetch
    release(docA);
    expect(await Promise.all(pending)).toEqual(Array.from({ length: 5 }, () => docA));
    expect(calls).toBe(1);
  });

  it('treats an invalid document from fetchPrices as a failure and stores nothing', async () => {
    const table = freshTable();
    const { seen, logger } = warnings();
    const bad = { currency: 'usd', prices: {} } as unknown as PriceDocument;
    const api = scripted(bad);
    const cache = new RetailPriceCache({ table, now: () => 1_700_000_000_000, fetchPrices: api.fetchPrices, logger });
    expect(await cache.current(['westeurope'])).toBeUndefined();
    expect(seen).toHaveLength(1);
    await expect(table.getEntity('prices', 'retail')).rejects.toMatchObject({ statusCode: 404 });
  });
});
