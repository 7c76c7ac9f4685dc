/**
 * `POST /api/slurm/sync`: Slurm's view of its cloud nodes in, what slurmctld should do about them
 * out (docs/api.md §4). The scaler is serverless and cannot run `scontrol`; the head node runs
 * `scaler-power.sh sync` every few seconds (a systemd timer, contrib/slurm/install.sh), which sends
 * `sinfo -h -o '%T|%E|%N'` and applies the answer:
 *
 * - `down`: nodes Slurm is powering up that will not come up (their demand was closed for lack of
 *   capacity, or the node failed or timed out in CycleCloud). The script sets them
 *   `state=down reason="scaler: …"`: Slurm requeues their jobs now, and `sinfo -R` says why.
 * - `hold`: nodes powered down with a `scaler:` reason whose bucket still has no room: set `down`
 *   again (`down~`), so no job is scheduled onto them until capacity returns.
 * - `restore`: nodes held down with a `scaler:` reason whose bucket has room again (no capacity
 *   backoff, room in the snapshot) and no VM of the name left: `state=resume` (→ `idle~`) for one
 *   held `down~`; `power_down` (`state=power_down_force`, → `idle~` after SuspendTimeout) for one
 *   still marked powering up (`down#`), which `resume` would leave powering up. No admin step.
 *
 * And the scaler acts on what Slurm gave up on (a node powered down, or down and no longer powering
 * up, while a resume request of it still waits): that demand is closed, so nothing is created for it
 * later; a node a Slurm resume created that Slurm now shows powered down is terminated (a late create).
 *
 * {@link decideSync} is pure; {@link runSlurmSync} reads the ledger, the list, the snapshot and the
 * capacity backoffs, applies the closes and the terminate, and answers the actions.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { closeDemand, isFinal, settle } from '../ledger/record.ts';
import { ClusterName, FINAL_STATES, type FieldError, type RequestMessage, type RequestRecord } from '../ledger/schemas.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import type { ListRequestsQuery, RequestPage } from '../ledger/listing.ts';
import type { CapacityBackoff } from '../planning/types.ts';
import type { ClusterSnapshot } from '../snapshots/model.ts';
import type { Logger } from '../platform/log.ts';
import { expandHostlist, formatHostlist, HostlistError, sortNames } from './hostlist.ts';
import { nodearrayOf, slurmBucket } from './requests.ts';

/** One line of `sinfo -h -o '%T|%E|%N'`: a state (long form, with its suffix), the reason, a hostlist. */
const SinfoLine = z
  .object({
    state: z.string().min(1).max(64),
    reason: z.string().max(1024).optional(),
    nodes: z.string().min(1, 'must be a Slurm hostlist expression').max(200_000),
  })
  .strict();

/** Body of `POST /api/slurm/sync`. */
export const SlurmSyncRequest = z
  .object({
    cluster: ClusterName,
    /** When `sinfo` ran, epoch seconds: resumes accepted after it are not judged by it. */
    observedAt: z.number().int().positive().optional(),
    lines: z.array(SinfoLine).max(10_000),
  })
  .strict();
export type SlurmSyncRequest = z.infer<typeof SlurmSyncRequest>;

const Action = z.object({ nodes: z.string(), reason: z.string() });
/** What the route answers (200). Each list is grouped by reason; `nodes` is a ranged hostlist. */
export const SlurmSyncAnswer = z.object({
  down: z.array(Action),
  hold: z.array(Action),
  restore: z.array(Action),
  /** Down and still marked powering up, with room again: `state=power_down_force` (→ `idle~` after SuspendTimeout). */
  powerDown: z.array(Action),
  /** Demands closed because Slurm gave up on their nodes, by request. */
  closed: z.array(z.object({ requestId: z.string(), nodes: z.string() })),
  /** Nodes a Slurm resume created that Slurm shows powered down: the terminate request queued for them. */
  terminated: z.object({ requestId: z.string(), nodes: z.string() }).nullable(),
});
export type SlurmSyncAnswer = z.infer<typeof SlurmSyncAnswer>;

/** The prefix of every reason the scaler gives Slurm: how the next sync knows its own. */
export const REASON_PREFIX = 'scaler:';
/** Slurm's reason field is free text; kept short enough for `sinfo -R`. */
const REASON_MAX = 160;

