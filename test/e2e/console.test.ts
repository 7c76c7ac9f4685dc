/**
 * The operator console in a real headless Chromium (Debian's `chromium`, driven by puppeteer-core)
 * against `npm start`: a request submitted through the API appears in the requests view and reaches
 * `fulfilled`, its page shows demands, nodes and timeline, the bucket bars move, and scale-out is
 * paused and resumed from the page. Screenshots of every view are written to
 * `test-artifacts/console/` (and to `docs/console/` with UPDATE_DOCS_SCREENSHOTS=1, with the README's
 * docs/console.png). The trends view's metrics panel is checked against /api/metrics read by a real
 * Prometheus parser.
 *
 * Without chromium the file prints one line and skips.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'puppeteer-core';
import { root, startScaler, type RunningScaler } from './harness.ts';
import { consoleFilePaths } from '../../src/console/page.ts';
import { parsePrometheus, prometheusParserMissing, sampleSum } from '../helpers/prometheus.ts';

// Functions passed to page.evaluate/waitForFunction run in the browser, where these exist; the test's
// own types are Node's (no DOM lib), so they are declared for this file only.
declare function getComputedStyle(el: never): { backgroundColor: string };
declare const document: {
  body: unknown;
  querySelector(s: string): { textContent: string | null; getAttribute(n: string): string | null } | null;
  querySelectorAll(s: string): { length: number };
};

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`console browser test skipped: no chromium at ${CHROMIUM} (Debian: apt-get install chromium)`);

const ARTIFACTS = join(root, 'test-artifacts', 'console');
const DOCS = join(root, 'docs', 'console');

describe.skipIf(!haveChromium)('operator console in a real browser', () => {
  let host: RunningScaler;
  let browser: Browser;
  const problems: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const [started, puppeteer] = await Promise.all([startScaler({ storageConnectionString: inject('storageConnectionString') }), import('puppeteer-core')]);
    host = started;
    browser = await puppeteer.default.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in CI: no sandbox; small /dev/shm in containers.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--force-prefers-reduced-motion'],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await host?.stop();
  }, 30_000);

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) as `${string}.png`, fullPage: true });
    if (process.env.UPDATE_DOCS_SCREENSHOTS === '1') {
      mkdirSync(DOCS, { recursive: true });
      await page.screenshot({ path: join(DOCS, `${name}.png`) as `${string}.png`, fullPage: true });
      // The README's picture: the clusters view, as the viewport shows it
      if (name === 'clusters') await page.screenshot({ path: join(root, 'docs', 'console.png') });
    }
  }

  /** The `data-used` of a bucket's bar in the clusters view. */
  const usedOf = (page: Page, bucket: string) => page.$eval(`[data-bucket="${bucket}"]`, (el) => Number(el.getAttribute('data-used')));

  it('answers 401 without the key and never puts the key in the page or its assets', async () => {
    // Act
    const anonymous = await fetch(`${host.base}/console`);
    const anonymousList = await fetch(`${host.base}/scale-requests`);
    const keyed = await fetch(`${host.base}/console?code=${encodeURIComponent(host.key)}`);
    const html = await keyed.text();
    // Assess
    expect(anonymous.status).toBe(401);
    expect(anonymousList.status).toBe(401);
    expect(keyed.status).toBe(200);
    expect(keyed.headers.get('content-type')).toMatch(/^text\/html/);
    expect(keyed.headers.get('content-security-policy')).toMatch(/default-src 'none'.*script-src 'sha256-/);
    expect(keyed.headers.get('referrer-policy')).toBe('no-referrer');
    expect(html).toContain('<title>Scaler console</title>');
    expect(html).not.toContain(host.key);
    expect(html).not.toMatch(/https?:\/\/(?!github\.com\/leeoniya)/); // no CDN, no outside address
    for (const file of Object.values(consoleFilePaths())) expect(readFileSync(file, 'utf8'), file).not.toContain(host.key);
  });

  it('shows a submitted request reach fulfilled, its page, the bucket bars move, and pauses and resumes scale-out', async () => {
    const page = await browser.newPage();
    page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.setViewport({ width: 1280, height: 800 });

    // Clusters, before anything was asked for
    await page.goto(`${host.base}/console?code=${encodeURIComponent(host.key)}&refresh=1#/clusters`, { waitUntil: 'load' });
    const bucket = 'ondemand/Standard_F32s_v2';
    await page.waitForSelector(`[data-bucket="${bucket}"]`, { timeout: 20_000 });
    const paint = (await page.evaluate(`Object.fromEntries(performance.getEntriesByType('paint').map((e) => [e.name, Math.round(e.startTime)]))`)) as Record<string, number>;
    const usedBefore = await usedOf(page, bucket);
    const html = await fetch(`${host.base}/console?code=${encodeURIComponent(host.key)}`, { headers: { 'accept-encoding': 'gzip' } });
    const gzipBytes = Number(html.headers.get('content-length'));
    console.log(
      JSON.stringify({
        console: {
          htmlBytes: (await (await fetch(`${host.base}/console?code=${encodeURIComponent(host.key)}`)).arrayBuffer()).byteLength,
          gzipBytes,
          firstPaintMs: paint['first-paint'],
          firstContentfulPaintMs: paint['first-contentful-paint'],
        },
      }),
    );

    // Act: a request through the API (and a gang, and one that can never be placed, for the pictures)
    const request = {
      requestId: 'console-e2e-1',
      cluster: 'hpc',
      demands: [{ nodearray: 'ondemand', count: 2, machineTypes: ['Standard_F32s_v2'], jobId: '4711' }],
      lease: { seconds: 3600 },
    };
    expect((await host.api('/scale-requests', { method: 'POST', body: JSON.stringify(request) })).status).toBe(202);
    await host.api('/scale-requests', {
      method: 'POST',
      body: JSON.stringify({ requestId: 'console-e2e-gang', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 4, colocated: true, jobId: '4712' }] }),
    });
    await host.api('/scale-requests', {
      method: 'POST',
      body: JSON.stringify({ requestId: 'console-e2e-too-big', cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 6, colocated: true, jobId: '4713' }] }),
    });

    // Requests view (by keyboard): the row appears and reaches fulfilled
    await page.keyboard.press('2');
    await page.waitForSelector('tr[data-request-id="console-e2e-1"]', { timeout: 20_000 });
    await page.waitForSelector('tr[data-request-id="console-e2e-1"] [data-state="fulfilled"]', { timeout: 45_000 });
    expect(await page.$eval('tr[data-request-id="console-e2e-1"] [data-lifecycle]', (el) => el.textContent)).toMatch(/^lease in (59|60) min/);
    await page.waitForSelector('tr[data-request-id="console-e2e-gang"] [data-state="fulfilled"]', { timeout: 45_000 });
    await page.waitForSelector('tr[data-request-id="console-e2e-too-big"] [data-state="rejected"]', { timeout: 20_000 });
    expect(await page.$eval('tr[data-request-id="console-e2e-1"] [data-ready]', (el) => el.getAttribute('data-ready'))).toBe('2/2');
    await shot(page, 'requests');

    // Filters and search: fulfilled only, then by job id
    await page.select('#f-state', 'rejected');
    await page.waitForFunction(() => !document.querySelector('tr[data-request-id="console-e2e-1"]') && !!document.querySelector('tr[data-request-id="console-e2e-too-big"]'), {
      timeout: 10_000,
    });
    await page.select('#f-state', '');
    await page.keyboard.press('Escape');
    await page.focus('main');
    await page.keyboard.press('/');
    await page.keyboard.type('4712');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-request-id]').length === 1 && !!document.querySelector('tr[data-request-id="console-e2e-gang"]'), {
      timeout: 20_000,
    });
    await page.$eval('#f-q', (el) => ((el as unknown as { value: string }).value = ''));
    await page.click('form.filters button[type="submit"]');

    // The request's page: demands, nodes and a timeline that ends fulfilled
    await page.waitForSelector('a[href="#/requests/console-e2e-1"]');
    await page.click('a[href="#/requests/console-e2e-1"]');
    await page.waitForSelector('#request-state [data-state="fulfilled"]', { timeout: 20_000 });
    expect(await page.$$eval('tr[data-node]', (rows) => rows.length)).toBe(2);
    expect(await page.$eval('#request-lease', (el) => el.textContent)).toMatch(/^3600 s, expires .* \(in (59|60) min/);
    expect(await page.$eval('tr[data-demand="0"]', (el) => el.textContent)).toContain('4711');
    // Its cost (npm start prices the simulator's machine types): the page's figure is the record's, read
    // right after it; the nodes still run, so the record may have grown by a refresh or two since.
    await page.waitForSelector('#request-cost [data-amount]', { timeout: 10_000 });
    const costText = await page.$eval('#request-cost', (el) => el.textContent);
    const record = (await (await host.api('/scale-requests/console-e2e-1?cost=true')).json()) as {
      cost: { currency: string; amount: number; nodeSeconds: number; unpriced: string[] };
      nodes: { name: string; startedAt?: string; endedAt?: string }[];
    };
    const shown = /^(\d+\.\d{4}) USD for (\d+\.\d{2}) node-hours, as of \S/.exec(costText ?? '');
    expect(shown, costText ?? '').not.toBeNull();
    expect(record.cost).toMatchObject({ currency: 'USD', unpriced: [] });
    expect(record.cost.amount).toBeGreaterThan(0);
    const [shownAmount, shownHours] = [Number(shown![1]), Number(shown![2])];
    expect(shownAmount).toBeLessThanOrEqual(record.cost.amount + 0.00005);
    expect(record.cost.amount - shownAmount).toBeLessThan(0.01); // 2 × Standard_F32s_v2 at 1.52 USD/h: 0.01 is about 12 s
    expect(Math.abs(record.cost.nodeSeconds / 3600 - shownHours)).toBeLessThanOrEqual(0.01 + 12 / 3600);
    expect(await page.$('#request-cost [data-unpriced]')).toBeNull();
    // Each node's start, as the record has it
    const started = await page.$$eval('tr[data-node]', (rows) =>
      rows.map((r) => [r.getAttribute('data-node'), r.querySelector('[data-started]')?.getAttribute('datetime') ?? null]),
    );
    expect(Object.fromEntries(started)).toEqual(Object.fromEntries(record.nodes.map((n) => [n.name, n.startedAt ?? null])));
    expect(record.nodes.every((n) => typeof n.startedAt === 'string' && n.endedAt === undefined)).toBe(true);
    const timeline = await page.$$eval('[data-timeline] [data-state]', (els) => els.map((e) => e.getAttribute('data-state')));
    expect(timeline[0]).toBe('queued');
    expect(timeline.at(-1)).toBe('fulfilled');
    await shot(page, 'request');

    // Clusters: the bucket's bar now counts the two nodes (once the next snapshot has them)
    await page.keyboard.press('1');
    await page.waitForFunction(
      (b, before) => Number(document.querySelector(`[data-bucket="${b}"]`)?.getAttribute('data-used')) === before + 2,
      { timeout: 30_000 },
      bucket,
      usedBefore,
    );
    await page.waitForFunction(() => !!document.querySelector('[data-bucket="mpi/Standard_HB120rs_v3"] [data-group]'), { timeout: 30_000 });
    // A capacity failure CycleCloud reports for a bucket shows as a backoff with its time left and reason
    expect(
      (await host.sim$('/__sim/capacity-failure', { method: 'POST', body: JSON.stringify({ cluster: 'hpc', nodearray: 'ondemand', machineType: 'Standard_HC44rs' }) })).status,
    ).toBeLessThan(300);
    await page.waitForSelector('[data-bucket="ondemand/Standard_HC44rs"] [data-backoff]', { timeout: 30_000 });
    expect(await page.$eval('[data-bucket="ondemand/Standard_HC44rs"] [data-backoff]', (el) => el.textContent)).toMatch(/^Backing off for \d+ (s|min)/);
    // Tenants: no document on npm start, so every node the scaler made is the default tenant's
    await page.waitForSelector('[data-tenants] tr[data-tenant="default"][data-cluster="hpc"]', { timeout: 20_000 });
    const tenants = (await (await host.api('/tenants')).json()) as { tenants: { name: string; usage: Record<string, { nodes: number }> }[] };
    const defaultNodes = tenants.tenants.find((t) => t.name === 'default')!.usage.hpc!.nodes;
    expect(defaultNodes).toBeGreaterThanOrEqual(6);
    await page.waitForFunction(
      (n: number) => Number(document.querySelector('tr[data-tenant="default"][data-cluster="hpc"] [data-nodes]')?.getAttribute('data-nodes')) >= n,
      { timeout: 20_000 },
      6,
    );
    // Its cost today and this month (the cost meter, in the price table's currency) and budget (none
    // without a tenants document): the cells say what /api/tenants says. The meter adds at each
    // snapshot, so both are read again until they agree (the page refreshes every second).
    type Spend = { currency: string | null; tenants: { name: string; costToday: number | null; costMonth: number | null; budget: unknown }[] };
    const cellsOf = () => page.$$eval('tr[data-tenant="default"] [data-cost]', (tds) => tds.map((td) => [td.getAttribute('data-cost'), td.textContent]));
    let spend: Spend | undefined;
    let cells: string[][] = [];
    let want: Record<string, string> = {};
    for (const until = Date.now() + 20_000; Date.now() < until; await new Promise((r) => setTimeout(r, 300))) {
      cells = (await cellsOf()) as string[][];
      spend = (await (await host.api('/tenants')).json()) as Spend;
      const d = spend.tenants.find((t) => t.name === 'default')!;
      const money = (v: number | null) => (v === null ? '—' : `${v.toFixed(2)} ${spend!.currency}`);
      want = { today: money(d.costToday), month: money(d.costMonth), budget: '—' };
      if (JSON.stringify(Object.fromEntries(cells)) === JSON.stringify(want)) break;
    }
    expect(Object.fromEntries(cells)).toEqual(want);
    expect(spend!.currency).toBe('USD');
    const defaultSpend = spend!.tenants.find((t) => t.name === 'default')!;
    expect(defaultSpend.budget).toBeNull();
    expect(defaultSpend.costToday).toEqual(expect.any(Number));
    expect(defaultSpend.costMonth!).toBeGreaterThanOrEqual(defaultSpend.costToday!);
    await shot(page, 'clusters');

    // Health: pause from the page, see it through the API, resume
    await page.keyboard.press('3');
    await page.waitForSelector('#pause-switch[aria-checked="false"]:not([disabled])', { timeout: 20_000 });
    await page.click('#pause-switch');
    await page.waitForSelector('#pause-switch[aria-checked="true"]', { timeout: 10_000 });
    expect(await (await host.api('/scale-out')).json()).toEqual({ paused: true });
    await page.waitForFunction(() => document.querySelector('[data-card="rejected"] dd')?.textContent !== undefined, { timeout: 10_000 });
    await shot(page, 'health');
    await page.focus('#pause-switch');
    await page.keyboard.press('Space');
    await page.waitForSelector('#pause-switch[aria-checked="false"]', { timeout: 10_000 });
    expect(await (await host.api('/scale-out')).json()).toEqual({ paused: false });

    // Trends: the requests and nodes made above, drawn
    await page.keyboard.press('4');
    await page.waitForSelector('#f-hours');
    await page.select('#f-hours', '1');
    await page.waitForFunction(`Number(document.querySelector('[data-card="requests"] dd')?.textContent) >= 3`, { timeout: 20_000 });
    await page.waitForSelector('#chart-requests canvas');
    await page.waitForSelector('#chart-latency canvas');
    expect(Number(await page.$eval('[data-card="nodes"] dd', (el) => el.textContent))).toBeGreaterThanOrEqual(6);
    // The trends view's "this instance" panel reads /api/metrics: its counts are the ones a real
    // Prometheus parser finds in the same text (when the parser is installed).
    await page.waitForSelector('[data-metric="nodes-ready"] dd');
    await page.waitForSelector('tr[data-operation="POST /clusters/{cluster}/nodes/create"]');
    if (!prometheusParserMissing()) {
      const families = parsePrometheus(await (await host.api('/metrics')).text());
      const want = {
        'creates-accepted': sampleSum(families, 'scaler_create_calls_total', { outcome: 'accepted' }),
        'nodes-requested': sampleSum(families, 'scaler_nodes_requested_total'),
        'nodes-ready': sampleSum(families, 'scaler_nodes_ready_total'),
        'over-ask': sampleSum(families, 'scaler_over_ask_total'),
      };
      expect(want['nodes-ready']).toBeGreaterThanOrEqual(6);
      expect(want['creates-accepted']).toBeGreaterThanOrEqual(1); // the two requests may share one batch
      const creates = sampleSum(families, 'cyclecloud_client_duration_count', { operation: 'POST /clusters/{cluster}/nodes/create' });
      await page.waitForFunction(
        (cards: Record<string, number>, calls: number) =>
          Object.entries(cards).every(([k, v]) => document.querySelector(`[data-metric="${k}"] dd`)?.textContent === String(v)) &&
          document.querySelector('tr[data-operation="POST /clusters/{cluster}/nodes/create"] [data-calls]')?.textContent === String(calls),
        { timeout: 15_000 },
        want,
        creates,
      );
      expect(await page.$eval('[data-metric="create-p50"] dd', (el) => el.textContent)).toMatch(/^\d+ (ms|s)$/);
    }
    await shot(page, 'trends');

    // Single-key shortcuts can be switched off (WCAG 2.1.4)
    await page.click('#shortcuts');
    await page.focus('main');
    await page.keyboard.press('1');
    expect(await page.evaluate('location.hash')).toMatch(/^#\/trends/);
    await page.click('#shortcuts');

    // Dark follows the system
    const light = await page.evaluate('getComputedStyle(document.body).backgroundColor');
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
    await page.waitForFunction((before) => getComputedStyle(document.body as never).backgroundColor !== before, {}, light);
    await shot(page, 'trends-dark');
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);

    // A phone's width: nothing wider than the screen, the table scrolls inside its box
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    await page.keyboard.press('2');
    await page.waitForSelector('tr[data-request-id="console-e2e-1"]');
    expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    await shot(page, 'requests-phone');

    expect(problems).toEqual([]);
    await page.close();
  }, 180_000);

  it('asks for the key when the page has none, keeps it for the tab, and then reads the API', async () => {
    // The page itself needs the key (docs/api.md §4); a proxy that adds it is the case where the page has none.
    const page = await browser.newPage();
    await page.setRequestInterception(true);
    page.on('request', (r) => {
      const url = new URL(r.url());
      // Only the page document is let through with the key, as a trusted proxy would do.
      if (url.pathname.endsWith('/console')) void r.continue({ headers: { ...r.headers(), 'x-functions-key': host.key } });
      else void r.continue();
    });
    await page.goto(`${host.base}/console#/requests`, { waitUntil: 'load' });
    await page.waitForSelector('#key-dialog[open]', { timeout: 10_000 });
    expect(await page.evaluate(() => sessionStorage.getItem('ccscale.functionKey'))).toBeNull();
    await page.type('#key-input', host.key);
    await page.keyboard.press('Enter');
    await page.waitForSelector('tr[data-request-id]', { timeout: 20_000 });
    expect(await page.evaluate(() => sessionStorage.getItem('ccscale.functionKey'))).toBe(host.key);
    expect(await page.content()).not.toContain(host.key);
    await page.close();
  }, 60_000);
});
