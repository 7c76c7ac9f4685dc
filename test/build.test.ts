/**
 * The deployable bundle: `npm run build` produces `package.json#main`, and loading it registers the
 * same functions the local host runs (the library's test mode names each registration it skips).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
});
