/**
 * Group commit per key (a cluster): members that arrive within a window are handed to one `flush`
 * together, and each member gets its own share of what the flush returns.
 *
 * The window opens with the first member and closes `windowMs` after the latest arrival, but never
 * later than `windowMaxMs` after the first (Karpenter's batch idle and max durations, scaled down:
 * a scale request waits for VMs that take minutes, not for a create that takes a window). It closes
 * at once when the members' weight (sets) reaches `maxWeight`. `windowMs` 0 means no window: each
 * member is flushed alone at once, which is the behaviour before batching.
 *
 * With a window, one flush per key runs at a time in this process: members arriving while a flush
 * is under way gather for the next one (its window closes when both its time is up and the flush
 * before it has ended), so two batches of one cluster never race on its reservation
 * row here (other instances still may: the row's ETag keeps them honest).
 * A flush that throws fails every member of its batch with that error.
 */
export interface BatcherOptions {
  windowMs: number;
  windowMaxMs: number;
  /** A batch closes when its members' weights reach this (CREATE_MAX_SETS). */
  maxWeight: number;
  /** Timers; default the global ones (fake timers in unit tests replace them). */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  now?: () => number;
}

interface Pending<M, R> {
  member: M;
  weight: number;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

interface Window<M, R> {
  members: Pending<M, R>[];
  weight: number;
  openedAtMs: number;
  timer: unknown;
  /** Its time is up but the key's previous flush is still running: it closes when that ends. */
  due: boolean;
}

export class Batcher<M, R> {
  readonly #o: Required<BatcherOptions>;
  readonly #flush: (key: string, members: M[]) => Promise<R[]>;
  readonly #open = new Map<string, Window<M, R>>();
  readonly #running = new Map<string, Promise<void>>();

  constructor(options: BatcherOptions, flush: (key: string, members: M[]) => Promise<R[]>) {
    this.#o = {
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      now: () => Date.now(),
      ...options,
      windowMaxMs: Math.max(options.windowMs, options.windowMaxMs),
      maxWeight: Math.max(1, options.maxWeight),
    };
    this.#flush = flush;
  }

  /** Whether members are batched at all (a window of 0 flushes each alone, at once). */
  get batching(): boolean {
    return this.#o.windowMs > 0;
  }

  /** Adds a member to the key's open window (opening one) and resolves with its share of the flush. */
  join(key: string, member: M, weight = 1): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const p: Pending<M, R> = { member, weight, resolve, reject };
      if (!this.batching) {
        // No window: alone and at once, beside any other run (as before batching).
        void this.#flushNow(key, [p]);
        return;
      }
      let w = this.#open.get(key);
      // A member that would take the batch past its weight closes the open one first.
      if (w && w.weight + weight > this.#o.maxWeight) {
        this.#close(key, w);
        w = undefined;
      }
      if (!w) {
        w = { members: [], weight: 0, openedAtMs: this.#o.now(), timer: undefined, due: false };
        this.#open.set(key, w);
      }
      w.members.push(p);
      w.weight += weight;
      if (w.weight >= this.#o.maxWeight) {
        this.#close(key, w);
        return;
      }
      if (!w.due) this.#arm(key, w);
    });
  }

  #arm(key: string, w: Window<M, R>): void {
    if (w.timer !== undefined) this.#o.clearTimer(w.timer);
    const untilMax = w.openedAtMs + this.#o.windowMaxMs - this.#o.now();
    const delay = Math.max(0, Math.min(this.#o.windowMs, untilMax));
    w.timer = this.#o.setTimer(() => {
      w.timer = undefined;
      if (this.#open.get(key) !== w) return;
      // While the previous batch is being sent, latecomers keep gathering for this one.
      if (this.#running.has(key)) w.due = true;
      else this.#close(key, w);
    }, delay);
  }

  #close(key: string, w: Window<M, R>): void {
    if (w.timer !== undefined) this.#o.clearTimer(w.timer);
    if (this.#open.get(key) === w) this.#open.delete(key);
    this.#run(key, w.members);
  }

  async #flushNow(key: string, members: Pending<M, R>[]): Promise<void> {
    try {
      const results = await this.#flush(
        key,
        members.map((m) => m.member),
      );
      for (const [i, m] of members.entries()) m.resolve(results[i]!);
    } catch (error) {
      for (const m of members) m.reject(error);
    }
  }

  /** Runs the flush after the key's previous one (one batch at a time per key). */
  #run(key: string, members: Pending<M, R>[]): void {
    const before = this.#running.get(key) ?? Promise.resolve();
    const mine = before.then(() => this.#flushNow(key, members));
    this.#running.set(key, mine);
    void mine.then(() => {
      if (this.#running.get(key) !== mine) return;
      this.#running.delete(key);
      const next = this.#open.get(key);
      if (next?.due) this.#close(key, next);
    });
  }
}
