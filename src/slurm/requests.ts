/**
 * Slurm power saving → scale and terminate requests (docs/api.md §4 `/api/slurm/*`).
 *
 * slurmctld runs `ResumeProgram <hostlist>` for powered-down nodes a job needs, and
 * `SuspendProgram <hostlist>` / `ResumeFailProgram <hostlist>` for nodes to power down; the scripts
 * in contrib/slurm POST the hostlist (and `$SLURM_RESUME_FILE`) here. The Slurm node name IS the
 * CycleCloud node name, `<nodearray>-<n>` (CycleCloud's default, reference §5.6), as the lines of
 * `ccscale slurm conf` declare them. So:
 *
 * - resume → one scale request whose demands name their nodes (`names`, created with
 *   `nameFormat`/`nameOffset` by src/planning/named.ts), in the bucket `ccscale slurm conf` declared
 *   the node with ({@link slurmBucket}); nodes CycleCloud holds Deallocated get a `start` request. In a tightly coupled nodearray (its bucket has InfiniBand)
 *   each job of the resume file becomes one colocated demand, so one MPI job lands in one placement
 *   group; without the file, nodes are grouped up to the placement-group size in hostlist order.
 * - suspend → `shutdown` by name (each node's ShutdownPolicy: Terminate or Deallocate);
 *   resume-fail → terminate by name.
 *
 * The translation is pure; {@link admitSlurmRequests} adds the idempotency over the ledger.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { BucketSnapshot, ClusterSnapshot, NodearraySnapshot } from '../snapshots/model.ts';
import { ClusterName, FINAL_STATES, type Demand, type FieldError, type RequestMessage, type RequestRecord, type TerminateRequest } from '../ledger/schemas.ts';
import { expandHostlist, formatHostlist, HostlistError, sortNames } from './hostlist.ts';

export type SlurmAction = 'resume' | 'suspend' | 'resume-fail';

/** One job of `$SLURM_RESUME_FILE`: 21.08–22.05 `nodes`, 23.02+ `nodes_resume` (+ `nodes_alloc`). Unknown keys are ignored. */
const ResumeJob = z.looseObject({
  job_id: z.number().int().nonnegative(),
  nodes: z.string().nullish(),
  nodes_resume: z.string().nullish(),
  partition: z.string().nullish(),
});

/** `$SLURM_RESUME_FILE` as slurmctld writes it (reference/slurm-power-saving.md §2). */
export const ResumeFile = z.looseObject({
  all_nodes: z.string().nullish(),
  all_nodes_resume: z.string().nullish(),
  jobs: z.array(ResumeJob).max(100_000).optional(),
});
export type ResumeFile = z.infer<typeof ResumeFile>;

/** Body of `POST /api/slurm/{resume,suspend,resume-fail}`. */
export const SlurmPowerRequest = z
  .object({
    cluster: ClusterName,
    nodes: z.string().min(1, 'must be a Slurm hostlist expression such as hpc-[1-4,7]').max(200_000),
    resumeFile: ResumeFile.optional(),
  })
  .strict();
export type SlurmPowerRequest = z.infer<typeof SlurmPowerRequest>;

/** What the Slurm routes answer with 202. */
export const SlurmAccepted = z.object({
  /** The requests queued (or found already queued) for this call, in order. */
  requestIds: z.array(z.string()),
  statusUrls: z.array(z.string()),
  /** The nodes the call named, as a ranged hostlist. */
  nodes: z.string(),
  /** Nodes that needed nothing, and why (e.g. already running in CycleCloud). */
  skipped: z.array(z.object({ nodes: z.string(), reason: z.string() })),
});
export type SlurmAccepted = z.infer<typeof SlurmAccepted>;

/** Most names one terminate request carries (the TerminateRequest limit); more become several requests. */
const NAMES_PER_REQUEST = 10_000;
/** Most demands of one scale request (docs/api.md §3). */
const MAX_DEMANDS = 1000;

/**
 * The bucket a nodearray's Slurm nodes are declared with: the first valid one in CycleCloud's order
 * (the order CycleCloud itself picks when no machine type is given, reference §5.2). Null when none.
 */
export function slurmBucket(na: NodearraySnapshot): BucketSnapshot | null {
  return na.buckets.find((b) => b.valid) ?? null;
}

/** A nodearray whose Slurm partition is tightly coupled: its bucket has InfiniBand (placement groups matter). */
export function isTightlyCoupled(bucket: BucketSnapshot): boolean {
  return bucket.infiniband;
}

