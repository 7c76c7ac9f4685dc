#!/usr/bin/env node
// Bundles the Functions entry (functions/index.ts) into dist/main.js, the file package.json#main
// points the Azure Functions host at. One ESM file keeps cold start short (no node_modules walk).
// Usage: node scripts/build.mjs [--analyze]
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = `${root}dist/main.js`;
// Old chunks would ship with the package: start from an empty dist/.
rmSync(`${root}dist`, { recursive: true, force: true });

const result = await build({
  absWorkingDir: root,
  // Code splitting: what is loaded lazily (@azure/identity, @azure/keyvault-secrets, behind dynamic
  // import()) goes into chunks of its own, so a cold start parses only what the first trigger needs.
  entryPoints: { main: 'functions/index.ts' },
  outdir: `${root}dist`,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
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
console.log(`dist/console: ${readdirSync(`${root}dist/console`).map((f) => basename(f)).join(', ')}; the page is ${(Buffer.byteLength(page.html) / 1024).toFixed(1)} KiB (${(page.gzip.length / 1024).toFixed(1)} KiB gzip)`);

const bytes = statSync(outfile).size;
const chunkBytes = readdirSync(`${root}dist/chunks`).filter((f) => f.endsWith('.js')).reduce((n, f) => n + statSync(`${root}dist/chunks/${f}`).size, 0);
console.log(`dist/chunks: ${(chunkBytes / 1024).toFixed(1)} KiB loaded on demand (Key Vault, identity)`);
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`dist/main.js: ${(bytes / 1024).toFixed(1)} KiB from ${inputs} inputs`);
if (process.argv.includes('--analyze')) {
  const { analyzeMetafile } = await import('esbuild');
  console.log(await analyzeMetafile(result.metafile, { verbose: false }));
}
