#!/usr/bin/env node
// Builds the deployable bundle: dist/main.js, the file package.json#main points the Azure Functions
// host at, plus dist/chunks/ loaded on demand.
//
// Cold start: the host imports dist/main.js before the first invocation, so it holds only what
// registering the functions needs (@azure/functions, the registration list). The application (the
// handlers, zod schemas, the storage SDKs, the CycleCloud client) is a chunk imported on the first
// invocation; Key Vault and identity are chunks of their own, imported only when used.
//
// The registration list is read from functions/index.ts at build time (as the local host captures
// it), twice with different STORAGE_PREFIX values: an option that changes with it (a queue name) is
// computed at run time from the app setting, any other difference stops the build.
//
// Usage: node scripts/build.mjs [--analyze] [--no-minify]
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { storageNames } from '../src/platform/names.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = `${root}dist/main.js`;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
const minimum = /^>=\s*(\d+\.\d+\.\d+)$/.exec(pkg.engines.node)?.[1];
if (!minimum) throw new Error(`package.json engines.node must read ">=X.Y.Z" (is "${pkg.engines.node}")`);
const minify = !process.argv.includes('--no-minify');

// 0. The entry below replays app.<trigger>(name, options) only: app.setup or app.hook calls in
// functions/ would be lost, so they stop the build until the entry learns them.
for (const file of readdirSync(`${root}functions`)) {
  const text = readFileSync(`${root}functions/${file}`, 'utf8');
  const call = /\bapp\.(setup|hook)\b/.exec(text);
  if (call) throw new Error(`functions/${file} calls app.${call[1]}: scripts/build.mjs must replay it in the cold-start entry (it only replays registrations)`);
}

// 1. What functions/index.ts registers, with the options that depend on STORAGE_PREFIX marked.
function capture(prefix) {
  const env = { ...process.env, STORAGE_PREFIX: prefix ?? '' };
  const out = execFileSync(process.execPath, [`${root}scripts/capture-registrations.mjs`], { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.slice(out.indexOf('@@registrations@@') + '@@registrations@@'.length));
}
const PROBE = 'zqprobe';
const plain = capture(undefined);
const probed = capture(PROBE);
const RUNTIME = '__scalerRuntimeName__';
function reconcile(a, b, where) {
  if (JSON.stringify(a) === JSON.stringify(b)) return a;
  if (typeof a === 'string' && typeof b === 'string') {
    const field = Object.keys(storageNames()).find((k) => storageNames()[k] === a && storageNames({ prefix: PROBE })[k] === b);
    if (field) return { [RUNTIME]: field };
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a)) {
    return Object.fromEntries(Object.keys({ ...a, ...b }).map((k) => [k, reconcile(a[k], b[k], `${where}.${k}`)]));
  }
  throw new Error(`registration option ${where} depends on the environment in a way the build cannot reproduce at run time`);
}
const registrations = plain.map((r, i) => reconcile(r, probed[i], r.name));

// 2. The entry: version line, Node check, registrations whose handlers import the app on first use.
const literal = JSON.stringify(registrations, null, 0).replace(
  new RegExp(`\\{"${RUNTIME}":"(\\w+)"\\}`, 'g'),
  (_m, field) => `storageNames({ prefix: process.env.STORAGE_PREFIX || undefined }).${field}`,
);
const entry = `
import { app } from '@azure/functions';
import { storageNames } from './src/platform/names.ts';

const MINIMUM = ${JSON.stringify(minimum)};
const older = (have, need) => {
  for (let i = 0; i < 3; i++) if (have[i] !== need[i]) return have[i] < need[i];
  return false;
};
if (older(process.versions.node.split('.').map(Number), MINIMUM.split('.').map(Number))) {
  const message = 'cyclecloud-scaler ${pkg.version} needs Node.js ' + MINIMUM + ' or newer; this Function App runs ' + process.version + ': set its runtime version to 22';
  console.error(message);
  throw new Error(message);
}
console.log('cyclecloud-scaler ${pkg.version} on Node.js ' + process.version);

let application;
const load = () => (application ??= import('./app-chunk-entry'));
const lazy = (name) => async (...args) => (await load()).handlerOf(name)(...args);
// Tests set this to receive the registrations (the library skips them outside the Functions host).
const register = globalThis.__scalerRegistrations
  ? (kind, name, options) => globalThis.__scalerRegistrations.push({ kind, name, options })
  : (kind, name, options) => app[kind](name, options);
for (const { kind, name, options } of ${literal}) register(kind, name, { ...options, handler: lazy(name) });
`;

