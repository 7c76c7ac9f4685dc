/**
 * `npm run bench`: runs every `test/bench/*.bench.ts` module and prints each result as ONE JSON line
 * on stdout (progress and errors go to stderr).
 *
 * To add a bench, create `test/bench/<name>.bench.ts` exporting
 *   `export async function run(): Promise<object[]>`
 * where each object has at least `bench` (a snake_case name) and, for timings, `median_ms`, `p95_ms`,
 * `runs` and `goal_ms` (or `ratio` and `goal_ratio`). `measure.ts` has timing helpers. Keep each module
 * within a few seconds: the whole run should stay under ~60 s on two busy cores.
 *
 * `npm run bench -- planner snapshot` runs only the modules whose file name contains one of the words.
 * A module that throws is reported as `{"bench":"<file>","error":"…"}` and the exit code is 1.
 */
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = (await readdir(dir))
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((w) => f.includes(w)))
  .sort();

let failed = false;
for (const file of files) {
  const started = performance.now();
  try {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { run?: () => Promise<object[]> | object[] };
    if (typeof mod.run !== 'function') throw new Error('exports no run() function');
    for (const result of await mod.run()) process.stdout.write(`${JSON.stringify(result)}\n`);
  } catch (error) {
    failed = true;
    process.stdout.write(`${JSON.stringify({ bench: file.replace(/\.bench\.ts$/, ''), error: error instanceof Error ? error.message : String(error) })}\n`);
  }
  process.stderr.write(`bench ${file}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}
if (files.length === 0) process.stderr.write(`no *.bench.ts module matched ${only.join(' ')}\n`);
process.exitCode = failed || files.length === 0 ? 1 : 0;
