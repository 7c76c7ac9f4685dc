/**
 * The simulator's in-memory CycleCloud: clusters → nodearrays → buckets → nodes, operations and
 * request ids, with the capacity accounting, bucket selection, placement groups, naming and node
 * lifecycle of reference/cyclecloud-rest-api.md §5–6. Usable directly in tests; the HTTP server in
 * `server.ts` is a thin layer over it.
 *
 * Node states are computed lazily from timestamps: every read first "settles" the nodes up to
 * `now()`, advancing one lifecycle step per elapsed `stepMs`. No timers run, so nothing keeps the
 * process alive, and a test with an injected clock is fully deterministic.
 */
import { randomUUID } from 'node:crypto';
import type {
  ClusterNodearrayStatus,
  ClusterStatus,
  NodeCreationRequest,
  NodeCreationRequestSet,
  NodeCreationResult,
  NodeList,
  NodeManagementRequest,
  NodeManagementResult,
  NodearrayBucketStatus,
  NodeRecord,
} from '../cyclecloud/schemas.ts';
import { ScalerError } from '../platform/errors.ts';
import { FaultList } from './faults.ts';
import { compileFilter, FilterSyntaxError } from './filter.ts';

/** One machine type of a nodearray. */
export interface BucketSpec {
  machineType: string;
  vcpuCount: number;
  /** GB. */
  memory: number;
  infiniband: boolean;
  /** Default 0. */
  gpuCount?: number;
  /** vCPUs counted against quota per VM. Default `vcpuCount`. */
  vcpuQuotaCount?: number;
  /** VM family: buckets of the same family (cluster-wide) share `consumedCoreCount`. Default the machine type. */
  family?: string;
  /** Family quota in the region, in cores. */
  quotaCoreCount: number;
  /** Cores of this family already used outside the simulated cluster. Default 0. */
  consumedCoreCount?: number;
  /** Nodes per placement group (`Azure.MaxScaleSetSize`). Default 40. */
  maxPlacementGroupSize?: number;
  /** Default true. */
  valid?: boolean;
  invalidReason?: string;
  /** Default: a random uuid. */
  bucketId?: string;
  /** `ThrottleCapacityTime` in seconds: how long a capacity failure reports 0 available. Default 300. */
  throttleCapacitySec?: number;
}

export interface NodearraySpec {
  name: string;
  maxCount: number;
  maxCoreCount: number;
  buckets: BucketSpec[];
  /** Extra nodearray attributes (template attributes such as `ShutdownPolicy`, `KeepAlive`, `Configuration`). */
  attributes?: Record<string, unknown>;
  /** Spot: the nodearray record and its node records say `Interruptible: true`; {@link Simulator.evictNext} evicts its nodes. Default false. */
  interruptible?: boolean;
}

export interface ClusterSpec {
  name: string;
  maxCount: number;
  maxCoreCount: number;
  /** Default `Started`. */
  state?: string;
  /** Default `westeurope`. */
  region?: string;
  nodearrays: NodearraySpec[];
}

/**
 * The default cluster `hpc`: the seed's nodearray `ondemand` (its status numbers are reproduced
 * exactly), an InfiniBand nodearray `mpi` whose placement groups hold at most 4 nodes, a spot
 * nodearray `spot` of 8 nodes, and last a GPU nodearray `gpu` of 4 one-GPU nodes (these two last, so
 * that first-fit over the cluster finds the others first).
 */
export function defaultClusters(): ClusterSpec[] {
  return [
    {
      name: 'hpc',
      maxCount: 100,
      maxCoreCount: 10_000,
      state: 'Started',
      nodearrays: [
        {
          name: 'ondemand',
          maxCount: 100,
          maxCoreCount: 500,
          buckets: [
            {
              bucketId: 'cd56af52-abcd-1234-a4e7-e6a91ca519a2',
              machineType: 'Standard_F32s_v2',
              family: 'standardFSv2Family',
              vcpuCount: 32,
              memory: 64,
              infiniband: false,
              quotaCoreCount: 100,
              consumedCoreCount: 0,
              maxPlacementGroupSize: 40,
            },
            {
              bucketId: 'd81e001a-abcd-1234-9754-79815cb7b225',
              machineType: 'Standard_HC44rs',
              family: 'standardHCSFamily',
              vcpuCount: 44,
              memory: 327.83,
              infiniband: true,
              quotaCoreCount: 8800,
              consumedCoreCount: 44,
              maxPlacementGroupSize: 40,
            },
          ],
        },
        {
          name: 'mpi',
          maxCount: 64,
          maxCoreCount: 64 * 120,
          buckets: [
            {
              bucketId: 'e0a1c3d5-abcd-1234-8f00-0123456789ab',
              machineType: 'Standard_HB120rs_v3',
              family: 'standardHBv3Family',
              vcpuCount: 120,
              memory: 456,
              infiniband: true,
              quotaCoreCount: 64 * 120,
              consumedCoreCount: 0,
              maxPlacementGroupSize: 4,
            },
          ],
        },
        {
          name: 'spot',
          maxCount: 8,
          maxCoreCount: 8 * 32,
          interruptible: true,
          buckets: [
            {
              bucketId: 'f5b0e7c1-abcd-1234-9c3d-5a0f7e2b9d41',
              machineType: 'Standard_F32s_v2',
              // Azure counts spot cores against the region's low-priority quota, not the family's.
              family: 'lowPriority',
              vcpuCount: 32,
              memory: 64,
              infiniband: false,
              quotaCoreCount: 8 * 32,
              consumedCoreCount: 0,
              maxPlacementGroupSize: 40,
            },
          ],
        },
        {
          name: 'gpu',
          maxCount: 4,
          maxCoreCount: 4 * 24,
          buckets: [
            {
              bucketId: 'a7c2d9e4-abcd-1234-b1a0-3c5d7e9f1b2d',
              // One NVIDIA A100 per VM (virtualMachine.gpuCount 1): 24 vCPUs, 220 GiB.
              machineType: 'Standard_NC24ads_A100_v4',
              family: 'standardNCADSA100v4Family',
              vcpuCount: 24,
              memory: 220,
              infiniband: false,
              gpuCount: 1,
              quotaCoreCount: 4 * 24,
              consumedCoreCount: 0,
              maxPlacementGroupSize: 40,
            },
          ],
        },
      ],
    },
  ];
}