// The application chunk: functions/*.ts as they are, but their app.* calls recorded (the real
// registration happened in the entry) so the entry can hand each invocation to its handler.
const recorder = `
export * from '@azure/functions';
const handlers = new Map();
const record = (name, options) => { handlers.set(name, typeof options === 'function' ? options : options.handler); };
export const app = new Proxy({}, { get: (_t, key) => (key === 'setup' ? () => {} : record) });
export function handlerOf(name) {
  const handler = handlers.get(name);
  if (!handler) throw new Error('no handler registered for function "' + name + '"');
  return handler;
}
`;
const lazyEntry = `import './functions/index.ts';\nexport { handlerOf } from 'scaler:recorder';\n`;

const virtual = {
  name: 'scaler-entry',
  setup(b) {
    b.onResolve({ filter: /^scaler:entry$/ }, () => ({ path: 'entry', namespace: 'scaler' }));
    b.onResolve({ filter: /^\.\/app-chunk-entry$/ }, () => ({ path: 'app', namespace: 'scaler' }));
    b.onResolve({ filter: /^scaler:recorder$/ }, () => ({ path: 'recorder', namespace: 'scaler' }));
    // Inside functions/, '@azure/functions' is the recorder; everywhere else the real library.
    b.onResolve({ filter: /^@azure\/functions$/ }, (args) => (args.importer.startsWith(`${root}functions/`) ? { path: 'recorder', namespace: 'scaler' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'scaler' }, (args) => ({
      contents: args.path === 'entry' ? entry : args.path === 'app' ? lazyEntry : recorder,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

// Old chunks would ship with the package: start from an empty dist/.
rmSync(`${root}dist`, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { main: 'scaler:entry' },
  plugins: [virtual],
  outdir: `${root}dist`,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minify,
  // Provided by the Functions host at run time; absent outside it (the library then runs in test mode).
  external: ['@azure/functions-core'],
  sourcemap: true,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  // CommonJS dependencies bundled into an ESM file still call require() for Node built-ins.
  banner: { js: "import { createRequire as __scalerCreateRequire } from 'node:module';\nconst require = __scalerCreateRequire(import.meta.url);" },
});

// The operator console's files (its page, script and style, and uPlot from npm) ship beside the
// bundle in dist/console/: GET /api/console reads them there, so the Azure path needs no
// node_modules and no CDN. src/console/page.ts knows the files; it resolves them from source here.
const { CONSOLE_FILES, consoleFilePaths, buildConsoleDocument } = await import('../src/console/page.ts');
mkdirSync(`${root}dist/console`, { recursive: true });
for (const [role, from] of Object.entries(consoleFilePaths())) copyFileSync(from, `${root}dist/console/${CONSOLE_FILES[role]}`);
const uplotDir = dirname(createRequire(import.meta.url).resolve('uplot/package.json'));
copyFileSync(`${uplotDir}/LICENSE`, `${root}dist/console/uPlot.LICENSE`);
const page = buildConsoleDocument();
console.log(
  `dist/console: ${readdirSync(`${root}dist/console`)
    .map((f) => basename(f))
    .join(', ')}; the page is ${(Buffer.byteLength(page.html) / 1024).toFixed(1)} KiB (${(page.gzip.length / 1024).toFixed(1)} KiB gzip)`,
);

const bytes = statSync(outfile).size;
const chunkBytes = readdirSync(`${root}dist/chunks`)
  .filter((f) => f.endsWith('.js'))
  .reduce((n, f) => n + statSync(`${root}dist/chunks/${f}`).size, 0);
console.log(`dist/main.js: ${(bytes / 1024).toFixed(1)} KiB loaded at cold start (${registrations.length} registrations)`);
console.log(`dist/chunks: ${(chunkBytes / 1024).toFixed(1)} KiB loaded on first invocation (the application) or on demand (Key Vault, identity)`);
if (process.argv.includes('--analyze')) {
  const { analyzeMetafile } = await import('esbuild');
  console.log(await analyzeMetafile(result.metafile, { verbose: false }));
}
