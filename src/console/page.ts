/**
 * The console page: `static/index.html` with its stylesheet and scripts (the console's own and
 * uPlot's, copied from npm) written inline, so one keyed `GET /api/console` brings everything and
 * no other route has to be opened without the function key. Nothing is fetched from outside: the
 * page works inside a private network.
 *
 * The files come from `dist/console/` in the deployable bundle (`scripts/build.mjs` copies them) or
 * from `src/console/static/` and `node_modules/uplot` when running from source (`npm start`). The
 * page is assembled once per process, on first request, with a Content-Security-Policy that allows
 * exactly its inline script and style (by hash) and requests to its own origin.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { HttpResponseInit } from '@azure/functions';

/** The files of the console, by role: what the build copies into `dist/console/`. */
export const CONSOLE_FILES = {
  html: 'index.html',
  css: 'console.css',
  js: 'console.js',
  chartCss: 'uPlot.min.css',
  chartJs: 'uPlot.iife.min.js',
} as const;
type Role = keyof typeof CONSOLE_FILES;

/** Where each file is: the bundle's `console/` folder when there is one, else the sources. */
export function consoleFilePaths(): Record<Role, string> {
  // dist/main.js → dist/console/; a chunk in dist/chunks/ → dist/console/ too.
  for (const dir of ['./console/', '../console/']) {
    const base = fileURLToPath(new URL(dir, import.meta.url));
    if (existsSync(`${base}${CONSOLE_FILES.html}`) && existsSync(`${base}${CONSOLE_FILES.chartJs}`)) {
      return Object.fromEntries(Object.entries(CONSOLE_FILES).map(([role, file]) => [role, `${base}${file}`])) as Record<Role, string>;
    }
  }
  const own = fileURLToPath(new URL('./static/', import.meta.url));
  const fromPackage = createRequire(import.meta.url);
  return {
    html: `${own}${CONSOLE_FILES.html}`,
    css: `${own}${CONSOLE_FILES.css}`,
    js: `${own}${CONSOLE_FILES.js}`,
    chartCss: fromPackage.resolve('uplot/dist/uPlot.min.css'),
    chartJs: fromPackage.resolve('uplot/dist/uPlot.iife.min.js'),
  };
}

export interface ConsoleDocument {
  html: string;
  gzip: Buffer;
  contentSecurityPolicy: string;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
/** `</script` or `</style` inside inlined text would end the element early. */
const inlineSafe = (text: string, tag: 'script' | 'style') => text.replace(new RegExp(`</${tag}`, 'gi'), `<\\/${tag}`);

/** Builds the document from the files (exported for tests and the build's size report). */
export function buildConsoleDocument(paths: Record<Role, string> = consoleFilePaths()): ConsoleDocument {
  const read = (role: Role) => readFileSync(paths[role], 'utf8');
  const style = inlineSafe(`${read('chartCss')}\n${read('css')}`, 'style');
  const chart = inlineSafe(read('chartJs'), 'script');
  const app = inlineSafe(read('js'), 'script');
  const template = read('html');
  for (const slot of ['<!--STYLE-->', '<!--SCRIPTS-->']) {
    if (!template.includes(slot)) throw new Error(`console template ${paths.html} has no ${slot} slot`);
  }
  const html = template.replace('<!--STYLE-->', () => `<style>${style}</style>`).replace('<!--SCRIPTS-->', () => `<script>${chart}</script>\n<script>${app}</script>`);
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src ${sha256(chart)} ${sha256(app)}`,
    // uPlot positions its cursor and legend through element.style (CSSOM, allowed); no style attributes are parsed.
    `style-src ${sha256(style)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, gzip: gzipSync(html, { level: 9 }), contentSecurityPolicy };
}

let cached: ConsoleDocument | undefined;

/** The console's HTTP answer (gzip when the caller accepts it). */
export function consolePage(acceptEncoding: string): HttpResponseInit {
  cached ??= buildConsoleDocument();
  const gzip = /\bgzip\b/i.test(acceptEncoding);
  return {
    status: 200,
    body: gzip ? cached.gzip : cached.html,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': cached.contentSecurityPolicy,
      // The address may carry ?code=: never cache the page, never send the address anywhere.
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      vary: 'accept-encoding',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    },
  };
}