/** The nodearray a Slurm node name belongs to (`<nodearray>-<n>`, longest nodearray name wins), or null. */
export function nodearrayOf(name: string, snapshot: ClusterSnapshot): NodearraySnapshot | null {
  let best: NodearraySnapshot | null = null;
  for (const na of snapshot.nodearrays) {
    if (name.length > na.name.length + 1 && name.startsWith(`${na.name}-`) && /^(0|[1-9]\d*)$/.test(name.slice(na.name.length + 1))) {
      if (!best || na.name.length > best.name.length) best = na;
    }
  }
  return best;
}

/** CycleCloud statuses after which a node of that name no longer runs (a create or start is needed). */
const NOT_RUNNING = new Set(['Terminated', 'Off', 'Failed', 'Unavailable', 'Deallocated', 'Terminating', 'Deallocating', 'Stopping']);

export type Translation = { ok: true; messages: RequestMessage[]; names: string[]; skipped: { names: string[]; reason: string }[] } | { ok: false; errors: FieldError[] };

/** Expands `nodes`; a bad expression becomes a field error naming it. */
export function parseNodes(nodes: string): { ok: true; names: string[] } | { ok: false; errors: FieldError[] } {
  try {
    const names = sortNames(expandHostlist(nodes));
    if (names.length === 0) return { ok: false, errors: [{ path: 'nodes', message: 'names no node' }] };
    return { ok: true, names };
  } catch (error) {
    if (error instanceof HostlistError) return { ok: false, errors: [{ path: 'nodes', message: error.message }] };
    throw error;
  }
}

/** The job ids of a resume file, sorted (part of the idempotency key). */
export function jobIdsOf(file: ResumeFile | undefined): number[] {
  return [...new Set((file?.jobs ?? []).map((j) => j.job_id))].sort((a, b) => a - b);
}

/**
 * The idempotency key of a call: the action, cluster, node names and the resume file's job ids.
 * The same call repeated (slurmctld restarted, a script retried) gives the same key.
 */
export function slurmRequestKey(action: SlurmAction, cluster: string, names: readonly string[], jobIds: readonly number[]): string {
  const digest = createHash('sha256')
    .update(`${action}\n${cluster}\n${names.join(',')}\n${jobIds.join(',')}`)
    .digest('hex')
    .slice(0, 20);
  return `slurm-${action}-${digest}`;
}

/** Node statuses that need no suspend: the VM is gone or going. */
const GONE_STATUSES = new Set(['Terminating', 'Terminated', 'Off', 'Deallocating', 'Deallocated']);

/**
 * Turns one call into the messages to queue, with `requestId`s from `idFor(i)` (i = 0, 1, …).
 * Pure. `snapshot` is needed for resume (nodearrays, buckets, which names already run); a suspend
 * given one with its nodes skips names CycleCloud no longer runs.
 */
