/** Timing helpers shared by the `*.bench.ts` modules. */

export interface Timing {
  median_ms: number;
  p95_ms: number;
  runs: number;
}

export interface MeasureOptions {
  /** Timed runs. Default 30. */
  runs?: number;
  /** Untimed runs first, so the JIT has settled. Default 3. */
  warmup?: number;
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

/** Summarises durations (ms) as median and 95th percentile. */
export function summarise(samples: number[]): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
  const mid = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median_ms: round(median), p95_ms: round(at(0.95)), runs: sorted.length };
}

/** Times `fn` (sync or async) `runs` times after `warmup` untimed calls. */
export async function measure(fn: () => unknown, options: MeasureOptions = {}): Promise<Timing> {
  const { runs = 30, warmup = 3 } = options;
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return summarise(samples);
}

/**
 * Times two functions in alternation (a, b, a, b…) so that machine noise hits both alike; for
 * benches whose goal is a ratio between them.
 */
export function measurePair(a: () => unknown, b: () => unknown, options: MeasureOptions = {}): { a: Timing; b: Timing } {
  const { runs = 30, warmup = 3 } = options;
  for (let i = 0; i < warmup; i++) {
    a();
    b();
  }
  const sa: number[] = [];
  const sb: number[] = [];
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    a();
    sa.push(performance.now() - t);
    t = performance.now();
    b();
    sb.push(performance.now() - t);
  }
  return { a: summarise(sa), b: summarise(sb) };
}

/**
 * POSTs one one-node scale request (nodearray `mpi`) per id to `api`, `concurrency` at a time, and
 * records each answer's latency and, for a 202, when it was accepted (`Date.now()` on the answer).
 */
export async function postOneNodeRequests(
  api: (path: string, init: RequestInit) => Promise<Response>,
  ids: readonly string[],
  concurrency: number,
  out: { latencies: number[]; acceptedAt: Map<string, number>; refused: number },
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const t0 = performance.now();
        const res = await api('/scale-requests', { method: 'POST', body: JSON.stringify({ requestId: id, cluster: 'hpc', demands: [{ nodearray: 'mpi', count: 1 }] }) });
        await res.arrayBuffer();
        out.latencies.push(performance.now() - t0);
        if (res.status === 202) out.acceptedAt.set(id, Date.now());
        else out.refused += 1;
      }
    }),
  );
}
