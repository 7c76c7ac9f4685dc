/**
 * One planner call in a fresh process (what a cold Function pays): `node test/bench/planner-cold.ts
 * <jobs>` prints one JSON line with the import time of the planner and the first plan's time.
 * Used by `planner-scalelib.bench.ts`; not a bench module itself.
 */
import { scalelibCluster, scalelibJobs, scalelibRequest } from '../planning/workload.ts';
import { T0 } from '../planning/fixtures.ts';

const jobs = Number(process.argv[2] ?? 1000);
const input = { request: scalelibRequest(scalelibJobs(jobs)), snapshot: scalelibCluster(), inFlight: [], backoffs: [], nowMs: T0 + 5_000 };
let t = performance.now();
const { plan } = await import('../../src/planning/planner.ts');
const importMs = performance.now() - t;
t = performance.now();
const p = plan(input);
const firstMs = performance.now() - t;
t = performance.now();
plan(input);
const secondMs = performance.now() - t;
process.stdout.write(`${JSON.stringify({ importMs, firstMs, secondMs, sets: p.sets.length })}\n`);