export function translate(action: SlurmAction, body: SlurmPowerRequest, snapshot: ClusterSnapshot | null, idFor: (i: number) => string): Translation {
  const parsed = parseNodes(body.nodes);
  if (!parsed.ok) return parsed;
  let names = parsed.names;
  if (action !== 'resume') {
    // A suspend of nodes CycleCloud no longer runs (after a resume-fail terminated them, or already
    // going) would only record a failed terminate: with a node list to say so, they are skipped.
    const skipped: { names: string[]; reason: string }[] = [];
    if (action === 'suspend' && snapshot?.nodes) {
      const byName = new Map(snapshot.nodes.map((n) => [n.name, n]));
      const gone = names.filter((n) => !byName.has(n) || GONE_STATUSES.has(byName.get(n)!.status));
      if (gone.length > 0) {
        skipped.push({ names: gone, reason: 'CycleCloud no longer runs them (terminated, deallocated or going)' });
        names = names.filter((n) => !gone.includes(n));
      }
    }
    const messages: TerminateRequest[] = [];
    for (let i = 0; i * NAMES_PER_REQUEST < names.length; i++) {
      const chunk = names.slice(i * NAMES_PER_REQUEST, (i + 1) * NAMES_PER_REQUEST);
      // Suspend honours each node's ShutdownPolicy (Deallocate keeps the disk for a faster resume);
      // a node that failed to come up is always terminated.
      messages.push({ kind: 'terminate', requestId: idFor(i), cluster: body.cluster, names: chunk, ...(action === 'suspend' ? { action: 'shutdown' as const } : {}) });
    }
    return { ok: true, messages, names, skipped };
  }
  if (!snapshot) return { ok: false, errors: [{ path: 'cluster', message: `cluster ${body.cluster} has no snapshot: unknown to CycleCloud, or not read yet` }] };

  // Which nodearray each name belongs to.
  const byArray = new Map<string, { na: NodearraySnapshot; bucket: BucketSnapshot; names: string[] }>();
  const unknown: string[] = [];
  const noBucket: string[] = [];
  for (const name of names) {
    const na = nodearrayOf(name, snapshot);
    if (!na) {
      unknown.push(name);
      continue;
    }
    const bucket = slurmBucket(na);
    if (!bucket) {
      noBucket.push(name);
      continue;
    }
    const entry = byArray.get(na.name) ?? { na, bucket, names: [] };
    entry.names.push(name);
    byArray.set(na.name, entry);
  }
  const errors: FieldError[] = [];
  if (unknown.length > 0) {
    errors.push({
      path: 'nodes',
      message: `${formatHostlist(unknown)} match no nodearray of cluster ${body.cluster} (Slurm node names must be <nodearray>-<n>; nodearrays: ${snapshot.nodearrays.map((n) => n.name).join(', ') || '(none)'})`,
    });
  }
  if (noBucket.length > 0) errors.push({ path: 'nodes', message: `${formatHostlist(noBucket)}: their nodearray has no valid bucket to create nodes in` });
  if (errors.length > 0) return { ok: false, errors };

  // Names CycleCloud already runs need nothing (a repeated resume after a slurmctld restart).
  const running = new Map<string, string>();
  const deallocated: string[] = [];
  const wanted = new Set(names);
  for (const n of snapshot.nodes ?? []) {
    if (!NOT_RUNNING.has(n.status)) running.set(n.name, n.status);
    else if ((n.status === 'Deallocated' || n.status === 'Deallocating') && wanted.has(n.name)) deallocated.push(n.name);
  }
  const skippedRunning: string[] = [];

  const jobs = body.resumeFile?.jobs ?? [];
  const jobOf = new Map<string, string>();
  const jobNames = new Map<string, string[]>();
  for (const job of jobs) {
    const expr = job.nodes_resume ?? job.nodes;
    if (!expr) continue;
    let jobNodeNames: string[];
    try {
      jobNodeNames = expandHostlist(expr);
    } catch (error) {
      if (error instanceof HostlistError) return { ok: false, errors: [{ path: 'resumeFile.jobs', message: `job ${job.job_id}: ${error.message}` }] };
      throw error;
    }
    for (const n of jobNodeNames) {
      if (jobOf.has(n)) continue; // jobs may share nodes: the first job groups it
      const id = String(job.job_id);
      jobOf.set(n, id);
      const list = jobNames.get(id);
      if (list) list.push(n);
      else jobNames.set(id, [n]);
    }
  }

  const demands: Demand[] = [];
  const held = new Set(deallocated);
  for (const { na, bucket, names: mine } of byArray.values()) {
    const wanted = mine.filter((n) => {
      if (held.has(n)) return false; // started below, not created (a create would collide with the kept VM)
      if (!running.has(n)) return true;
      skippedRunning.push(n);
      return false;
    });
    if (wanted.length === 0) continue;
    const base = { nodearray: na.name, machineTypes: [bucket.machineType] };
    if (!isTightlyCoupled(bucket)) {
      for (let i = 0; i < wanted.length; i += NAMES_PER_REQUEST) {
        const chunk = wanted.slice(i, i + NAMES_PER_REQUEST);
        demands.push({ ...base, count: chunk.length, names: chunk });
      }
      continue;
    }
    // Tightly coupled: per job (in resume-file order), then the rest in hostlist order, each group
    // at most one placement group (a larger job cannot be colocated; it is split rather than refused).
    const size = Math.max(1, bucket.maxPlacementGroupSize);
    const groups: { jobId?: string; names: string[] }[] = [];
    const wantedSet = new Set(wanted);
    for (const [jobId, jn] of jobNames) {
      const inArray = sortNames(jn.filter((n) => wantedSet.has(n)));
      if (inArray.length > 0) groups.push({ jobId, names: inArray });
    }
    const loose = wanted.filter((n) => !jobOf.has(n));
    if (loose.length > 0) groups.push({ names: loose });
    for (const g of groups) {
      for (let i = 0; i < g.names.length; i += size) {
        const chunk = g.names.slice(i, i + size);
        demands.push({ ...base, count: chunk.length, names: chunk, colocated: true, ...(g.jobId !== undefined ? { jobId: g.jobId } : {}) });
      }
    }
  }
  const skipped = skippedRunning.length > 0 ? [{ names: skippedRunning, reason: 'already running in CycleCloud' }] : [];
  const messages: RequestMessage[] = [];
  for (let i = 0; i * MAX_DEMANDS < demands.length; i++) {
    // `fail`: Slurm has its own ResumeTimeout; a node with no room is reported down at once (POST /api/slurm/sync).
    messages.push({
      kind: 'scale',
      requestId: idFor(messages.length),
      cluster: body.cluster,
      demands: demands.slice(i * MAX_DEMANDS, (i + 1) * MAX_DEMANDS),
      onNoCapacity: 'fail',
    });
  }
  // Nodes CycleCloud holds deallocated (ShutdownPolicy=Deallocate) are started, keeping their disks.
  const toStart = sortNames(deallocated);
  for (let i = 0; i < toStart.length; i += NAMES_PER_REQUEST) {
    messages.push({ kind: 'terminate', action: 'start', requestId: idFor(messages.length), cluster: body.cluster, names: toStart.slice(i, i + NAMES_PER_REQUEST) });
  }
  return { ok: true, messages, names, skipped };
}