/** A node's state as Slurm shows it (`sinfo %T`): the base state and its power suffix. */
export interface SlurmNodeView {
  name: string;
  state: string;
  reason: string;
  down: boolean;
  poweringUp: boolean;
  poweredDown: boolean;
  poweringDown: boolean;
}

/** Parses `idle~`, `down#`, `mixed#`, `idle%`, `down*`, `drained~`…: base word, then suffix characters. */
export function viewOf(name: string, state: string, reason: string | undefined): SlurmNodeView {
  const s = state.trim().toLowerCase();
  const base = /^[a-z_+]+/.exec(s)?.[0] ?? s;
  const suffix = s.slice(base.length);
  const words = base.split('+');
  return {
    name,
    state: s,
    reason: reason && reason !== 'none' ? reason : '',
    down: words.includes('down'),
    poweringUp: suffix.includes('#') || words.includes('powering_up'),
    poweredDown: suffix.includes('~') || words.includes('powered_down'),
    poweringDown: suffix.includes('%') || words.includes('powering_down'),
  };
}

/** Expands the report into one view per node (a node in several partitions is listed once). */
export function parseReport(report: SlurmSyncRequest): { ok: true; views: Map<string, SlurmNodeView> } | { ok: false; errors: FieldError[] } {
  const views = new Map<string, SlurmNodeView>();
  for (const [i, line] of report.lines.entries()) {
    let names: string[];
    try {
      names = expandHostlist(line.nodes);
    } catch (error) {
      if (error instanceof HostlistError) return { ok: false, errors: [{ path: `lines.${i}.nodes`, message: error.message }] };
      throw error;
    }
    for (const name of names) if (!views.has(name)) views.set(name, viewOf(name, line.state, line.reason));
  }
  return { ok: true, views };
}

/** Node statuses after which a node will not become Ready. */
const FAILED_NODE = new Set(['Failed', 'TimedOut', 'Evicted', 'Unavailable']);
/** CycleCloud statuses of a VM that no longer runs (or is going). */
const GONE = new Set(['Terminated', 'Off', 'Deallocated', 'Terminating', 'Deallocating', 'Stopping']);

/** A VM in these is no obstacle to resuming its name again (a deallocated one is started). */
const ABSENT = new Set(['Terminated', 'Off', 'Deallocated']);

/** What the scaler knows of one Slurm node name, from the newest resume request naming it. */
export interface NodeFate {
  requestId: string;
  open: boolean;
  createdAtMs: number;
  demand: number;
  /** `reported`: failed, and the sync already had slurmctld set it down. */
  fate: 'pending' | 'up' | 'failed' | 'reported';
  reason: string | null;
}

/** Per name, the fate of its newest resume request (scale requests whose demands carry `names`). */
export function fatesOf(entries: readonly LedgerEntry[]): Map<string, NodeFate> {
  const out = new Map<string, NodeFate>();
  for (const e of entries) {
    if (e.request?.kind !== 'scale') continue;
    const open = !FINAL_STATES.has(e.record.state);
    const createdAtMs = Date.parse(e.record.createdAt) || 0;
    const nodes = new Map(e.record.nodes.map((n) => [n.name, n]));
    for (const [i, d] of e.request.demands.entries()) {
      const closedWhy = e.closedDemands?.[i] ?? (open ? undefined : (e.record.demands[i]?.reason ?? e.record.reason ?? 'the request ended'));
      for (const name of d.names ?? []) {
        const prev = out.get(name);
        if (prev && prev.createdAtMs > createdAtMs) continue;
        const node = nodes.get(name);
        let fate: NodeFate['fate'] = 'pending';
        let reason: string | null = null;
        if (node && node.status === 'Ready') fate = 'up';
        else if (node && FAILED_NODE.has(node.status)) {
          fate = 'failed';
          reason = `node ${node.status === 'TimedOut' ? 'timed out' : node.status.toLowerCase()} in CycleCloud`;
        } else if (!node && closedWhy !== undefined) {
          fate = 'failed';
          reason = closedWhy;
        }
        // Reported once: a node down, then restored, then resumed again is a new power cycle, even
        // while its new resume's POST is still on its way (the old failure must not set it down again).
        if (fate === 'failed' && e.slurmReported?.includes(name)) fate = 'reported';
        out.set(name, { requestId: e.record.requestId, open, createdAtMs, demand: i, fate, reason });
      }
    }
  }
  return out;
}

