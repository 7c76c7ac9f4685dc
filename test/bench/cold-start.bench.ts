/**
 * Cold start of the deployable bundle: a fresh `node` importing dist/main.js (what the Functions
 * host does before the first invocation) against a bare `node -e 0`, run alternately so both see
 * the same machine load; goal: at most 40 ms more (median). Node's compile cache is off, as on a
 * fresh instance. Also reported, without a goal: the application chunk that the first invocation
 * imports, timed inside the process.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { summarise } from './measure.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const RUNS = 31;

function wallMs(args: string[]): number {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' };
  delete env.NODE_COMPILE_CACHE;
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`);
  return performance.now() - started;
}

export async function run(): Promise<object[]> {
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'ignore' });
  const bundle = ['--input-type=module', '-e', "await import('./dist/main.js')"];
  const bare: number[] = [];
  const loaded: number[] = [];
  wallMs(['-e', '0']);
  wallMs(bundle);
  for (let i = 0; i < RUNS; i++) {
    bare.push(wallMs(['-e', '0']));
    loaded.push(wallMs(bundle));
  }
  const b = summarise(bare);
  const l = summarise(loaded);

  const app = readdirSync(`${root}dist/chunks`).find((f) => /^app-.*\.js$/.test(f))!;
  const appMs: number[] = [];
  for (let i = 0; i < 7; i++) {
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', `const t = performance.now(); await import('./dist/chunks/${app}'); console.log(performance.now() - t)`],
      {
        cwd: root,
        env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    appMs.push(Number(out.trim().split('\n').pop()));
  }
  const round = (n: number) => Math.round(n * 10) / 10;
  return [
    {
      bench: 'cold_start_bundle_import',
      median_ms: l.median_ms,
      p95_ms: l.p95_ms,
      runs: l.runs,
      bare_node_median_ms: b.median_ms,
      over_bare_ms: round(l.median_ms - b.median_ms),
      goal_ms: 40,
      main_kib: round(statSync(`${root}dist/main.js`).size / 1024),
    },
    { bench: 'first_invocation_app_chunk_import', ...summarise(appMs), app_chunk_kib: round(statSync(`${root}dist/chunks/${app}`).size / 1024) },
  ];
}
