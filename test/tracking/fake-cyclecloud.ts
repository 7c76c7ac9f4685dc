/**
 * A scripted CycleCloud for tracker tests: nodes per operation whose Status the test sets, a call
 * log, terminate with request-id idempotency (409 on a repeat, findable by request id), and
 * optional faults per method.
 */
import type { CycleCloudApi, ListNodesOptions } from '../../src/cyclecloud/api.ts';
import { CycleCloudError } from '../../src/cyclecloud/errors.ts';
import { CREATE_TAG, REQUEST_TAG } from '../../src/cyclecloud/tags.ts';
import type { NodeList, NodeManagementRequest, NodeManagementResult, NodeRecord } from '../../src/cyclecloud/schemas.ts';

const notUsed = async (): Promise<never> => {
  throw new Error('not used by the tracker');
};

export class FakeCycleCloud implements CycleCloudApi {
  readonly nodes = new Map<string, NodeRecord>();
  readonly operations = new Map<string, { action: string; requestId?: string; names: string[] }>();
  readonly calls: { method: string; operationId?: string; names?: string[]; requestId?: string }[] = [];
  /** Errors thrown by the next calls of a method, in order. */
  readonly faults: Record<string, CycleCloudError[]> = {};
  /** Delay of every listNodes answer (to hold two polls in flight at once). */
  listDelayMs = 0;
  /**
   * The CycleCloud requestId a create operation was sent under: its nodes carry it in the scaler's
   * `ccscale-create` tag, as real creates do (src/cyclecloud/tags.ts). Tests set it once known.
   */
  requestIdOf: (operationId: string) => string | undefined = () => undefined;
  #seq = 0;

  /** Registers a create operation with nodes in `status`. */
  addCreate(operationId: string, nodes: Partial<NodeRecord>[]): void {
    const names: string[] = [];
    for (const n of nodes) {
      const name = n.Name ?? `ondemand-${this.nodes.size + 1}`;
      this.nodes.set(name, { Name: name, NodeId: `id-${name}`, Template: 'ondemand', MachineType: 'Standard_F32s_v2', Status: 'Acquiring', ...n });
      names.push(name);
    }
    this.operations.set(operationId, { action: 'create', names });
  }

  set(name: string, patch: Partial<NodeRecord>): void {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    Object.assign(n, patch);
  }

  remove(name: string): void {
    this.nodes.delete(name);
  }

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }

  #fault(method: string): void {
    const e = this.faults[method]?.shift();
    if (e) throw e;
  }

  async listNodes(_cluster: string, options?: ListNodesOptions): Promise<NodeList> {
    this.calls.push({ method: 'listNodes', ...(options?.operationId ? { operationId: options.operationId } : {}) });
    if (this.listDelayMs) await new Promise((r) => setTimeout(r, this.listDelayMs));
    this.#fault('listNodes');
    const op = options?.operationId ? this.operations.get(options.operationId) : undefined;
    if (options?.operationId && !op) throw new CycleCloudError('CC_NOT_FOUND', 'no such operation', { status: 404 });
    const names = op ? op.names : [...this.nodes.keys()];
    const createOf = new Map<string, string>();
    for (const [id, o] of this.operations) {
      const cc = o.action === 'create' ? this.requestIdOf(id) : undefined;
      if (cc) for (const n of o.names) createOf.set(n, cc);
    }
    return {
      nodes: names.flatMap((n) => {
        if (!this.nodes.has(n)) return [];
        const node = structuredClone(this.nodes.get(n)!);
        const cc = createOf.get(n);
        return [cc && !node.Tags ? { ...node, Tags: { [REQUEST_TAG]: 'fake', [CREATE_TAG]: cc } } : node];
      }),
    };
  }

  async terminateNodes(_cluster: string, request: NodeManagementRequest): Promise<NodeManagementResult> {
    // Targets by NodeId are resolved to the names they hold now (what the assertions compare).
    const byId = [...this.nodes.values()].filter((n) => n.NodeId && request.ids?.includes(n.NodeId)).map((n) => n.Name);
    const targets = [...(request.names ?? []), ...byId].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    this.calls.push({ method: 'terminateNodes', names: targets, ...(request.requestId ? { requestId: request.requestId } : {}) });
    this.#fault('terminateNodes');
    if (request.requestId && [...this.operations.values()].some((o) => o.requestId === request.requestId)) {
      throw new CycleCloudError('CC_CONFLICT', 'request id already used', { status: 409 });
    }
    const operationId = `term-${++this.#seq}`;
    const names = targets.filter((n) => this.nodes.has(n));
    for (const n of names) this.set(n, { Status: 'Terminating', TargetState: 'Terminated' });
    this.operations.set(operationId, { action: 'terminate', ...(request.requestId ? { requestId: request.requestId } : {}), names });
    return { operationId, nodes: names.map((n) => ({ id: `id-${n}`, name: n, status: 'OK' as const })) };
  }

  async findOperationByRequestId(requestId: string): Promise<{ action: string; startTime: string; operationId?: string } | null> {
    this.calls.push({ method: 'findOperationByRequestId', requestId });
    // As documented: {action, startTime}, no operation id.
    for (const o of this.operations.values()) if (o.requestId === requestId) return { action: o.action, startTime: new Date(0).toISOString() };
    return null;
  }

  // Not used by the tracker: calling one is a test bug.
  getClusterStatus = notUsed;
  createNodes = notUsed;
  deallocateNodes = notUsed;
  shutdownNodes = notUsed;
  startNodes = notUsed;
  removeNodes = notUsed;
  scaleNodearray = notUsed;
  getOperation = notUsed;
}