/** `scaler: <reason>`, one line, short. */
export function slurmReason(reason: string): string {
  const text = `${REASON_PREFIX} ${reason.replace(/\s+/g, ' ').replace(/"/g, "'").trim()}`;
  return text.length <= REASON_MAX ? text : `${text.slice(0, REASON_MAX - 1)}…`;
}

export interface SyncInput {
  views: ReadonlyMap<string, SlurmNodeView>;
  fates: ReadonlyMap<string, NodeFate>;
  snapshot: ClusterSnapshot | null;
  backoffs: readonly CapacityBackoff[];
  nowMs: number;
  /** When sinfo ran (ms); resumes accepted less than {@link RACE_MS} before it are not judged by it. */
  observedAtMs: number;
}

export interface SyncDecision {
  down: Map<string, string[]>;
  hold: Map<string, string[]>;
  restore: Map<string, string[]>;
  powerDown: Map<string, string[]>;
  /** requestId → demand indices → names Slurm gave up on. */
  giveUp: Map<string, Map<number, string[]>>;
  terminate: string[];
}

/** Slurm marks a node powering up before it runs ResumeProgram; allow the POST this long to land. */
export const RACE_MS = 5_000;

/** Why a node's bucket cannot take it now, or null when it has room. */
export function noRoomReason(name: string, snapshot: ClusterSnapshot | null, backoffs: readonly CapacityBackoff[], nowMs: number): string | null {
  if (!snapshot) return 'no snapshot of the cluster';
  const na = nodearrayOf(name, snapshot);
  const bucket = na ? slurmBucket(na) : null;
  if (!na || !bucket) return `no valid bucket for ${name}`;
  const off = backoffs.find((b) => b.nodearray === na.name && b.machineType.toLowerCase() === bucket.machineType.toLowerCase() && b.untilMs > nowMs);
  if (off) return `capacity backoff for ${na.name}/${bucket.machineType} until ${new Date(off.untilMs).toISOString()}`;
  if (bucket.availableCount < 1) return `no room in ${na.name}/${bucket.machineType} (availableCount 0)`;
  return null;
}

const push = (m: Map<string, string[]>, key: string, name: string) => {
  const list = m.get(key);
  if (list) list.push(name);
  else m.set(key, [name]);
};

/** Decides, for every node Slurm reported, what slurmctld and the scaler should do. Pure. */
export function decideSync(input: SyncInput): SyncDecision {
  const out: SyncDecision = { down: new Map(), hold: new Map(), restore: new Map(), powerDown: new Map(), giveUp: new Map(), terminate: [] };
  const live = new Map<string, NonNullable<ClusterSnapshot['nodes']>[number]>();
  const present = new Set<string>();
  for (const n of input.snapshot?.nodes ?? []) {
    if (!GONE.has(n.status)) live.set(n.name, n);
    if (!ABSENT.has(n.status)) present.add(n.name);
  }
  for (const view of input.views.values()) {
    const fate = input.fates.get(view.name);
    const ours = view.reason.startsWith(REASON_PREFIX);
    // 1. Slurm waits for a node that will not come up: down now, with the reason.
    if (view.poweringUp && !view.down) {
      if (fate?.fate === 'failed') push(out.down, slurmReason(fate.reason ?? 'did not come up'), view.name);
      continue;
    }
    // 2. Slurm gave up on a node a resume still waits for: that demand is closed.
    const gaveUp = (view.poweredDown || view.poweringDown || view.down) && !view.poweringUp;
    if (gaveUp && fate?.open && fate.fate === 'pending' && fate.createdAtMs < input.observedAtMs - RACE_MS) {
      const byDemand = out.giveUp.get(fate.requestId) ?? new Map<number, string[]>();
      const list = byDemand.get(fate.demand) ?? [];
      list.push(view.name);
      byDemand.set(fate.demand, list);
      out.giveUp.set(fate.requestId, byDemand);
    }
    // 3. A VM a Slurm resume created, for a node Slurm shows powered down (not by a request still open).
    const vm = live.get(view.name);
    if (
      view.poweredDown &&
      !view.poweringDown &&
      vm?.mark?.requestId.startsWith('slurm-resume-') &&
      !(fate?.open && fate.requestId === vm.mark.requestId && !out.giveUp.has(fate.requestId))
    ) {
      out.terminate.push(view.name);
    }
    if (!ours) continue;
    // 4. Our own reason on a node no longer powering up: hold it down while there is no room, resume it once there is.
    const why = noRoomReason(view.name, input.snapshot, input.backoffs, input.nowMs);
    if (view.down && !view.poweringDown) {
      // Not while a VM of the name is still there (failed, or terminating): Slurm would resume into it.
      // Still marked powering up (`down#`): `state=resume` would leave it powering up, and the next
      // sync would set it down again; powered down instead, it returns `idle~` after SuspendTimeout.
      if (why === null && !present.has(view.name)) push(view.poweringUp ? out.powerDown : out.restore, view.reason, view.name);
    } else if (view.poweredDown && !view.poweringDown && why !== null) {
      push(out.hold, view.reason, view.name);
    }
  }
  return out;
}

