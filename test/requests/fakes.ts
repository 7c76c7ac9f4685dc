/** Fakes for the request pipeline's unit tests: CycleCloud, tracker, queue, state, capacity. */
import type { CycleCloudApi, ListNodesOptions } from '../../src/cyclecloud/api.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import type { NodeCreationRequest, NodeCreationResult, NodeList, NodeManagementRequest, NodeManagementResult, NodeRecord } from '../../src/cyclecloud/schemas.ts';
import type { TerminateOrder, TerminateResult, TrackerApi, TrackStart } from '../../src/tracking/types.ts';
import { compensatePartialGangs, hasPartialGang, type CapacityFailureSink } from '../../src/tracking/partial-gangs.ts';
import { terminateAndTrack } from '../../src/tracking/terminate.ts';
import type { RequestLedgerApi } from '../../src/ledger/types.ts';
import { silentLogger } from '../../src/platform/log.ts';
import type { CapacityFailure, CapacityMemoryApi, QueueSender, ReservationsApi, SnapshotSource } from '../../src/requests/submit.ts';
import type { Reservation } from '../../src/requests/reservations.ts';
import type { IntakeState } from '../../src/requests/intake.ts';
import type { ClusterSnapshot } from '../../src/snapshots/model.ts';
import type { CapacityBackoff } from '../../src/planning/types.ts';

/** What the next create (or terminate) call suffers. */
export type Fault =
  | 'commit-then-fail' // applied, then a 5xx: ambiguous
  | 'lost' // a reset after sending that never reached CycleCloud: ambiguous, nothing applied
  | 'throttle' // 429 before anything happened
  | 'fleet-busy' // the fleet's governor refused before sending (no HTTP status): nothing happened
  | 'unavailable-before' // connection refused: not ambiguous
  | 'bad-request'; // CycleCloud refuses the request itself (400)

interface Op {
  id: string;
  requestId: string | undefined;
  action: string;
  names: string[];
}

/**
 * An in-memory CycleCloud with CycleCloud's idempotency rule (409 on a repeated requestId) and
 * request-id lookups. Not the simulator: just enough to drive every branch from a unit test.
 */
export class FakeCycleCloud implements CycleCloudApi {
  readonly nodes: NodeRecord[] = [];
  readonly ops = new Map<string, Op>();
  readonly byRequestId = new Map<string, string>();
  /** Every call: method + CycleCloud requestId when it had one. */
  readonly calls: { method: string; requestId?: string; body?: unknown }[] = [];
  /** Faults consumed one per create call (front first). */
  readonly createFaults: Fault[] = [];
  readonly terminateFaults: Fault[] = [];
  /** nodearray → how many nodes the next create of that nodearray adds at most (consumed). */
  readonly limitNext = new Map<string, number>();
  /** Errors thrown by the next listNodes calls (consumed). */
  readonly listFaults: CycleCloudError[] = [];
  /** Retry-After of a throttled create. */
  throttleRetryAfterMs = 1000;
  /**
   * CycleCloud removes a terminated nodearray node from its lists once it is gone; true: at once, so
   * a later look-up of the terminate (by request id or the full list) finds none of its nodes.
   */
  removeOnTerminate = false;
  #seq = 0;
  #counters = new Map<string, number>();

  /** Creates that CycleCloud applied (what exactly-once is about). */
  get appliedCreates(): number {
    return [...this.ops.values()].filter((o) => o.action === 'create').length;
  }

  async getClusterStatus(): Promise<never> {
    throw new Error('not used');
  }

  async listNodes(_cluster: string, options?: ListNodesOptions): Promise<NodeList> {
    this.calls.push({ method: 'listNodes', ...(options?.requestId ? { requestId: options.requestId } : {}) });
    const fault = this.listFaults.shift();
    if (fault) throw fault;
    let op: Op | undefined;
    if (options?.requestId) {
      const id = this.byRequestId.get(options.requestId);
      if (!id) throw new CycleCloudError('CC_NOT_FOUND', `No operation found for request id ${options.requestId}`, { status: 404 });
      op = this.ops.get(id);
    } else if (options?.operationId) {
      op = this.ops.get(options.operationId);
      if (!op) throw new CycleCloudError('CC_NOT_FOUND', 'no such operation', { status: 404 });
    }
    if (!op) return { nodes: structuredClone(this.nodes) };
    const names = new Set(op.names);
    // As documented: the operation is {action, startTime}; nothing names its id.
    return { nodes: structuredClone(this.nodes.filter((n) => names.has(n.Name))), operation: { action: op.action, startTime: new Date(0).toISOString() } };
  }

