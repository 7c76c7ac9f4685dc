/**
 * The deployable bundle: `npm run build` produces `package.json#main`, and loading it registers the
 * same functions the local host runs (the library's test mode names each registration it skips).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../src/http/routes.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

describe('npm run build', () => {
  it('bundles functions/index.ts into package.json#main, which registers every function when loaded', async () => {
    // Act
    await run(process.execPath, ['scripts/build.mjs'], { cwd: root });
    const main = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { main: string }).main;
    const loaded = await run(process.execPath, ['-e', `import(${JSON.stringify(`./${main}`)})`], { cwd: root });

    // Assess
    expect(main).toBe('dist/main.js');
    const registered = [...loaded.stderr.matchAll(/register function "([^"]+)"/g)].map((m) => m[1]).sort();
    expect(registered).toEqual(['callbacks', 'scaleRequests', 'snapshot', 'tracker', ...ROUTES.map((r) => r.name)].sort());
    // Nothing but the library's own test-mode warnings: no error, no stack trace.
    expect(loaded.stderr.split('\n').filter((l) => l && !l.startsWith('WARNING:'))).toEqual([]);
  }, 60_000);

  it('ships the console beside the bundle: a bundled page reads dist/console/ with no node_modules or sources near it', async () => {
    // Prepare: the build's dist/console/, and the console code bundled the way build.mjs bundles it, in an empty folder
    await run(process.execPath, ['scripts/build.mjs'], { cwd: root });
    const dir = mkdtempSync(join(tmpdir(), 'console-bundle-'));
    try {
      cpSync(join(root, 'dist', 'console'), join(dir, 'console'), { recursive: true });
      await build({ entryPoints: [join(root, 'src/console/page.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node22', outfile: join(dir, 'main.js'), external: ['@azure/functions'], logLevel: 'silent' });
      // Act
      const probe = `import('./main.js').then((m) => { const r = m.consolePage(''); console.log(JSON.stringify({ status: r.status, type: r.headers['content-type'], size: r.body.length, uplot: r.body.includes('leeoniya/uPlot'), app: r.body.includes('ccscale.functionKey') })); })`;
      const out = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: dir });
      // Assess
      expect(JSON.parse(out.stdout)).toMatchObject({ status: 200, type: 'text/html; charset=utf-8', uplot: true, app: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