/** What {@link runSlurmSync} reads and writes. */
export interface SlurmSyncDeps {
  now(): number;
  logger: Logger;
  listOpen(cluster: string): Promise<LedgerEntry[]>;
  getEntry(requestId: string): Promise<LedgerEntry | null>;
  updateEntry(requestId: string, mutate: (e: LedgerEntry) => LedgerEntry | undefined): Promise<LedgerEntry>;
  list?(query: ListRequestsQuery): Promise<RequestPage>;
  snapshot(cluster: string): Promise<ClusterSnapshot | null>;
  backoffs(cluster: string, nowMs: number): Promise<readonly CapacityBackoff[]> | readonly CapacityBackoff[];
  submitRequest(message: RequestMessage): Promise<{ outcome: string; record: RequestRecord }>;
  /** Nudges an entry whose demands were closed so it settles now (queue it again). Optional. */
  wake?(entry: LedgerEntry): Promise<void>;
}

/** Final resume requests read back for their failures: those created this long ago at most. */
const RECENT_MS = 2 * 3_600_000;
/** …and final this recently (a failure older than this was reported, or Slurm has timed out by itself). */
const RECENT_FINAL_MS = 15 * 60_000;

const groups = (m: Map<string, string[]>) => [...m].map(([reason, names]) => ({ reason, nodes: formatHostlist(sortNames(names)) }));

