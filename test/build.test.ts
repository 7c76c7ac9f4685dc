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
import { describe, expect, inject, it } from 'vitest';
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
    // One line at cold start saying which Node runs it.
    expect(loaded.stdout.trim()).toBe(`cyclecloud-scaler 0.1.0 on Node.js ${process.version}`);
  }, 60_000);

  it('ships the console beside the bundle: a bundled page reads dist/console/ with no node_modules or sources near it', async () => {
    // Prepare: the build's dist/console/, and the console code bundled the way build.mjs bundles it, in an empty folder
    await run(process.execPath, ['scripts/build.mjs'], { cwd: root });
    const dir = mkdtempSync(join(tmpdir(), 'console-bundle-'));
    try {
      cpSync(join(root, 'dist', 'console'), join(dir, 'console'), { recursive: true });
      await build({
        entryPoints: [join(root, 'src/console/page.ts')],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node22',
        outfile: join(dir, 'main.js'),
        external: ['@azure/functions'],
        logLevel: 'silent',
      });
      // Act
      const probe = `import('./main.js').then((m) => { const r = m.consolePage(''); console.log(JSON.stringify({ status: r.status, type: r.headers['content-type'], size: r.body.length, uplot: r.body.includes('leeoniya/uPlot'), app: r.body.includes('ccscale.functionKey') })); })`;
      const out = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: dir });
      // Assess
      expect(JSON.parse(out.stdout)).toMatchObject({ status: 200, type: 'text/html; charset=utf-8', uplot: true, app: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('registers exactly what functions/index.ts registers, queue names from STORAGE_PREFIX at run time, and loads a handler on first use', async () => {
    // Prepare: dist/ from the test above (vitest runs a file's tests in order); the source's list
    const script = `
      globalThis.__scalerRegistrations = [];
      await import('./dist/main.js');
      const regs = globalThis.__scalerRegistrations;
      const openapi = regs.find((r) => r.name === 'openapi');
      const request = new Request('http://127.0.0.1:7071/api/openapi.json');
      const ctx = { invocationId: 'i', functionName: 'openapi', log() {}, warn() {}, error() {}, debug() {}, trace() {}, info() {} };
      const answer = await openapi.options.handler(Object.assign(request, { params: {}, query: new URL(request.url).searchParams }), ctx);
      console.log(JSON.stringify({ regs: regs.map(({ kind, name, options }) => { const { handler, ...rest } = options; return { kind, name, options: rest, lazy: typeof handler }; }), status: answer.status ?? 200 }));
    `;
    const env = {
      ...process.env,
      STORAGE_PREFIX: 'buildprobe',
      SCALER_MODE: 'local',
      AzureWebJobsStorage: inject('storageConnectionString'),
      CYCLECLOUD_URL: 'http://127.0.0.1:9',
      CYCLECLOUD_CLUSTERS: 'hpc',
      CYCLECLOUD_USERNAME: 'u',
      CYCLECLOUD_PASSWORD: 'not-used-here',
    };

    // Act (an error prints the minified bundle's line: keep only the message)
    const out = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env }).catch((error: { stderr?: string }) => {
      throw new Error(
        String(error.stderr)
          .split('\n')
          .filter((l) => l.length < 400)
          .join('\n'),
      );
    });
    const source = await run(process.execPath, ['scripts/capture-registrations.mjs'], { cwd: root, env });

    // Assess
    const lastLine = out.stdout.trim().split('\n').pop()!;
    const result = JSON.parse(lastLine) as { regs: Array<{ kind: string; name: string; options: Record<string, unknown>; lazy: string }>; status: number };
    const expected = JSON.parse(source.stdout.slice(source.stdout.indexOf('@@registrations@@') + 17)) as Array<{ kind: string; name: string; options: unknown }>;
    expect(result.regs.map(({ lazy: _lazy, ...r }) => r)).toEqual(expected);
    expect(result.regs.every((r) => r.lazy === 'function')).toBe(true);
    expect(result.regs.find((r) => r.name === 'tracker')!.options.queueName).toBe('buildprobe-tracker');
    expect(result.status).toBe(200);
  }, 60_000);

  it('refuses to load on a Node older than engines.node, saying so in one line', async () => {
    // Act: pretend to be Node 20 before the bundle checks
    const script = `Object.defineProperty(process.versions, 'node', { value: '20.20.2' }); try { await import('./dist/main.js'); } catch (e) { console.log('threw: ' + e.message); }`;
    const out = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root });

    // Assess
    expect(out.stderr).toContain('cyclecloud-scaler 0.1.0 needs Node.js 22.19.0 or newer');
    expect(out.stdout).toContain('threw: cyclecloud-scaler 0.1.0 needs Node.js 22.19.0 or newer');
  }, 30_000);
});