  async createNodes(_cluster: string, request: NodeCreationRequest): Promise<NodeCreationResult> {
    this.calls.push({ method: 'createNodes', ...(request.requestId ? { requestId: request.requestId } : {}), body: structuredClone(request) });
    const fault = this.createFaults.shift();
    if (fault === 'throttle') throw new CycleCloudError('CC_THROTTLED', 'HTTP 429', { status: 429, retryAfterMs: this.throttleRetryAfterMs });
    if (fault === 'fleet-busy') throw new CycleCloudError('CC_THROTTLED', '1 create(s) of cluster hpc are in flight across the fleet', { retryAfterMs: 2_000 });
    if (fault === 'unavailable-before') throw new CycleCloudError('CC_NETWORK', 'ECONNREFUSED', {});
    if (fault === 'lost') throw new CycleCloudError('CC_NETWORK', 'socket hang up (ECONNRESET)', { ambiguous: true });
    if (fault === 'bad-request') throw new CycleCloudError('CC_BAD_REQUEST', 'HTTP 400: MachineType Standard_X is not recognized', { status: 400 });
    if (request.requestId && this.byRequestId.has(request.requestId)) throw new CycleCloudError('CC_CONFLICT', 'HTTP 409', { status: 409 });
    const op = this.#op('create', request.requestId);
    const sets = request.sets.map((s) => {
      const limit = this.limitNext.get(s.nodearray);
      if (limit !== undefined) this.limitNext.delete(s.nodearray);
      const added = Math.min(s.count, limit ?? s.count);
      for (let i = 0; i < added; i++) {
        const n = (this.#counters.get(s.nodearray) ?? 0) + 1;
        this.#counters.set(s.nodearray, n);
        const name = `${s.nodearray}-${n}`;
        this.nodes.push({
          ...(s.nodeAttributes ?? {}),
          Name: name,
          NodeId: `id-${name}`,
          Template: s.nodearray,
          MachineType: s.definition?.machineType ?? 'unknown',
          Status: 'Acquiring',
          TargetState: 'Started',
          ...(s.placementGroupId ? { PlacementGroupId: s.placementGroupId } : {}),
        });
        op.names.push(name);
      }
      return added < s.count ? { added, message: `only ${added} could be added` } : { added };
    });
    if (fault === 'commit-then-fail') throw new CycleCloudError('CC_UNAVAILABLE', 'HTTP 502', { status: 502, ambiguous: true });
    return { operationId: op.id, sets };
  }

  async terminateNodes(_cluster: string, request: NodeManagementRequest): Promise<NodeManagementResult> {
    this.calls.push({ method: 'terminateNodes', ...(request.requestId ? { requestId: request.requestId } : {}), body: structuredClone(request) });
    const fault = this.terminateFaults.shift();
    if (fault === 'lost') throw new CycleCloudError('CC_NETWORK', 'socket hang up (ECONNRESET)', { ambiguous: true });
    if (fault === 'throttle') throw new CycleCloudError('CC_THROTTLED', 'HTTP 429', { status: 429 });
    if (request.requestId && this.byRequestId.has(request.requestId)) throw new CycleCloudError('CC_CONFLICT', 'HTTP 409', { status: 409 });
    const op = this.#op('terminate', request.requestId);
    const matched = this.nodes.filter(
      (n) =>
        request.names?.includes(n.Name) ||
        (n.NodeId && request.ids?.includes(n.NodeId)) ||
        (n.Hostname && request.hostnames?.includes(n.Hostname)) ||
        (n.PrivateIp && request.ip_addresses?.includes(n.PrivateIp)),
    );
    for (const n of matched) {
      n.Status = 'Terminating';
      n.TargetState = 'Terminated';
      op.names.push(n.Name);
    }
    if (this.removeOnTerminate) for (const n of matched) this.nodes.splice(this.nodes.indexOf(n), 1);
    if (fault === 'commit-then-fail') throw new CycleCloudError('CC_UNAVAILABLE', 'HTTP 502', { status: 502, ambiguous: true });
    return { operationId: op.id, nodes: matched.map((n) => ({ id: n.NodeId!, name: n.Name, status: 'OK' as const })) };
  }

  #op(action: string, requestId: string | undefined): Op {
    const op: Op = { id: `op-${++this.#seq}`, requestId, action, names: [] };
    this.ops.set(op.id, op);
    if (requestId) this.byRequestId.set(requestId, op.id);
    return op;
  }

  deallocateNodes = this.#unused;
  shutdownNodes = this.#unused;
  startNodes = this.#unused;
  removeNodes = this.#unused;
  async scaleNodearray(): Promise<never> {
    throw new Error('not used');
  }
  async getOperation(): Promise<never> {
    throw new Error('not used');
  }
  async findOperationByRequestId(requestId: string) {
    const id = this.byRequestId.get(requestId);
    return id ? { action: this.ops.get(id)!.action, startTime: new Date(0).toISOString() } : null;
  }
  async #unused(): Promise<never> {
    throw new Error('not used');
  }
}

/** A tracker that records what it was asked to follow. */
/** What a {@link FakeTracker} needs to act like the real one when a create is partial or a terminate is sent. */
export interface FakeTrackerDeps {
  cyclecloud: CycleCloudApi;
  ledger: RequestLedgerApi;
  capacity?: CapacityFailureSink;
  now?: () => number;
  /** Default 3 (`MAX_REPLAN_ATTEMPTS`). */
  maxReplanAttempts?: number;
}

/**
 * Records every start and never polls. Like the real tracker (same code: `partial-gangs.ts`,
 * `terminate.ts`), it compensates a create's partial colocated sets when it takes the create over,
 * and sends terminates through the one terminate path; both need {@link FakeTrackerDeps}.
 */
