/**
 * Fault injection for the simulator's CycleCloud routes (never the `/__sim/` hooks).
 */

/** What a matching request suffers. */
export type FaultKind =
  /** Answer `status` (default 503) with a CycleCloud error body; nothing is applied. */
  | 'status'
  /** Answer 429 with `Retry-After: retryAfterSec` (default 1); nothing is applied. */
  | 'throttle'
  /** Wait `latencyMs` (default 1000), then handle the request normally. */
  | 'latency'
  /** Destroy the socket without an answer; nothing is applied. */
  | 'reset'
  /** Apply the request, then reset the connection (or answer `status` when given, e.g. 500). */
  | 'commit-then-fail';

export interface FaultSpec {
  /** HTTP method to match, case-insensitive. Default: any. */
  method?: string;
  /** A string matches when the path contains it (`'nodes/create'`); a RegExp is tested against the path. Default: any. */
  path?: string | RegExp;
  kind: FaultKind;
  status?: number;
  retryAfterSec?: number;
  latencyMs?: number;
  /** How many matching requests it affects. Default 1; `Infinity` for all. */
  times?: number;
}

/** An armed fault as listed by {@link FaultList.list}. */
export interface ArmedFault extends FaultSpec {
  remaining: number;
}

/** An ordered list of armed faults; the first match wins and uses one of its `times`. */
export class FaultList {
  #faults: ArmedFault[] = [];

  /** Arms a fault. */
  add(spec: FaultSpec): void {
    const times = spec.times ?? 1;
    if (!(times > 0)) throw new RangeError('times: must be > 0');
    this.#faults.push({ ...spec, remaining: times });
  }

  /** Disarms every fault. */
  clear(): void {
    this.#faults = [];
  }

  /** The armed faults, in match order. */
  list(): readonly ArmedFault[] {
    return this.#faults.map((f) => ({ ...f }));
  }

  /** The first fault matching the request, consuming one use; undefined when none matches. */
  take(method: string, path: string): ArmedFault | undefined {
    const index = this.#faults.findIndex(
      (f) =>
        (f.method === undefined || f.method.toUpperCase() === method.toUpperCase()) &&
        (f.path === undefined || (typeof f.path === 'string' ? path.includes(f.path) : f.path.test(path))),
    );
    if (index < 0) return undefined;
    const fault = this.#faults[index]!;
    fault.remaining--;
    if (fault.remaining <= 0) this.#faults.splice(index, 1);
    return { ...fault };
  }
}

/**
 * A fault on the cluster's nodes rather than on requests: `evict:<n>` has Azure evict the next n
 * Ready spot nodes (`Simulator.evictNext` in model.ts). Armed through the same `POST /__sim/faults`, as
 * `{"kind": "evict:3"}` or `{"kind": "evict", "count": 3}`.
 */
export interface EvictionFault {
  kind: 'evict';
  count: number;
}

/** `evict:<n>` (n a whole number ≥ 1) as an {@link EvictionFault}, or undefined for any other text. */
export function parseEvictionFault(text: string): EvictionFault | undefined {
  const m = /^evict:([1-9]\d{0,5})$/.exec(text);
  return m ? { kind: 'evict', count: Number(m[1]) } : undefined;
}
