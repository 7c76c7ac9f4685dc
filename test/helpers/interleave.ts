/**
 * Forcing interleavings of workers (e.g. the HTTP fast path and a queue delivery of one request).
 *
 * Every I/O call a worker makes (storage, CycleCloud, tracker, capacity, snapshot source) goes
 * through a gate; the worker is known by the async context it runs in (AsyncLocalStorage), so the
 * product code is unchanged. A worker started here is held at each gated call until it is given a
 * step: `step(w, n)` lets it make n more calls and resolves when it is held again, has finished, or
 * is waiting on something in-process (nothing in flight and no progress for a moment: e.g. a batch
 * another worker holds). A schedule is a sequence of steps; {@link schedules} lists the ones the
 * tests run: each worker paused before each of its calls in turn, the other before each of its own.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Storage } from '../../src/platform/storage.ts';

interface Worker {
  allowed: number;
  calls: number;
  inFlight: number;
  lastActivity: number;
  done: boolean;
  held: (() => void) | null;
  promise: Promise<unknown>;
}

export class Interleaver {
  readonly #als = new AsyncLocalStorage<string>();
  readonly #workers = new Map<string, Worker>();
  /** `<worker>#<n> <what>` of every gated call, in order. */
  readonly trace: string[] = [];
  /** How long a worker with nothing in flight must make no progress to count as waiting in-process. */
  quietMs = 5;

  /** Starts `fn` as `worker`, held before its first gated call. */
  start(name: string, fn: () => Promise<unknown>): void {
    const w: Worker = { allowed: 0, calls: 0, inFlight: 0, lastActivity: performance.now(), done: false, held: null, promise: Promise.resolve() };
    this.#workers.set(name, w);
    const settled = this.#als.run(name, fn).finally(() => {
      w.done = true;
    });
    // Handled from the start: outcomes are read with allSettled in finish().
    settled.catch(() => undefined);
    w.promise = settled;
  }

  /** Lets `name` make `n` more gated calls (Infinity: run free), then waits until it is held, done or waiting. */
  async step(name: string, n: number): Promise<void> {
    const w = this.#workers.get(name)!;
    w.allowed += n;
    w.lastActivity = performance.now();
    if (w.held && w.allowed > 0) {
      const go = w.held;
      w.held = null;
      go();
    }
    for (;;) {
      if (w.done) return;
      if (w.held) return;
      if (w.inFlight === 0 && performance.now() - w.lastActivity >= this.quietMs) return;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  done(name: string): boolean {
    return this.#workers.get(name)?.done ?? true;
  }

  calls(name: string): number {
    return this.#workers.get(name)?.calls ?? 0;
  }

  /** Runs every started worker free to the end; their outcomes. */
  async finish(): Promise<PromiseSettledResult<unknown>[]> {
    for (const name of this.#workers.keys()) void this.step(name, Number.POSITIVE_INFINITY);
    return Promise.allSettled([...this.#workers.values()].map((w) => w.promise));
  }

  async #enter(what: string): Promise<Worker | undefined> {
    const name = this.#als.getStore();
    const w = name === undefined ? undefined : this.#workers.get(name);
    if (!w) return undefined;
    if (w.allowed <= 0) await new Promise<void>((r) => (w.held = r));
    w.allowed -= 1;
    w.calls += 1;
    this.trace.push(`${name}#${w.calls} ${what}`);
    w.inFlight += 1;
    w.lastActivity = performance.now();
    return w;
  }

  #leave(w: Worker | undefined): void {
    if (!w) return;
    w.inFlight -= 1;
    w.lastActivity = performance.now();
  }

  /** `target` with every method gated (async methods through the gate; list iterators at each step). */
  gate<T extends object>(target: T, name: string): T {
    const self = this;
    return new Proxy(target, {
      get(t, prop, receiver) {
        const value = Reflect.get(t, prop, receiver) as unknown;
        if (typeof value !== 'function' || prop === 'constructor') return value;
        const fn = value as (...args: unknown[]) => unknown;
        const what = `${name}.${String(prop)}`;
        if (prop === 'listEntities') {
          return (...args: unknown[]) => {
            const source = fn.apply(t, args) as AsyncIterableIterator<unknown>;
            const it: AsyncIterableIterator<unknown> = {
              next: async () => {
                const w = await self.#enter(what);
                try {
                  return await source.next();
                } finally {
                  self.#leave(w);
                }
              },
              [Symbol.asyncIterator]() {
                return it;
              },
            };
            return it;
          };
        }
        return (...args: unknown[]) =>
          (async () => {
            const w = await self.#enter(what);
            try {
              return await fn.apply(t, args);
            } finally {
              self.#leave(w);
            }
          })();
      },
    });
  }

  /** A storage whose table and queue clients are gated (everything the ledger, reservations, state and queue do). */
  gateStorage(storage: Storage): Storage {
    const tables = new Map<string, unknown>();
    const queues = new Map<string, unknown>();
    const wrapped = {
      table: (name: string) => {
        if (!tables.has(name)) tables.set(name, this.gate(storage.table(name), `table:${name}`));
        return tables.get(name);
      },
      queue: (name: string) => {
        if (!queues.has(name)) queues.set(name, this.gate(storage.queue(name), `queue:${name}`));
        return queues.get(name);
      },
      ensure: (names: { tables?: string[]; queues?: string[] }) => storage.ensure(names),
    };
    return wrapped as unknown as Storage;
  }
}

/** How the two workers go on after both reached their pause: strictly in turn, or one to the end first. */
export type Tail = 'alternate' | 'first-then-second' | 'second-then-first';

/**
 * One schedule: `a` makes `k - 1` calls (held before its k-th), `b` then makes `j - 1`, and from
 * there they go on as `tail` says. Returns whether each was still running at its pause (false:
 * it made fewer calls, so larger values add nothing) and both outcomes.
 */
export async function runSchedule(
  il: Interleaver,
  a: { name: string; run: () => Promise<unknown> },
  b: { name: string; run: () => Promise<unknown> },
  k: number,
  j: number,
  tail: Tail,
): Promise<{ aReached: boolean; bReached: boolean; results: PromiseSettledResult<unknown>[] }> {
  il.start(a.name, a.run);
  await il.step(a.name, k - 1);
  const aReached = !il.done(a.name) && il.calls(a.name) === k - 1;
  il.start(b.name, b.run);
  await il.step(b.name, j - 1);
  const bReached = !il.done(b.name) && il.calls(b.name) === j - 1;
  if (tail === 'alternate') {
    for (let guard = 0; guard < 10_000 && !(il.done(a.name) && il.done(b.name)); guard++) {
      if (!il.done(a.name)) await il.step(a.name, 1);
      if (!il.done(b.name)) await il.step(b.name, 1);
    }
  } else {
    const [x, y] = tail === 'first-then-second' ? [a.name, b.name] : [b.name, a.name];
    await il.step(x, Number.POSITIVE_INFINITY);
    await il.step(y, Number.POSITIVE_INFINITY);
  }
  const results = await il.finish();
  return { aReached, bReached, results };
}