/** What {@link admitSlurmRequests} needs: the ledger's read side and the HTTP admission. */
export interface SlurmAdmitDeps {
  getRecord(requestId: string): Promise<RequestRecord | null>;
  submitRequest(message: RequestMessage): Promise<{ outcome: 'created' | 'duplicate' | 'conflict'; record: RequestRecord }>;
  now(): number;
}

/** `key`, `key.2`, `key.3`…: one per power cycle of the same nodes. */
const generationId = (key: string, n: number): string => (n <= 1 ? key : `${key}.${n}`);

/**
 * The highest generation `n` (1-based) of `key` the ledger holds, 0 for none: generations are
 * contiguous, so galloping then bisecting finds it in O(log n) reads.
 */
async function lastGeneration(deps: Pick<SlurmAdmitDeps, 'getRecord'>, key: string): Promise<{ n: number; record: RequestRecord | null }> {
  let present = 0;
  let presentRecord: RequestRecord | null = null;
  let missing = 1;
  for (;;) {
    const record = await deps.getRecord(generationId(key, missing));
    if (!record) break;
    present = missing;
    presentRecord = record;
    missing *= 2;
  }
  while (missing - present > 1) {
    const mid = Math.floor((present + missing) / 2);
    const record = await deps.getRecord(generationId(key, mid));
    if (record) {
      present = mid;
      presentRecord = record;
    } else missing = mid;
  }
  return { n: present, record: presentRecord };
}

/**
 * Queues one Slurm call: the same call again while its requests run answers the same request ids;
 * once they are final, the same nodes get the next generation of the key (`<key>.2`, …).
 */
export async function admitSlurmRequests(
  deps: SlurmAdmitDeps,
  action: SlurmAction,
  body: SlurmPowerRequest,
  snapshot: ClusterSnapshot | null,
): Promise<{ ok: true; requestIds: string[]; names: string[]; skipped: { names: string[]; reason: string }[] } | { ok: false; errors: FieldError[] }> {
  const parsed = parseNodes(body.nodes);
  if (!parsed.ok) return parsed;
  const key = slurmRequestKey(action, body.cluster, parsed.names, jobIdsOf(body.resumeFile));
  const { n, record } = await lastGeneration(deps, key);
  // A call whose request still runs is a repeat (slurmctld restarted, a script retried). Once it is
  // final, the same call is a new power cycle: a resume that failed and is retried after ResumeFail,
  // or the same nodes again later. A repeat that needs nothing is still harmless: resume skips names
  // CycleCloud runs, and a terminate of nodes already gone changes nothing.
  const repeat = record !== null && !FINAL_STATES.has(record.state);
  const generation = repeat ? n : n + 1;
  // Several messages of one call share the generation: `<key>[.<n>]` then `-p1`, `-p2`… for the rest.
  const idFor = (i: number): string => `${generationId(key, generation)}${i === 0 ? '' : `-p${i}`}`;
  const translated = translate(action, body, snapshot, idFor);
  if (!translated.ok) return translated;
  // A repeat submits the same ids again: a duplicate answers the current state (and re-queues one
  // still `queued`), a conflict (the nodes' state changed since) leaves the first request standing.
  const ids: string[] = [];
  for (const message of translated.messages) {
    await deps.submitRequest(message);
    ids.push(message.requestId);
  }
  if (ids.length === 0 && record) ids.push(record.requestId);
  return { ok: true, requestIds: ids, names: translated.names, skipped: translated.skipped };
}
