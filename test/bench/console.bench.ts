/**
 * The operator console on `npm start` (its own in-memory azurite and simulator): the page's size as
 * sent (plain and gzip), and in headless Chromium, from a fresh browser context each time, the first
 * contentful paint and the time until the clusters view shows its first bucket (data from the API).
 * Skipped (one result saying so) without Debian's chromium.
 */
import { existsSync } from 'node:fs';
import { spawnScaler } from '../e2e/harness.ts';
import { freePort } from '../helpers/net.ts';
import { summarise } from './measure.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RUNS = 7;

export async function run(): Promise<object[]> {
  if (!existsSync(CHROMIUM)) return [{ bench: 'console_first_paint', skipped: `no chromium at ${CHROMIUM}` }];
  const port = await freePort();
  const scaler = spawnScaler({ PORT: String(port), SNAPSHOT_SCHEDULE: '*/5 * * * * *' });
  const { default: puppeteer } = await import('puppeteer-core');
  let browser: Awaited<ReturnType<typeof puppeteer.launch>> | undefined;
  try {
    const until = Date.now() + 60_000;
    while (!/Function key:\s+(\S+)/.test(scaler.output()) || !/HTTP base URL:\s+(\S+)/.test(scaler.output())) {
      if (Date.now() > until || scaler.child.exitCode !== null) throw new Error(`npm start did not come up\n${scaler.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const base = /HTTP base URL:\s+(\S+)/.exec(scaler.output())![1]!;
    const key = /Function key:\s+(\S+)/.exec(scaler.output())![1]!;
    const url = `${base}/console?code=${encodeURIComponent(key)}`;
    const plain = (await (await fetch(url)).arrayBuffer()).byteLength;
    const gzip = Number((await fetch(url, { headers: { 'accept-encoding': 'gzip' } })).headers.get('content-length'));

    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
    const paints: number[] = [];
    const firstData: number[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      await page.setViewport({ width: 1280, height: 800 });
      await page.goto(`${url}#/clusters`, { waitUntil: 'load' });
      await page.waitForSelector('[data-bucket]', { timeout: 30_000 });
      const t = (await page.evaluate(`({ fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN, data: performance.now() })`)) as {
        fcp: number;
        data: number;
      };
      await context.close();
      if (i === 0) continue; // the first load also warms the server's page cache and the first snapshot
      paints.push(t.fcp);
      firstData.push(t.data);
    }
    return [
      { bench: 'console_page_bytes', html_bytes: plain, gzip_bytes: gzip, goal_gzip_bytes: 64 * 1024 },
      { bench: 'console_first_contentful_paint', ...summarise(paints), goal_ms: 1000 },
      { bench: 'console_clusters_view_with_data', ...summarise(firstData), goal_ms: 2000 },
    ];
  } finally {
    await browser?.close();
    if (scaler.child.exitCode === null) process.kill(-scaler.child.pid!, 'SIGINT');
    await scaler.exited;
  }
}
