/**
 * The chaos harness: the real stack (`createServices`: ledger and tracker tables on azurite, the
 * CycleCloud client over HTTP to the simulator) run under a virtual clock, with its three queues
 * driven by a deterministic pump and failures injected at the composition level only.
 *
 * Why the queues are virtual: Azure queues delay in whole seconds and a crashed worker's message
 * comes back only after its visibility timeout; on a real clock a run would take minutes and its
 * order would depend on timing. Here the product still sends base64 JSON through `Storage#queue`,
 * but into an in-memory queue that honours `visibilityTimeout` in virtual seconds, counts dequeues
 * and poisons after five, like the Functions host. Tables stay real (ETag races are real).
 *
 * Crashes: the storage, its table clients and the CycleCloud client are wrapped so that the N-th
 * I/O step of one handler invocation throws, before or after the call took effect; from then on
 * every step of that invocation throws (the process is dead), and the message is not completed
 * whatever the handler returns — exactly what a worker dying between two steps leaves behind.
 */
import type { CycleCloudClient } from '../../src/cyclecloud/client.ts';
import type { Storage } from '../../src/platform/storage.ts';
import { decodeQueueMessage } from '../../src/platform/storage.ts';

/** A seeded PRNG (mulberry32): the whole run is a function of the seed. */
export { prng } from '../helpers/prng.ts';

export class VirtualClock {
  nowMs: number;
  constructor(startMs: number) {
    this.nowMs = startMs;
  }
  readonly now = (): number => this.nowMs;
  advanceTo(ms: number): void {
    if (ms > this.nowMs) this.nowMs = ms;
  }
}

/** Thrown by every wrapped step of an invocation chosen to crash. */
export class InjectedCrash extends Error {
  override name = 'InjectedCrash';
  readonly code = 'CHAOS_CRASH';
}

/** Decides, per handler invocation, at which I/O step the worker dies. */
export class CrashSwitch {
  #at = 0;
  #after = false;
  #count = 0;
  dead = false;
  /** Steps taken in the current invocation (for choosing crash points). */
  get steps(): number {
    return this.#count;
  }
  /** Arms a crash at step `at` (1-based) of the next invocation; 0 = no crash. */
  arm(at: number, after: boolean): void {
    this.#at = at;
    this.#after = after;
    this.#count = 0;
    this.dead = false;
  }
  disarm(): void {
    this.#at = 0;
    this.dead = false;
    this.#count = 0;
  }
  async step<T>(label: string, run: () => Promise<T>): Promise<T> {
    if (this.dead) throw new InjectedCrash(`worker already dead (${label})`);
    this.#count += 1;
    const hit = this.#at > 0 && this.#count === this.#at;
    if (hit && !this.#after) {
      this.dead = true;
      throw new InjectedCrash(`crash before ${label}`);
    }
    const result = await run();
    if (hit) {
      this.dead = true;
      throw new InjectedCrash(`crash after ${label}`);
    }
    return result;
  }
}

export interface VirtualMessage {
  seq: number;
  queue: string;
  text: string;
  visibleAtMs: number;
  dequeueCount: number;
}

/** In-memory queues with visibility delays in virtual time (see the file comment). */
export class VirtualQueues {
  readonly messages: VirtualMessage[] = [];
  readonly poisoned: VirtualMessage[] = [];
  #seq = 0;
  readonly #clock: VirtualClock;
  constructor(clock: VirtualClock) {
    this.#clock = clock;
  }
  send(queue: string, text: string, visibilityTimeoutSec = 0): VirtualMessage {
    const m: VirtualMessage = { seq: this.#seq++, queue, text, visibleAtMs: this.#clock.nowMs + visibilityTimeoutSec * 1000, dequeueCount: 0 };
    this.messages.push(m);
    return m;
  }
  remove(m: VirtualMessage): void {
    const i = this.messages.indexOf(m);
    if (i >= 0) this.messages.splice(i, 1);
  }
  visible(): VirtualMessage[] {
    return this.messages.filter((m) => m.visibleAtMs <= this.#clock.nowMs).sort((a, b) => a.visibleAtMs - b.visibleAtMs || a.seq - b.seq);
  }
  nextVisibleAtMs(): number {
    return this.messages.reduce((min, m) => Math.min(min, m.visibleAtMs), Infinity);
  }
  /** The queue client surface the product uses (`sendMessage`, `createIfNotExists`, `getProperties`). */
  client(queue: string, crash: CrashSwitch): unknown {
    return {
      name: queue,
      createIfNotExists: async () => ({ succeeded: false }),
      sendMessage: (text: string, options?: { visibilityTimeout?: number }) =>
        crash.step(`sendMessage ${queue}`, async () => {
          const m = this.send(queue, text, options?.visibilityTimeout ?? 0);
          return { messageId: `m${m.seq}`, popReceipt: 'p' };
        }),
      getProperties: async () => ({ approximateMessagesCount: this.messages.filter((m) => m.queue === queue).length }),
    };
  }
}

export function decodeBody(m: VirtualMessage): unknown {
  const text = decodeQueueMessage(m.text);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const TABLE_IO = new Set(['createEntity', 'getEntity', 'updateEntity', 'upsertEntity', 'deleteEntity', 'submitTransaction', 'listEntities']);

/** The real storage with virtual queues and crash points on every table call. */
export function chaosStorage(real: Storage, queues: VirtualQueues, crash: CrashSwitch): Storage {
  const tables = new Map<string, unknown>();
  const table = (name: string): unknown => {
    let t = tables.get(name);
    if (!t) {
      const client = real.table(name);
      t = new Proxy(client, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (typeof value !== 'function') return value;
          const fn = value as (...args: unknown[]) => unknown;
          if (typeof prop !== 'string' || !TABLE_IO.has(prop)) return fn.bind(target);
          if (prop === 'listEntities') {
            // A paged iterator: the crash point is taken when the listing starts.
            return (...args: unknown[]) => {
              const it = fn.apply(target, args) as AsyncIterable<unknown>;
              return {
                [Symbol.asyncIterator]: () => {
                  let inner: AsyncIterator<unknown> | undefined;
                  return {
                    next: async () => {
                      if (!inner)
                        await crash.step(`${prop} ${name}`, async () => {
                          inner = it[Symbol.asyncIterator]();
                        });
                      return inner!.next();
                    },
                  };
                },
              };
            };
          }
          return (...args: unknown[]) => crash.step(`${prop} ${name}`, () => fn.apply(target, args) as Promise<unknown>);
        },
      });
      tables.set(name, t);
    }
    return t;
  };
  const wrapped = {
    table,
    queue: (name: string) => queues.client(name, crash),
    ensure: async (names: { tables?: string[]; queues?: string[] }) => {
      await real.ensure({ tables: names.tables ?? [] });
    },
  };
  return wrapped as unknown as Storage;
}

/** The CycleCloud client with a crash point around every call (before: nothing sent; after: applied, answer lost). */
export function chaosCycleCloud(real: CycleCloudClient, crash: CrashSwitch): CycleCloudClient {
  return new Proxy(real, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      if (prop === 'close') return fn.bind(target);
      return (...args: unknown[]) => crash.step(`cyclecloud ${String(prop)}`, () => fn.apply(target, args));
    },
  });
}