/** Stable codes of {@link SimulatorError}. */
export type SimulatorErrorCode = 'SIM_NOT_FOUND' | 'SIM_BAD_REQUEST' | 'SIM_INVALID_ATTRIBUTE' | 'SIM_DUPLICATE_REQUEST' | 'SIM_NO_OPERATION';

const EXCEPTION: Record<SimulatorErrorCode, string> = {
  SIM_NOT_FOUND: 'com.cyclecomputing.cloud.exceptions.NotFoundException',
  SIM_BAD_REQUEST: 'com.cyclecomputing.cloud.exceptions.InvalidRequestException',
  SIM_INVALID_ATTRIBUTE: 'com.cyclecomputing.cloud.exceptions.InvalidAttributeException',
  SIM_DUPLICATE_REQUEST: 'com.cyclecomputing.cloud.exceptions.DuplicateRequestException',
  SIM_NO_OPERATION: 'com.cyclecomputing.cloud.exceptions.NotFoundException',
};
const STATUS: Record<SimulatorErrorCode, number> = {
  SIM_NOT_FOUND: 404,
  SIM_BAD_REQUEST: 400,
  SIM_INVALID_ATTRIBUTE: 400,
  SIM_DUPLICATE_REQUEST: 409,
  SIM_NO_OPERATION: 404,
};

/** A request the simulated CycleCloud refuses; `status` and `exception` are what the server answers. */
export class SimulatorError extends ScalerError<SimulatorErrorCode> {
  override readonly name = 'SimulatorError';
  readonly status: number;
  readonly exception: string;
  constructor(code: SimulatorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = STATUS[code];
    this.exception = EXCEPTION[code];
  }
}

/** One logged HTTP call (the CycleCloud routes only, not `/__sim/`). */
export interface CallRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  /** 0 when the connection was reset without an answer. */
  status: number;
  body?: unknown;
  atMs: number;
}

/** An operation as the test hooks show it. */
export interface OperationView {
  operationId: string;
  cluster: string;
  action: string;
  startTime: string;
  requestId?: string;
  nodeIds: string[];
}

export interface SimulatorModelOptions {
  /** Default {@link defaultClusters}. */
  clusters?: ClusterSpec[];
  /** Duration of each lifecycle step. Default 1000. */
  stepMs?: number;
  /** Clock. Default `Date.now`. */
  now?: () => number;
  /**
   * Adds an `operationId` to the elements of `GET /operations/` and `GET /operations/{id}`. The
   * reference documents OperationStatus as `{action, startTime}` only (§3.10); this convenience is
   * off by default and the product must never need it. Default false.
   */
  undocumentedOperationIds?: boolean;
  /**
   * How long CycleCloud remembers a request id (§5.1 leaves it open). After that, lookups by
   * `request_id` answer 404 "No operation found for request id" and a create with that id is no
   * longer refused with 409. Default: for ever.
   */
  requestIdRetentionMs?: number;
  /**
   * Node lists (`GET /clusters/{c}/nodes`, with or without a filter, and the status's `nodes`) omit
   * nodes created less than this long ago, and a lookup by request id of an operation that young
   * answers 404, as a CycleCloud whose lists lag behind a create would. Bucket counts do not lag.
   * Default 0.
   */
  listLagMs?: number;
}

/** The management endpoints (E4–E10). */
export type ManagementAction = 'terminate' | 'deallocate' | 'shutdown' | 'start' | 'remove' | 'restart' | 'reimage';
export const MANAGEMENT_ACTIONS: readonly ManagementAction[] = ['terminate', 'deallocate', 'shutdown', 'start', 'remove', 'restart', 'reimage'];

type Flow = 'acquiring' | 'preparing' | 'terminating' | 'deallocating';

interface Bucket {
  spec: Required<Pick<BucketSpec, 'gpuCount' | 'family' | 'consumedCoreCount' | 'maxPlacementGroupSize' | 'valid' | 'bucketId' | 'throttleCapacitySec'>> & BucketSpec;
  lastCapacityFailureAtMs: number | undefined;
  throttleUntilAtMs: number;
  /** The throttle of the last capacity failure, for messages. */
  throttleSec: number;
  limitNextCreate: number | undefined;
}

interface Nodearray {
  spec: NodearraySpec;
  buckets: Bucket[];
}

interface SimNode {
  record: Record<string, unknown> & { Name: string; NodeId: string };
  nodearray: Nodearray;
  bucket: Bucket;
  flow: Flow | undefined;
  stepAtMs: number;
  held: boolean;
  failOnBoot: string | undefined;
  createdAtMs: number;
}

interface Cluster {
  spec: ClusterSpec;
  nodearrays: Nodearray[];
  /** By name, in creation order. */
  nodes: Map<string, SimNode>;
  failNext: { remaining: number; message: string } | undefined;
  /** Spot nodes still to evict as they are (or become) Ready. */
  evictNext: { remaining: number; message: string } | undefined;
}

interface Operation {
  id: string;
  cluster: string;
  action: string;
  startAtMs: number;
  requestId: string | undefined;
  nodeIds: string[];
}

/** The simulated `StatusMessage` of an evicted spot node, worded like Azure's eviction notice. */
export const EVICTION_MESSAGE = 'The VM was evicted: Azure Spot capacity was reclaimed (preempted)';

/** Statuses in which a node holds no VM, so it counts against no limit. */
const INACTIVE = new Set(['Off', 'Deallocated', 'Terminated']);
const MAX_CALLS = 10_000;

function lower(s: string): string {
  return s.toLowerCase();
}

interface Activity {
  count: number;
  cores: number;
}

/** Counts of active nodes per cluster, nodearray, bucket, family and placement group. */
interface ClusterActivity {
  cluster: Activity;
  nodearray: Map<Nodearray, Activity>;
  bucket: Map<Bucket, Activity & { names: string[]; groups: Map<string, Activity> }>;
  familyQuotaCores: Map<string, number>;
}

/** Bucket capacity as `status` reports it (§5.7). */
interface Capacity {
  quotaCount: number;
  maxCount: number;
  activeCount: number;
  activeCoreCount: number;
  availableCount: number;
  consumedCoreCount: number;
  throttled: boolean;
}

/**
 * The simulated CycleCloud: the operations behind each REST route (throwing {@link SimulatorError}
 * for what the server refuses) and the test hooks (faults, failing/holding nodes, capacity
 * failures, partial creates, bucket changes, the call log).
 */