/** The answer as lines for the bash script: `<down|hold|restore|power_down>\t<hostlist>\t<reason>`, nothing else. */
export function syncAnswerText(answer: SlurmSyncAnswer): string {
  const lines: string[] = [];
  for (const kind of ['down', 'hold', 'restore', 'powerDown'] as const)
    for (const a of answer[kind]) lines.push(`${kind === 'powerDown' ? 'power_down' : kind}\t${a.nodes}\t${a.reason.replace(/[\t\r\n]+/g, ' ')}`);
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/**
 * ResumeFailProgram named these nodes: Slurm gave up on them, so the demands of open resume
 * requests that still wait for them are closed now (nothing is created for them later). Returns the
 * requests closed.
 */
export async function closeGivenUp(deps: Pick<SlurmSyncDeps, 'now' | 'logger' | 'listOpen' | 'updateEntry'>, cluster: string, names: readonly string[]): Promise<string[]> {
  const nowMs = deps.now();
  const wanted = new Set(names);
  const open = (await deps.listOpen(cluster)).filter((e) => e.record.requestId.startsWith('slurm-resume-'));
  const byRequest = new Map<string, Map<number, string[]>>();
  for (const [name, fate] of fatesOf(open)) {
    if (!wanted.has(name) || !fate.open || fate.fate !== 'pending') continue;
    const byDemand = byRequest.get(fate.requestId) ?? new Map<number, string[]>();
    byDemand.set(fate.demand, [...(byDemand.get(fate.demand) ?? []), name]);
    byRequest.set(fate.requestId, byDemand);
  }
  for (const [requestId, byDemand] of byRequest) {
    await deps.updateEntry(requestId, (e) => {
      if (isFinal(e)) return undefined;
      let x = e;
      for (const [i, list] of byDemand)
        if (!x.closedDemands?.[i]) x = closeDemand(x, i, `Slurm gave up on the resume of ${formatHostlist(sortNames(list))} (ResumeFailProgram)`, nowMs);
      return settle(x, nowMs);
    });
    deps.logger.info('resume-fail: the demands still waiting for these nodes are closed', { requestId });
  }
  return [...byRequest.keys()];
}

/** Reads what {@link decideSync} needs, applies the scaler's side, and answers slurmctld's. */
export async function runSlurmSync(deps: SlurmSyncDeps, report: SlurmSyncRequest): Promise<{ ok: true; answer: SlurmSyncAnswer } | { ok: false; errors: FieldError[] }> {
  const parsed = parseReport(report);
  if (!parsed.ok) return parsed;
  const nowMs = deps.now();
  const isResume = (id: string) => id.startsWith('slurm-resume-');
  const open = (await deps.listOpen(report.cluster)).filter((e) => isResume(e.record.requestId));
  const recent: LedgerEntry[] = [];
  if (deps.list) {
    const page = await deps.list({ cluster: report.cluster, states: ['failed', 'partially_fulfilled'], sinceMs: nowMs - RECENT_MS, limit: 200 });
    const ids = page.items.filter((s) => isResume(s.requestId) && s.finalAt !== null && nowMs - Date.parse(s.finalAt) <= RECENT_FINAL_MS).map((s) => s.requestId);
    for (let i = 0; i < ids.length; i += 16) {
      for (const e of await Promise.all(ids.slice(i, i + 16).map((id) => deps.getEntry(id)))) if (e) recent.push(e);
    }
  }
  const [snapshot, backoffs] = await Promise.all([deps.snapshot(report.cluster), deps.backoffs(report.cluster, nowMs)]);
  const fates = fatesOf([...recent, ...open]);
  const decision = decideSync({
    views: parsed.views,
    fates,
    snapshot,
    backoffs,
    nowMs,
    observedAtMs: report.observedAt !== undefined ? report.observedAt * 1000 : nowMs,
  });

  // Each failure is told once: the names set down are noted on their request before the answer goes out.
  const reported = new Map<string, string[]>();
  for (const names of decision.down.values())
    for (const n of names) {
      const id = fates.get(n)?.requestId;
      if (id) reported.set(id, [...(reported.get(id) ?? []), n]);
    }
  for (const [requestId, names] of reported) {
    await deps.updateEntry(requestId, (e) => {
      const known = new Set(e.slurmReported ?? []);
      if (names.every((n) => known.has(n))) return undefined;
      e.slurmReported = [...new Set([...known, ...names])].slice(-10_000);
      return e;
    });
  }

  const closed: SlurmSyncAnswer['closed'] = [];
  for (const [requestId, byDemand] of decision.giveUp) {
    const entry = await deps.updateEntry(requestId, (e) => {
      if (isFinal(e)) return undefined;
      let x = e;
      for (const [i, names] of byDemand) {
        if (!x.closedDemands?.[i]) x = closeDemand(x, i, `Slurm gave up on the resume of ${formatHostlist(sortNames(names))} (ResumeTimeout or ResumeFailProgram)`, nowMs);
      }
      return settle(x, nowMs);
    });
    await deps.wake?.(entry);
    closed.push({ requestId, nodes: formatHostlist(sortNames([...byDemand.values()].flat())) });
    deps.logger.info('slurm gave up on a resume: its demands are closed', { requestId, nodes: closed.at(-1)!.nodes });
  }

  let terminated: SlurmSyncAnswer['terminated'] = null;
  if (decision.terminate.length > 0) {
    const names = sortNames(decision.terminate).slice(0, 10_000);
    // One id per set of names and snapshot: a repeat sync is a duplicate; a newer snapshot that still shows them sends again.
    const key = createHash('sha256')
      .update(`${report.cluster}\n${names.join(',')}\n${snapshot?.takenAt ?? ''}`)
      .digest('hex')
      .slice(0, 20);
    const requestId = `slurm-sync-${key}`;
    await deps.submitRequest({ kind: 'terminate', requestId, cluster: report.cluster, names });
    terminated = { requestId, nodes: formatHostlist(names) };
    deps.logger.warn('nodes Slurm shows powered down still run in CycleCloud: terminated', { requestId, nodes: terminated.nodes });
  }
  const answer: SlurmSyncAnswer = {
    down: groups(decision.down),
    hold: groups(decision.hold),
    restore: groups(decision.restore),
    powerDown: groups(decision.powerDown),
    closed,
    terminated,
  };
  if (answer.down.length + answer.hold.length + answer.restore.length + answer.powerDown.length > 0) {
    deps.logger.info('slurm sync', {
      cluster: report.cluster,
      down: answer.down.map((a) => a.nodes),
      hold: answer.hold.map((a) => a.nodes),
      restore: answer.restore.map((a) => a.nodes),
      powerDown: answer.powerDown.map((a) => a.nodes),
    });
  }
  return { ok: true, answer };
}