export class FakeTracker implements TrackerApi {
  readonly starts: TrackStart[] = [];
  failNext = 0;
  readonly #deps: FakeTrackerDeps | undefined;
  constructor(deps?: FakeTrackerDeps) {
    this.#deps = deps;
  }
  async start(t: TrackStart): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('tracker table unavailable');
    }
    this.starts.push(structuredClone(t));
    if (t.action !== 'create' || !hasPartialGang(t)) return;
    const d = this.need('compensate a partial gang');
    await compensatePartialGangs(
      {
        cyclecloud: d.cyclecloud,
        ledger: d.ledger,
        capacity: d.capacity,
        now: d.now ?? Date.now,
        maxReplanAttempts: d.maxReplanAttempts ?? 3,
        terminate: (o) => this.terminate(o),
      },
      t,
      silentLogger,
    );
  }
  terminate(order: TerminateOrder): Promise<TerminateResult> {
    return terminateAndTrack(this.need('send a terminate').cyclecloud, (t) => this.start(t), order);
  }
  private need(what: string): FakeTrackerDeps {
    if (!this.#deps) throw new Error(`FakeTracker: give it FakeTrackerDeps to ${what}`);
    return this.#deps;
  }
}

export class FakeQueue implements QueueSender {
  readonly sent: { body: unknown; visibilityDelayMs: number | undefined }[] = [];
  async send(body: unknown, options?: { visibilityDelayMs?: number }): Promise<void> {
    this.sent.push({ body: structuredClone(body), visibilityDelayMs: options?.visibilityDelayMs });
  }
}

export class FakeState implements IntakeState {
  paused = false;
  readonly counts: Record<string, number> = {};
  async isPaused(): Promise<boolean> {
    return this.paused;
  }
  async increment(counter: string): Promise<number> {
    this.counts[counter] = (this.counts[counter] ?? 0) + 1;
    return this.counts[counter]!;
  }
}

export class FakeCapacity implements CapacityMemoryApi {
  readonly failures: CapacityFailure[] = [];
  /** How long a recorded failure keeps its bucket in backoff (0 = never, the default). */
  backoffMs = 0;
  active(_cluster: string, nowMs: number): CapacityBackoff[] {
    return this.failures
      .filter((f) => (f.failedAtMs ?? 0) + this.backoffMs > nowMs)
      .map((f) => ({ nodearray: f.nodearray, machineType: f.machineType, untilMs: (f.failedAtMs ?? 0) + this.backoffMs, reason: f.reason }));
  }
  recordFailure(f: CapacityFailure): void {
    this.failures.push(f);
  }
}

/** Always answers `snapshot()` (taken "now" by default). */
export function fixedSnapshots(snapshot: () => ClusterSnapshot | null): SnapshotSource & { calls: number } {
  const source = {
    calls: 0,
    async getFresh() {
      source.calls++;
      return snapshot();
    },
  };
  return source;
}

/** In-memory capacity reservations (one process: a read and its write never interleave with another). */
export class MemoryReservations implements ReservationsApi {
  readonly items = new Map<string, Reservation[]>();
  async reserve<T>(cluster: string, plan: (items: readonly Reservation[]) => { reservation: Reservation | null; result: T }): Promise<T> {
    return this.reserveMany(cluster, (items) => {
      const p = plan(items);
      return { reservations: p.reservation ? [p.reservation] : [], result: p.result };
    });
  }
  async reserveMany<T>(cluster: string, plan: (items: readonly Reservation[]) => { reservations: Reservation[]; result: T }): Promise<T> {
    const items = this.items.get(cluster) ?? [];
    const p = plan(structuredClone(items));
    const ids = new Set(p.reservations.map((r) => r.cycleCloudRequestId));
    if (ids.size > 0) this.items.set(cluster, [...items.filter((x) => !ids.has(x.cycleCloudRequestId)), ...p.reservations]);
    return p.result;
  }
  async accepted(cluster: string, cycleCloudRequestId: string, added: number[], atMs: number): Promise<void> {
    await this.acceptedMany(cluster, [{ cycleCloudRequestId, added }], atMs);
  }
  async acceptedMany(cluster: string, answers: readonly { cycleCloudRequestId: string; added: number[] }[], atMs: number): Promise<void> {
    for (const a of answers) {
      const r = (this.items.get(cluster) ?? []).find((x) => x.cycleCloudRequestId === a.cycleCloudRequestId);
      if (!r || r.acceptedAtMs !== undefined) continue;
      r.acceptedAtMs = atMs;
      r.sets = r.sets.map((s, i) => ({ ...s, count: a.added[i] ?? 0 }));
    }
  }
  async release(cluster: string, cycleCloudRequestId: string | readonly string[]): Promise<void> {
    const ids = new Set(typeof cycleCloudRequestId === 'string' ? [cycleCloudRequestId] : cycleCloudRequestId);
    this.items.set(
      cluster,
      (this.items.get(cluster) ?? []).filter((x) => !ids.has(x.cycleCloudRequestId)),
    );
  }
}