export class Simulator {
  /** Armed faults for the HTTP routes. */
  readonly faults = new FaultList();
  /** Every CycleCloud HTTP call, oldest first (the latest 10,000). */
  readonly calls: CallRecord[] = [];
  /**
   * Test aid: every node's life on the simulator's clock, by NodeId: created (the create's answer)
   * until terminated and removed, or Off/Deallocated. What a VM is billed for, as tests measure cost.
   */
  readonly lifetimes = new Map<string, { name: string; cluster: string; machineType: string; createdAtMs: number; endedAtMs?: number }>();
  readonly stepMs: number;
  readonly now: () => number;
  #clusters = new Map<string, Cluster>();
  #operations = new Map<string, Operation>();
  /** Test hook: each node's Tags as its create asked, kept after the node is removed. */
  #tagsAtCreation = new Map<string, Record<string, unknown>>();
  #requestIds = new Map<string, string>();
  #ipCounter = 4;
  readonly #undocumentedOperationIds: boolean;
  /** Mutable through {@link Simulator.setDocumentationGaps}. */
  requestIdRetentionMs: number;
  listLagMs: number;

  constructor(options: SimulatorModelOptions = {}) {
    this.stepMs = options.stepMs ?? 1000;
    this.now = options.now ?? Date.now;
    if (!(this.stepMs >= 0)) throw new RangeError('stepMs: must be ≥ 0');
    this.#undocumentedOperationIds = options.undocumentedOperationIds ?? false;
    this.requestIdRetentionMs = options.requestIdRetentionMs ?? Infinity;
    this.listLagMs = options.listLagMs ?? 0;
    for (const spec of options.clusters ?? defaultClusters()) {
      this.#clusters.set(spec.name, {
        spec,
        nodearrays: spec.nodearrays.map((na) => ({ spec: na, buckets: na.buckets.map((b) => this.#bucket(b)) })),
        nodes: new Map(),
        failNext: undefined,
        evictNext: undefined,
      });
    }
  }

  #bucket(b: BucketSpec): Bucket {
    return {
      spec: {
        gpuCount: 0,
        family: b.machineType,
        consumedCoreCount: 0,
        maxPlacementGroupSize: 40,
        valid: true,
        bucketId: randomUUID(),
        throttleCapacitySec: 300,
        ...b,
      },
      lastCapacityFailureAtMs: undefined,
      throttleUntilAtMs: 0,
      throttleSec: 0,
      limitNextCreate: undefined,
    };
  }

  /** Cluster names, in definition order. */
  clusterNames(): string[] {
    return [...this.#clusters.keys()];
  }

  /** Records the call in {@link calls}, keeping the latest 10,000. */
  recordCall(call: CallRecord): void {
    this.calls.push(call);
    if (this.calls.length > MAX_CALLS) this.calls.splice(0, this.calls.length - MAX_CALLS);
  }

  // ---------------------------------------------------------------- lookups

  #cluster(name: string): Cluster {
    const cluster = this.#clusters.get(name);
    if (!cluster) throw new SimulatorError('SIM_NOT_FOUND', `Cluster ${name} was not found`);
    this.#settle(cluster);
    return cluster;
  }

  #nodearray(cluster: Cluster, name: string): Nodearray {
    const na = cluster.nodearrays.find((n) => n.spec.name === name);
    if (!na) throw new SimulatorError('SIM_INVALID_ATTRIBUTE', `Nodearray ${name} is not recognized in cluster ${cluster.spec.name}`);
    return na;
  }

