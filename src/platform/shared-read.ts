/**
 * One storage read shared by every caller of a process that asks for the same thing within
 * `ttlMs`: concurrent callers wait for the one read in flight, later ones reuse its answer until
 * it is `ttlMs` old. A failed read is not kept (the next caller reads again). `forget` drops a key
 * (a write this process made, or a caller that knows the answer is behind).
 *
 * For reads every run makes and a second or so of lag cannot hurt: the cluster snapshot (a plan on
 * an older one is caught by the reservations, and the run reads again) and the capacity backoffs.
 */
export class SharedRead<T> {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #kept = new Map<string, { atMs: number; value: Promise<T> }>();

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get(key: string, read: () => Promise<T>): Promise<T> {
    if (this.#ttlMs <= 0) return read();
    const nowMs = this.#now();
    const k = this.#kept.get(key);
    if (k && nowMs - k.atMs < this.#ttlMs) return k.value;
    const value = read();
    const mine = { atMs: nowMs, value };
    this.#kept.set(key, mine);
    value.catch(() => {
      if (this.#kept.get(key) === mine) this.#kept.delete(key);
    });
    // Few keys (clusters): drop the expired ones as new ones come.
    if (this.#kept.size > 64) for (const [x, v] of this.#kept) if (nowMs - v.atMs >= this.#ttlMs) this.#kept.delete(x);
    return value;
  }

  forget(key?: string): void {
    if (key === undefined) this.#kept.clear();
    else this.#kept.delete(key);
  }
}