  #bucketOf(na: Nodearray, machineType: string): Bucket {
    const b = na.buckets.find((x) => lower(x.spec.machineType) === lower(machineType));
    if (!b) throw new SimulatorError('SIM_INVALID_ATTRIBUTE', `MachineType ${machineType} is not recognized`);
    return b;
  }

  #node(cluster: Cluster, name: string): SimNode {
    const node = cluster.nodes.get(name);
    if (!node) throw new SimulatorError('SIM_NOT_FOUND', `Node ${name} was not found in cluster ${cluster.spec.name}`);
    return node;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Advances every node by the lifecycle steps that have elapsed, then evicts what {@link evictNext} armed. */
  #settle(cluster: Cluster): void {
    const now = this.now();
    for (const node of [...cluster.nodes.values()]) {
      while (node.flow !== undefined && !node.held && now - node.stepAtMs >= this.stepMs) {
        node.stepAtMs += this.stepMs;
        this.#advance(cluster, node);
      }
    }
    const evict = cluster.evictNext;
    if (evict === undefined) return;
    for (const node of cluster.nodes.values()) {
      if (evict.remaining === 0) break;
      if (node.nodearray.spec.interruptible !== true || node.record.Status !== 'Ready') continue;
      // UNCONFIRMED (docs/cyclecloud.md): what CycleCloud shows once Azure has evicted the VM.
      Object.assign(node.record, { Status: 'Failed', State: 'Failed', StatusMessage: evict.message });
      evict.remaining--;
    }
    if (evict.remaining === 0) cluster.evictNext = undefined;
  }

  /** A node's VM is gone (terminated, or deallocated) at `atMs`: its lifetime ends, once. */
  #ended(r: NodeRecord, atMs: number): void {
    const life = this.lifetimes.get(r.NodeId as string);
    if (life && life.endedAtMs === undefined) life.endedAtMs = atMs;
  }

  #advance(cluster: Cluster, node: SimNode): void {
    const r = node.record;
    switch (node.flow) {
      case 'acquiring':
        if (node.failOnBoot !== undefined) {
          Object.assign(r, { Status: 'Failed', State: 'Failed', StatusMessage: node.failOnBoot });
          node.flow = undefined;
          return;
        }
        if (r.PrivateIp === undefined) this.#assignVm(cluster, node);
        Object.assign(r, { Status: 'Preparing', State: 'Configuration' });
        node.flow = 'preparing';
        return;
      case 'preparing':
        Object.assign(r, { Status: 'Ready', State: 'Started' });
        node.flow = undefined;
        return;
      case 'terminating':
        this.#ended(r, node.stepAtMs);
        if (r.Fixed === true) {
          Object.assign(r, { Status: 'Off', State: 'Terminated' });
          delete r.PrivateIp;
          delete r.InstanceId;
        } else {
          cluster.nodes.delete(r.Name);
        }
        node.flow = undefined;
        return;
      case 'deallocating':
        this.#ended(r, node.stepAtMs);
        Object.assign(r, { Status: 'Deallocated', State: 'Deallocated' });
        node.flow = undefined;
        return;
      default:
        node.flow = undefined;
    }
  }

  #assignVm(cluster: Cluster, node: SimNode): void {
    const n = this.#ipCounter++;
    const octets = [10, 1 + (n >> 16), (n >> 8) & 255, n & 255];
    const ip = octets.join('.');
    node.record.PrivateIp = ip;
    node.record.Hostname = `ip-${octets.map((o) => o.toString(16).padStart(2, '0').toUpperCase()).join('')}`;
    node.record.InstanceId = `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${cluster.spec.name}/providers/Microsoft.Compute/virtualMachines/${node.record.Name}-${node.record.NodeId.slice(0, 8)}`;
  }

  #boot(node: SimNode, from: 'acquiring' | 'preparing'): void {
    Object.assign(node.record, { Status: from === 'acquiring' ? 'Acquiring' : 'Preparing', TargetState: 'Started', State: from === 'acquiring' ? 'Allocation' : 'Configuration' });
    delete node.record.StatusMessage;
    node.flow = from;
    node.stepAtMs = this.now();
    node.held = false;
  }

  // ---------------------------------------------------------------- capacity

  #activity(cluster: Cluster): ClusterActivity {
    const result: ClusterActivity = { cluster: { count: 0, cores: 0 }, nodearray: new Map(), bucket: new Map(), familyQuotaCores: new Map() };
    for (const na of cluster.nodearrays) {
      result.nodearray.set(na, { count: 0, cores: 0 });
      for (const b of na.buckets) result.bucket.set(b, { count: 0, cores: 0, names: [], groups: new Map() });
    }
    for (const node of cluster.nodes.values()) {
      if (INACTIVE.has(String(node.record.Status))) continue;
      const cores = node.bucket.spec.vcpuCount;
      result.cluster.count++;
      result.cluster.cores += cores;
      const na = result.nodearray.get(node.nodearray)!;
      na.count++;
      na.cores += cores;
      const b = result.bucket.get(node.bucket)!;
      b.count++;
      b.cores += cores;
      b.names.push(node.record.Name);
      const pg = node.record.PlacementGroupId;
      if (typeof pg === 'string') {
        const g = b.groups.get(pg) ?? { count: 0, cores: 0 };
        g.count++;
        g.cores += cores;
        b.groups.set(pg, g);
      }
      const family = node.bucket.spec.family;
      result.familyQuotaCores.set(family, (result.familyQuotaCores.get(family) ?? 0) + (node.bucket.spec.vcpuQuotaCount ?? cores));
    }
    return result;
  }

  #capacity(cluster: Cluster, na: Nodearray, bucket: Bucket, activity: ClusterActivity): Capacity {
    const s = bucket.spec;
    const vcpu = s.vcpuCount;
    const quotaVcpu = s.vcpuQuotaCount ?? vcpu;
    const quotaCount = Math.floor(s.quotaCoreCount / quotaVcpu);
    const maxCount = Math.max(
      0,
      Math.min(na.spec.maxCount, Math.floor(na.spec.maxCoreCount / vcpu), cluster.spec.maxCount, Math.floor(cluster.spec.maxCoreCount / vcpu), quotaCount),
    );
    const b = activity.bucket.get(bucket)!;
    const a = activity.nodearray.get(na)!;
    const c = activity.cluster;
    const consumedCoreCount = s.consumedCoreCount + (activity.familyQuotaCores.get(s.family) ?? 0);
    const throttled = this.now() < bucket.throttleUntilAtMs;
    const availableCount =
      throttled || !s.valid
        ? 0
        : Math.max(
            0,
            Math.min(
              maxCount - b.count,
              na.spec.maxCount - a.count,
              Math.floor((na.spec.maxCoreCount - a.cores) / vcpu),
              cluster.spec.maxCount - c.count,
              Math.floor((cluster.spec.maxCoreCount - c.cores) / vcpu),
              Math.floor((s.quotaCoreCount - consumedCoreCount) / quotaVcpu),
            ),
          );
    return { quotaCount, maxCount, activeCount: b.count, activeCoreCount: b.cores, availableCount, consumedCoreCount, throttled };
  }

  // ---------------------------------------------------------------- E1 status

  /** `GET /clusters/{c}/status`. */
  status(clusterName: string, options: { nodes?: boolean } = {}): ClusterStatus {
    const cluster = this.#cluster(clusterName);
    const activity = this.#activity(cluster);
    const now = this.now();
    const nodearrays: ClusterNodearrayStatus[] = cluster.nodearrays.map((na) => ({
      name: na.spec.name,
      maxCount: na.spec.maxCount,
      maxCoreCount: na.spec.maxCoreCount,
      buckets: na.buckets.map((bucket): NodearrayBucketStatus => {
        const s = bucket.spec;
        const cap = this.#capacity(cluster, na, bucket, activity);
        const act = activity.bucket.get(bucket)!;
        const quotaVcpu = s.vcpuQuotaCount ?? s.vcpuCount;
        return {
          bucketId: s.bucketId,
          definition: { machineType: s.machineType },
          maxCount: cap.maxCount,
          maxCoreCount: cap.maxCount * s.vcpuCount,
          activeCount: cap.activeCount,
          activeCoreCount: cap.activeCoreCount,
          ...(options.nodes ? { activeNodes: [...act.names] } : {}),
          availableCount: cap.availableCount,
          availableCoreCount: cap.availableCount * s.vcpuCount,
          quotaCount: cap.quotaCount,
          quotaCoreCount: s.quotaCoreCount,
          consumedCoreCount: cap.consumedCoreCount,
          familyQuotaCount: cap.quotaCount,
          familyQuotaCoreCount: s.quotaCoreCount,
          familyConsumedCoreCount: cap.consumedCoreCount,
          maxPlacementGroupSize: s.maxPlacementGroupSize,
          maxPlacementGroupCoreSize: s.maxPlacementGroupSize * s.vcpuCount,
          placementGroups: [...act.groups].map(([name, g]) => ({ name, activeCount: g.count, activeCoreCount: g.cores })),
          valid: s.valid,
          ...(s.valid ? {} : { invalidReason: s.invalidReason ?? 'DisabledMachineType' }),
          lastCapacityFailure: bucket.lastCapacityFailureAtMs === undefined ? -1 : Math.max(0, (now - bucket.lastCapacityFailureAtMs) / 1000),
          virtualMachine: {
            vcpuCount: s.vcpuCount,
            memory: s.memory,
            infiniband: s.infiniband,
            gpuCount: s.gpuCount,
            pcpuCount: s.vcpuCount,
            ...(quotaVcpu !== s.vcpuCount ? { vcpuQuotaCount: quotaVcpu } : {}),
          },
        };
      }),
      nodearray: this.#nodearrayRecord(cluster, na),
    }));
    return {
      state: cluster.spec.state ?? 'Started',
      targetState: 'Started',
      maxCount: cluster.spec.maxCount,
      maxCoreCount: cluster.spec.maxCoreCount,
      nodearrays,
      ...(options.nodes ? { nodes: this.#records([...cluster.nodes.values()].filter((n) => this.#listed(n))) } : {}),
    };
  }

  #nodearrayRecord(cluster: Cluster, na: Nodearray): Record<string, unknown> {
    return {
      Name: na.spec.name,
      Region: cluster.spec.region ?? 'westeurope',
      SubnetId: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${cluster.spec.name}/providers/Microsoft.Network/virtualNetworks/${cluster.spec.name}-vnet/subnets/compute`,
      MachineType: na.buckets.map((b) => b.spec.machineType),
      MaxCount: na.spec.maxCount,
      MaxCoreCount: na.spec.maxCoreCount,
      Azure: { MaxScalesetSize: na.buckets[0]?.spec.maxPlacementGroupSize ?? 40 },
      Configuration: { autoscale: { enabled: true } },
      ...(na.spec.interruptible === true ? { Interruptible: true } : {}),
      ...na.spec.attributes,
    };
  }

  #records(nodes: Iterable<SimNode>): NodeRecord[] {
    return [...nodes].map((n) => structuredClone(n.record));
  }

  // ---------------------------------------------------------------- E3 create

  /** Throws 409 for a request id seen before; otherwise nothing. */
  #checkRequestId(requestId: string | undefined): void {
    if (requestId !== undefined && this.#rememberedOperation(requestId) !== undefined) {
      throw new SimulatorError('SIM_DUPLICATE_REQUEST', `Request ${requestId} was already submitted`);
    }
  }

  #operation(cluster: Cluster, action: string, requestId: string | undefined, nodeIds: string[]): Operation {
    const op: Operation = { id: randomUUID(), cluster: cluster.spec.name, action, startAtMs: this.now(), requestId, nodeIds };
    this.#operations.set(op.id, op);
    if (requestId !== undefined) this.#requestIds.set(requestId, op.id);
    return op;
  }

  /** `POST /clusters/{c}/nodes/create`. The request must already be schema-valid. */
  createNodes(clusterName: string, request: NodeCreationRequest): NodeCreationResult {
    const cluster = this.#cluster(clusterName);
    this.#checkRequestId(request.requestId);
    // Validate every set before creating anything, so a bad set 2 does not leave set 1 applied.
    const plans = request.sets.map((set, i) => {
      const na = this.#nodearray(cluster, set.nodearray);
      const machineType = set.definition?.machineType;
      if (machineType !== undefined) this.#bucketOf(na, machineType);
      if (set.nameOffset !== undefined && set.nameFormat === undefined) {
        throw new SimulatorError('SIM_BAD_REQUEST', `sets.${i}.nameOffset: requires nameFormat`);
      }
      if (set.nameFormat !== undefined && !set.nameFormat.includes('%d')) {
        throw new SimulatorError('SIM_BAD_REQUEST', `sets.${i}.nameFormat: must contain %d`);
      }
      return { set, na };
    });
    const created: string[] = [];
    const sets = plans.map(({ set, na }) => this.#createSet(cluster, na, set, created));
    const op = this.#operation(cluster, 'create', request.requestId, created);
    return { operationId: op.id, sets };
  }

  #createSet(cluster: Cluster, na: Nodearray, set: NodeCreationRequestSet, created: string[]): { added: number; message?: string } {
    const activity = this.#activity(cluster);
    const machineType = set.definition?.machineType;
    const candidates = na.buckets.filter((b) => machineType === undefined || lower(b.spec.machineType) === lower(machineType));
    const valid = candidates.filter((b) => b.spec.valid);
    if (valid.length === 0) {
      const b = candidates[0];
      return { added: 0, message: `No valid bucket for nodearray ${na.spec.name}${b ? ` (${b.spec.machineType}: ${b.spec.invalidReason ?? 'DisabledMachineType'})` : ''}` };
    }
    const room = (b: Bucket): { available: number; reason: string | undefined } => {
      const cap = this.#capacity(cluster, na, b, activity);
      let available = cap.availableCount;
      let reason: string | undefined = cap.throttled
        ? `bucket ${b.spec.machineType} had a capacity failure and reports no capacity for ${b.throttleSec} s (ThrottleCapacity)`
        : `the limits of nodearray ${na.spec.name} (bucket ${b.spec.machineType}, cluster and quota) allow ${available} more`;
      if (set.placementGroupId !== undefined) {
        const inGroup = activity.bucket.get(b)!.groups.get(set.placementGroupId)?.count ?? 0;
        const groupRoom = Math.max(0, b.spec.maxPlacementGroupSize - inGroup);
        if (groupRoom < available) {
          available = groupRoom;
          reason = `placement group ${set.placementGroupId} holds at most ${b.spec.maxPlacementGroupSize} nodes (${inGroup} already in it)`;
        }
      }
      return { available, reason };
    };
    // §5.2: the first bucket that can take the whole set, else the first with any room, else the first.
    const rooms = valid.map((b) => ({ b, ...room(b) }));
    const chosen = rooms.find((r) => r.available >= set.count) ?? rooms.find((r) => r.available > 0) ?? rooms[0]!;
    let added = Math.min(set.count, chosen.available);
    let reason = chosen.reason;
    if (chosen.b.limitNextCreate !== undefined) {
      if (chosen.b.limitNextCreate < added) {
        added = chosen.b.limitNextCreate;
        reason = `the allocation in bucket ${chosen.b.spec.machineType} was partial (simulated)`;
      }
      chosen.b.limitNextCreate = undefined;
    }
    const names = this.#names(cluster, na, set, added);
    for (const name of names.names) created.push(this.#createNode(cluster, na, chosen.b, set, name).record.NodeId);
    const messages: string[] = [];
    if (added < set.count) messages.push(`Only ${added} of ${set.count} nodes were added: ${reason}`);
    if (names.skipped.length > 0) messages.push(`Skipped existing node names ${names.skipped.join(', ')}`);
    return messages.length > 0 ? { added, message: messages.join('. ') } : { added };
  }

  /** §5.6: `<nodearray>-<n>` with the lowest unused n from 1, or `nameFormat` from `nameOffset`, skipping names in use. */
  #names(cluster: Cluster, na: Nodearray, set: NodeCreationRequestSet, count: number): { names: string[]; skipped: string[] } {
    const format = set.nameFormat ?? `${na.spec.name}-%d`;
    const names: string[] = [];
    const skipped: string[] = [];
    for (let i = set.nameOffset ?? 1; names.length < count; i++) {
      const name = format.replace('%d', String(i));
      if (cluster.nodes.has(name)) {
        if (set.nameFormat !== undefined) skipped.push(name);
        continue;
      }
      names.push(name);
    }
    return { names, skipped };
  }

  #createNode(cluster: Cluster, na: Nodearray, bucket: Bucket, set: NodeCreationRequestSet, name: string): SimNode {
    const attributes = set.nodeAttributes ?? {};
    const naConfig = (na.spec.attributes?.Configuration ?? {}) as Record<string, unknown>;
    const setConfig = (attributes.Configuration ?? {}) as Record<string, unknown>;
    const record: SimNode['record'] = {
      ...na.spec.attributes,
      ...attributes,
      Name: name,
      NodeId: randomUUID(),
      Template: na.spec.name,
      MachineType: bucket.spec.machineType,
      ...(na.spec.interruptible === true ? { Interruptible: true } : {}),
      Status: 'Acquiring',
      TargetState: 'Started',
      State: 'Allocation',
      Region: cluster.spec.region ?? 'westeurope',
      ClusterName: cluster.spec.name,
      CoreCount: bucket.spec.vcpuCount,
      Memory: bucket.spec.memory,
      ...(set.placementGroupId !== undefined ? { PlacementGroupId: set.placementGroupId } : {}),
      Configuration: { ...naConfig, ...setConfig },
    };
    const node: SimNode = { record, nodearray: na, bucket, flow: 'acquiring', stepAtMs: this.now(), held: false, failOnBoot: undefined, createdAtMs: this.now() };
    this.lifetimes.set(record.NodeId as string, { name: record.Name, cluster: cluster.spec.name, machineType: bucket.spec.machineType, createdAtMs: this.now() });
    const tags = attributes.Tags;
    if (tags && typeof tags === 'object' && !Array.isArray(tags)) this.#tagsAtCreation.set(record.NodeId as string, { ...(tags as Record<string, unknown>) });
    if (attributes.StartAutomatically === false) {
      Object.assign(record, { Status: 'Off', TargetState: 'Off' });
      delete record.State;
      node.flow = undefined;
    } else if (cluster.failNext && cluster.failNext.remaining > 0) {
      node.failOnBoot = cluster.failNext.message;
      if (--cluster.failNext.remaining === 0) cluster.failNext = undefined;
    }
    cluster.nodes.set(name, node);
    return node;
  }

  // ---------------------------------------------------------------- E11 scale

  /** `POST /clusters/{c}/scale/{nodearray}`: adds nodes up to a total; never removes. */
  scale(clusterName: string, nodearrayName: string, target: { totalNodeCount?: number; totalCoreCount?: number }): NodeCreationResult {
    const cluster = this.#cluster(clusterName);
    const na = this.#nodearray(cluster, nodearrayName);
    if ((target.totalNodeCount === undefined) === (target.totalCoreCount === undefined)) {
      throw new SimulatorError('SIM_BAD_REQUEST', 'totalNodeCount, totalCoreCount: exactly one is required');
    }
    const current = [...cluster.nodes.values()].filter((n) => n.nodearray === na && n.record.TargetState === 'Started' && !INACTIVE.has(String(n.record.Status)));
    let count: number;
    if (target.totalNodeCount !== undefined) {
      count = target.totalNodeCount - current.length;
    } else {
      const cores = current.reduce((sum, n) => sum + n.bucket.spec.vcpuCount, 0);
      const vcpu = na.buckets.find((b) => b.spec.valid)?.spec.vcpuCount ?? 1;
      count = Math.ceil((target.totalCoreCount! - cores) / vcpu);
    }
    const created: string[] = [];
    const set =
      count > 0 ? this.#createSet(cluster, na, { nodearray: na.spec.name, count }, created) : { added: 0, message: `Nodearray ${na.spec.name} already has the requested total` };
    const op = this.#operation(cluster, 'create', undefined, created);
    return { operationId: op.id, sets: [set] };
  }

  // ---------------------------------------------------------------- E2 nodes, E12/E13 operations

  /** The operation a request id names, unless CycleCloud has forgotten it (retention). */
  #rememberedOperation(requestId: string): Operation | undefined {
    const id = this.#requestIds.get(requestId);
    const op = id === undefined ? undefined : this.#operations.get(id);
    if (!op) return undefined;
    if (this.now() - op.startAtMs >= this.requestIdRetentionMs) return undefined;
    return op;
  }

  /** Forgets every request id now (lookups answer 404; the ids may be used again). */
  forgetRequestIds(): void {
    this.#requestIds.clear();
  }

  /** Changes the documentation gaps at run time (see {@link SimulatorModelOptions}). */
  setDocumentationGaps(gaps: { requestIdRetentionMs?: number | undefined; listLagMs?: number | undefined }): void {
    if (gaps.requestIdRetentionMs !== undefined) this.requestIdRetentionMs = gaps.requestIdRetentionMs;
    if (gaps.listLagMs !== undefined) this.listLagMs = gaps.listLagMs;
  }

  /** Whether a node is old enough to show in node lists (see `listLagMs`). */
  #listed(n: SimNode): boolean {
    return this.listLagMs <= 0 || this.now() - n.createdAtMs >= this.listLagMs;
  }

  /** `GET /clusters/{c}/nodes[?operation=|request_id=]`. */
  listNodes(clusterName: string, options: { operationId?: string; requestId?: string } = {}): NodeList {
    const cluster = this.#cluster(clusterName);
    let op: Operation | undefined;
    if (options.requestId !== undefined) {
      op = this.#rememberedOperation(options.requestId);
      const young = op !== undefined && this.listLagMs > 0 && this.now() - op.startAtMs < this.listLagMs;
      if (!op || op.cluster !== cluster.spec.name || young) throw new SimulatorError('SIM_NO_OPERATION', `No operation found for request id ${options.requestId}`);
    } else if (options.operationId !== undefined) {
      op = this.#operations.get(options.operationId);
      if (!op || op.cluster !== cluster.spec.name) throw new SimulatorError('SIM_NOT_FOUND', `No operation found for operation id ${options.operationId}`);
    }
    if (!op) return { nodes: this.#records([...cluster.nodes.values()].filter((n) => this.#listed(n))) };
    const ids = new Set(op.nodeIds);
    return {
      nodes: this.#records([...cluster.nodes.values()].filter((n) => ids.has(n.record.NodeId) && this.#listed(n))),
      operation: { action: op.action, startTime: new Date(op.startAtMs).toISOString() },
    };
  }

  #view(op: Operation): OperationView {
    return {
      operationId: op.id,
      cluster: op.cluster,
      action: op.action,
      startTime: new Date(op.startAtMs).toISOString(),
      ...(op.requestId !== undefined ? { requestId: op.requestId } : {}),
      nodeIds: [...op.nodeIds],
    };
  }

  /**
   * `GET /operations/{id}`: `{action, startTime}` as documented (§3.10); `operationId` too only with
   * the `undocumentedOperationIds` option.
   */
  getOperation(operationId: string): { action: string; startTime: string; operationId?: string } {
    const op = this.#operations.get(operationId);
    if (!op) throw new SimulatorError('SIM_NOT_FOUND', `Operation ${operationId} was not found`);
    return { action: op.action, startTime: new Date(op.startAtMs).toISOString(), ...(this.#undocumentedOperationIds ? { operationId: op.id } : {}) };
  }

  /** `GET /operations/[?request_id=]`: with a request id, 0 or 1 element. */
  findOperations(requestId?: string): Array<{ action: string; startTime: string; operationId?: string }> {
    if (requestId === undefined) return [...this.#operations.keys()].map((id) => this.getOperation(id));
    const op = this.#rememberedOperation(requestId);
    return op === undefined ? [] : [this.getOperation(op.id)];
  }

  /** Test hook: the Tags a node was created with (also after it is gone), or undefined. */
  tagsAtCreation(nodeId: string): Record<string, unknown> | undefined {
    return this.#tagsAtCreation.get(nodeId);
  }

  /** Every operation, oldest first. */
  get operations(): OperationView[] {
    return [...this.#operations.values()].map((op) => this.#view(op));
  }

  /** The current node records of a cluster (copies). */
  nodes(clusterName: string): NodeRecord[] {
    return this.#records(this.#cluster(clusterName).nodes.values());
  }

  // ---------------------------------------------------------------- E4–E10 management

  /** `POST /clusters/{c}/nodes/{action}`. The request must already be schema-valid. */
  manage(clusterName: string, action: ManagementAction, request: NodeManagementRequest): NodeManagementResult {
    const cluster = this.#cluster(clusterName);
    this.#checkRequestId(request.requestId);
    const selectors = [request.ids, request.names, request.hostnames, request.ip_addresses, request.filter];
    if (selectors.every((s) => s === undefined)) {
      throw new SimulatorError('SIM_BAD_REQUEST', 'ids, names, hostnames, ip_addresses, filter: one of them is required');
    }
    let filter: ((r: Record<string, unknown>) => boolean) | undefined;
    if (request.filter !== undefined) {
      try {
        filter = compileFilter(request.filter);
      } catch (error) {
        if (error instanceof FilterSyntaxError) throw new SimulatorError('SIM_BAD_REQUEST', error.message, { cause: error });
        throw error;
      }
    }
    const ids = new Set(request.ids ?? []);
    const names = new Set(request.names ?? []);
    const hostnames = new Set((request.hostnames ?? []).map(lower));
    const ips = new Set(request.ip_addresses ?? []);
    const matched = [...cluster.nodes.values()].filter((n) => {
      const r = n.record;
      return (
        ids.has(r.NodeId) ||
        names.has(r.Name) ||
        (typeof r.Hostname === 'string' && hostnames.has(lower(r.Hostname))) ||
        (typeof r.PrivateIp === 'string' && ips.has(r.PrivateIp)) ||
        Boolean(filter?.(r))
      );
    });
    const results = matched.map((node) => {
      const error = this.#apply(cluster, action, node);
      return { id: node.record.NodeId, name: node.record.Name, ...(error === undefined ? { status: 'OK' as const } : { status: 'Error' as const, error }) };
    });
    const op = this.#operation(
      cluster,
      action,
      request.requestId,
      matched.map((n) => n.record.NodeId),
    );
    return { operationId: op.id, nodes: results };
  }

  /** Applies one management action to one node; returns the per-node error text, if any. */
  #apply(cluster: Cluster, action: ManagementAction, node: SimNode): string | undefined {
    const r = node.record;
    const status = String(r.Status);
    const effective = action === 'shutdown' ? (lower(String(r.ShutdownPolicy ?? 'Terminate')) === 'deallocate' ? 'deallocate' : 'terminate') : action;
    switch (effective) {
      case 'terminate':
      case 'deallocate': {
        if (r.KeepAlive === true) return `Node ${r.Name} has KeepAlive set and cannot be ${effective}d`;
        if (effective === 'terminate') {
          if (status === 'Terminating' || (status === 'Off' && r.TargetState === 'Terminated')) return undefined;
          Object.assign(r, { TargetState: 'Terminated', Status: 'Terminating', State: 'TerminationPreparation' });
          node.flow = 'terminating';
        } else {
          if (status === 'Deallocated' || status === 'Deallocating') return undefined;
          if (status === 'Terminating') return `Node ${r.Name} is terminating`;
          Object.assign(r, { TargetState: 'Deallocated', Status: 'Deallocating' });
          node.flow = 'deallocating';
        }
        node.stepAtMs = this.now();
        node.held = false;
        return undefined;
      }
      case 'start':
        if (status === 'Terminating') return `Node ${r.Name} is terminating`;
        if (node.flow === 'acquiring' || node.flow === 'preparing' || status === 'Ready') return undefined;
        this.#boot(node, 'acquiring');
        return undefined;
      case 'remove':
        if (status === 'Off' || status === 'Terminated' || r.State === 'Terminated') {
          cluster.nodes.delete(r.Name);
          return undefined;
        }
        return 'This node must be terminated before it can be removed';
      case 'restart':
        return status === 'Ready' ? undefined : `Node ${r.Name} is ${status}; only Ready nodes can be restarted`;
      case 'reimage':
        if (status !== 'Ready' && status !== 'Failed') return `Node ${r.Name} is ${status}; only Ready or Failed nodes can be reimaged`;
        this.#boot(node, 'preparing');
        return undefined;
    }
  }

  // ---------------------------------------------------------------- test hooks

  /** Marks a node Failed with `StatusMessage` (default "Simulated failure"). */
  failNode(clusterName: string, name: string, message = 'Simulated failure'): void {
    const node = this.#node(this.#cluster(clusterName), name);
    Object.assign(node.record, { Status: 'Failed', State: 'Failed', StatusMessage: message });
    node.flow = undefined;
  }

  /** Stops a node where it is (e.g. Acquiring), so boot deadlines can be tested. */
  holdNode(clusterName: string, name: string): void {
    this.#node(this.#cluster(clusterName), name).held = true;
  }

  /** Lets a held node progress again, its current step starting now. */
  releaseNode(clusterName: string, name: string): void {
    const node = this.#node(this.#cluster(clusterName), name);
    node.held = false;
    node.stepAtMs = this.now();
  }

  /** The next `count` nodes created in the cluster fail during boot with `message`. */
  failNextNodes(clusterName: string, count: number, message = 'Simulated boot failure'): void {
    const cluster = this.#cluster(clusterName);
    cluster.failNext = count > 0 ? { remaining: count, message } : undefined;
  }

  /**
   * Azure evicts the next `count` Ready spot nodes of the cluster (those Ready now first, in creation
   * order, then each as it becomes Ready): `Status` and `State` `Failed`, `StatusMessage` = `message`,
   * `TargetState` left `Started`. 0 disarms. The shape is the simulator's choice (docs/cyclecloud.md).
   */
  evictNext(clusterName: string, count: number, message = EVICTION_MESSAGE): void {
    const cluster = this.#cluster(clusterName);
    cluster.evictNext = count > 0 ? { remaining: count, message } : undefined;
    this.#settle(cluster);
  }

  /** Changes a bucket's definition (quota, consumed cores, placement-group size, validity…). */
  setBucket(clusterName: string, nodearray: string, machineType: string, patch: Partial<Omit<BucketSpec, 'machineType' | 'bucketId'>>): void {
    const cluster = this.#cluster(clusterName);
    const bucket = this.#bucketOf(this.#nodearray(cluster, nodearray), machineType);
    Object.assign(bucket.spec, patch);
  }

  /** Test hook: the cluster's limits, or a nodearray's when named (`maxCount`, `maxCoreCount`). */
  setLimits(clusterName: string, nodearray: string | undefined, patch: { maxCount?: number; maxCoreCount?: number }): void {
    const cluster = this.#cluster(clusterName);
    Object.assign(nodearray === undefined ? cluster.spec : this.#nodearray(cluster, nodearray).spec, patch);
  }

  /**
   * Records a capacity failure now: `lastCapacityFailure` counts from here and the bucket reports
   * 0 available for `throttleSec` (default the bucket's `throttleCapacitySec`, 300).
   */
  capacityFailure(clusterName: string, nodearray: string, machineType: string, throttleSec?: number): void {
    const cluster = this.#cluster(clusterName);
    const bucket = this.#bucketOf(this.#nodearray(cluster, nodearray), machineType);
    const seconds = throttleSec ?? bucket.spec.throttleCapacitySec;
    bucket.lastCapacityFailureAtMs = this.now();
    bucket.throttleUntilAtMs = this.now() + seconds * 1000;
    bucket.throttleSec = seconds;
  }

  /** The next create set placed in this bucket adds at most `added` nodes. */
  limitNextCreate(clusterName: string, nodearray: string, machineType: string, added: number): void {
    const cluster = this.#cluster(clusterName);
    this.#bucketOf(this.#nodearray(cluster, nodearray), machineType).limitNextCreate = Math.max(0, added);
  }

  // ---------------------------------------------------------------- persistence (npm start --data)

  /**
   * The model's state as plain JSON (nodes, operations, request ids, bucket ids and throttles), for
   * `npm start -- --data DIR`. Nodes refer to their nodearray and bucket by name; every other field
   * is copied as it is, so fields added to the model later are kept too.
   */
  exportState(): SimulatorState {
    return {
      version: 1,
      ipCounter: this.#ipCounter,
      requestIds: [...this.#requestIds],
      operations: [...this.#operations.values()].map((op) => ({ ...op })),
      clusters: [...this.#clusters.values()].map((c) => ({
        name: c.spec.name,
        buckets: c.nodearrays.flatMap((na) =>
          na.buckets.map(({ spec, ...runtime }) => ({ nodearray: na.spec.name, machineType: spec.machineType, bucketId: spec.bucketId, runtime })),
        ),
        nodes: [...c.nodes.values()].map(({ nodearray, bucket, ...rest }) => ({ ...rest, nodearray: nodearray.spec.name, machineType: bucket.spec.machineType })),
      })),
    };
  }

  /**
   * Restores what {@link exportState} saved, onto the same cluster definitions. A cluster, nodearray
   * or bucket that no longer exists drops what referred to it. Call before the first request.
   */
  importState(state: SimulatorState): void {
    if (state.version !== 1) throw new RangeError(`simulator state version ${String(state.version)} is not supported`);
    this.#ipCounter = Math.max(this.#ipCounter, state.ipCounter);
    for (const saved of state.clusters) {
      const cluster = this.#clusters.get(saved.name);
      if (!cluster) continue;
      const find = (nodearray: string, machineType: string) => {
        const na = cluster.nodearrays.find((n) => n.spec.name === nodearray);
        const bucket = na?.buckets.find((b) => b.spec.machineType === machineType);
        return na && bucket ? { na, bucket } : undefined;
      };
      for (const b of saved.buckets) {
        const found = find(b.nodearray, b.machineType);
        if (!found) continue;
        found.bucket.spec.bucketId = b.bucketId;
        Object.assign(found.bucket, b.runtime);
      }
      cluster.nodes.clear();
      for (const { nodearray, machineType, ...rest } of saved.nodes) {
        const found = find(nodearray, machineType);
        if (!found) continue;
        const node = { ...rest, nodearray: found.na, bucket: found.bucket } as unknown as SimNode;
        cluster.nodes.set(node.record.Name, node);
      }
    }
    this.#operations = new Map(state.operations.map((op) => [op.id, { ...op } as unknown as Operation]));
    this.#requestIds = new Map(state.requestIds);
  }
}

/** What {@link Simulator.exportState} returns: plain JSON. */
export interface SimulatorState {
  version: 1;
  ipCounter: number;
  requestIds: Array<[string, string]>;
  operations: Array<Record<string, unknown> & { id: string }>;
  clusters: Array<{
    name: string;
    buckets: Array<{ nodearray: string; machineType: string; bucketId: string; runtime: Record<string, unknown> }>;
    nodes: Array<Record<string, unknown> & { nodearray: string; machineType: string; record: { Name: string } }>;
  }>;
}
