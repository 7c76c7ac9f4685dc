/**
 * Human output of the CLI: tables (cli-table3) and colours (node:util styleText), colours only
 * when the output is a terminal and `NO_COLOR` is not set.
 */
import type { TenantsResponse } from '../http/tenant-routes.ts';
import { styleText } from 'node:util';
import Table from 'cli-table3';
import type { ClusterStatus, Health, PlanResponse } from '../http/schemas.ts';
import type { RequestRecord, RequestState } from '../ledger/schemas.ts';

type Colour = 'bold' | 'dim' | 'green' | 'red' | 'yellow' | 'cyan';
export type Paint = (colour: Colour, text: string) => string;

/** Colours when `enabled`; otherwise the text unchanged. */
export function painter(enabled: boolean): Paint {
  // The decision is ours (TTY and NO_COLOR, see `useColour`), so styleText must not second-guess it.
  return enabled ? (colour, text) => styleText(colour, text, { validateStream: false }) : (_colour, text) => text;
}

/** Colours only on a terminal, and never when `NO_COLOR` is set to anything non-empty (no-color.org). */
export function useColour(isTTY: boolean | undefined, env: Record<string, string | undefined>): boolean {
  return Boolean(isTTY) && !env.NO_COLOR;
}

export function paintState(paint: Paint, state: RequestState | string): string {
  if (state === 'fulfilled') return paint('green', state);
  if (state === 'failed' || state === 'rejected') return paint('red', state);
  if (state === 'partially_fulfilled') return paint('yellow', state);
  return paint('cyan', state);
}

function table(head: string[], paint: Paint, colWidths?: Array<number | undefined>): Table.Table {
  // Borders and heads are styled by us (or not at all): cli-table3's own colours ignore NO_COLOR.
  return new Table({ head: head.map((h) => paint('bold', h)), style: { head: [], border: [] }, ...(colWidths ? { colWidths: colWidths as number[], wordWrap: true } : {}) });
}

/** Width of a cell's text as a terminal shows it (colour codes take no room). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the ANSI colour codes this matches, on purpose
const visible = (text: string): number => text.replace(/\x1b\[[0-9;]*m/g, '').length;

/** Used when the output is not a terminal (a pipe, a file): long reasons still wrap. */
export const DEFAULT_WIDTH = 120;

/**
 * Column widths that keep a table within `width` characters by wrapping its last column (a reason);
 * undefined when it fits as it is. Other columns keep their natural width.
 */
export function wrapLastColumn(head: string[], rows: string[][], width: number): Array<number | undefined> | undefined {
  const natural = head.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))) + 2);
  const total = natural.reduce((a, b) => a + b, 0) + head.length + 1;
  if (total <= width) return undefined;
  const others = natural.slice(0, -1).reduce((a, b) => a + b, 0) + head.length + 1;
  return [...natural.slice(0, -1).map(() => undefined), Math.max(12, width - others)];
}

const dash = (v: string | number | null | undefined): string => (v === null || v === undefined || v === '' ? '-' : String(v));

/** Nodes of a request counted by CycleCloud status, in a stable order. */
export function nodesPerState(record: Pick<RequestRecord, 'nodes'>): [string, number][] {
  const counts = new Map<string, number>();
  for (const n of record.nodes) counts.set(n.status, (counts.get(n.status) ?? 0) + 1);
  return [...counts.entries()].sort(([a], [b]) => a.localeCompare(b));
}

export function progressOf(record: Pick<RequestRecord, 'demands'>): { ready: number; requested: number } {
  return record.demands.reduce((acc, d) => ({ ready: acc.ready + d.ready, requested: acc.requested + d.requested }), { ready: 0, requested: 0 });
}

/** `Acquiring 2, Ready 4` or `no nodes yet`. */
export function nodesSummary(record: Pick<RequestRecord, 'nodes'>): string {
  const counts = nodesPerState(record);
  return counts.length ? counts.map(([s, n]) => `${s} ${n}`).join(', ') : 'no nodes yet';
}

/** One line: `job-4711 submitted  ready 2/6  nodes: Acquiring 4, Ready 2`. */
export function progressLine(record: RequestRecord, paint: Paint): string {
  const { ready, requested } = progressOf(record);
  const readyPart = requested > 0 ? `  ready ${ready}/${requested}` : '';
  return `${record.requestId} ${paintState(paint, record.state)}${readyPart}  nodes: ${nodesSummary(record)}${record.reason ? `  (${record.reason})` : ''}`;
}

/** `status <requestId>`: the record as a summary and tables. */
export function renderRecord(record: RequestRecord, paint: Paint, width = DEFAULT_WIDTH): string {
  const out: string[] = [];
  const summary = table(['request', 'cluster', 'kind', 'state', 'created', 'updated'], paint);
  summary.push([record.requestId, record.cluster, record.kind, paintState(paint, record.state), record.createdAt, record.updatedAt]);
  out.push(summary.toString());
  if (record.reason) out.push(`reason: ${record.reason}`);
  for (const e of record.errors ?? []) out.push(paint('red', `  ${e.path || '(body)'}: ${e.message}`));
  if (record.demands.length) {
    const head = ['demand', 'requested', 'created', 'ready', 'nodearray', 'machine type', 'placement group', 'reason'];
    const rows = record.demands.map((d) => [
      String(d.index),
      String(d.requested),
      String(d.created),
      String(d.ready),
      dash(d.nodearray ?? null),
      dash(d.machineType),
      dash(d.placementGroupId),
      dash(d.reason ?? d.explanation ?? null),
    ]);
    const demands = table(head, paint, wrapLastColumn(head, rows, width));
    for (const row of rows) demands.push(row);
    out.push(demands.toString());
  }
  if (record.operations.length) {
    const ops = table(['operation', 'CycleCloud requestId', 'action', 'state'], paint);
    for (const o of record.operations) ops.push([dash(o.operationId), o.cycleCloudRequestId, o.action ?? operationAction(record.kind, o.cycleCloudRequestId), o.state]);
    out.push(ops.toString());
  }
  out.push(`nodes: ${nodesSummary(record)}`);
  if (record.cost) out.push(costLine(record.cost));
  return out.join('\n');
}

/** `12.34 USD`; `-` when unknown (no price table). */
export const money = (amount: number | null | undefined, currency: string | null, digits = 2): string =>
  amount === null || amount === undefined ? '-' : `${amount.toFixed(digits)}${currency ? ` ${currency}` : ''}`;

/** `cost: 0.0421 USD for 0.03 node-hours, as of …` and the machine types the table has no price for. */
export function costLine(cost: NonNullable<RequestRecord['cost']>): string {
  const line = `cost: ${money(cost.amount, cost.currency, 4)} for ${(cost.nodeSeconds / 3600).toFixed(2)} node-hours, as of ${cost.asOf}`;
  return cost.unpriced.length ? `${line}\n  no price for ${cost.unpriced.join(', ')}: their node-hours are not in the amount` : line;
}

/**
 * What an operation does, when the record does not say: a terminate request's operations terminate;
 * a scale request's create under `<id>-g<generation>`, and its compensations (a partial gang's
 * nodes) terminate under `<id>-g<generation>-c`.
 */
export function operationAction(kind: RequestRecord['kind'], cycleCloudRequestId: string | null | undefined): string {
  if (kind === 'terminate' || kind === 'start') return kind;
  return cycleCloudRequestId && /-g\d+-c$/.test(cycleCloudRequestId) ? 'terminate (compensation)' : 'create';
}

/** `plan`: the sets CycleCloud would receive and, per demand, why. */
export function renderPlan(plan: PlanResponse, paint: Paint, width = DEFAULT_WIDTH): string {
  const out: string[] = [`cluster ${plan.cluster}, snapshot taken ${plan.snapshotTakenAt}`];
  if (plan.paused) out.push(paint('yellow', 'scale-out is paused: this plan would wait until resumed'));
  if (plan.sets.length) {
    const sets = table(['set', 'nodearray', 'machine type', 'bucket', 'placement group', 'count', 'demands'], paint);
    for (const [i, s] of plan.sets.entries())
      sets.push([i, s.nodearray, s.machineType, s.bucketId, dash(s.placementGroupId), s.count, s.demands.map((d) => `#${d.index}×${d.count}`).join(' ')]);
    out.push(sets.toString());
  } else {
    out.push(paint('yellow', 'nothing would be created now'));
  }
  const head = ['demand', 'requested', 'planned', 'status', 'nodearray', 'bound by', 'why'];
  const rows = plan.demands.map((d) => {
    const status = d.status === 'placed' ? paint('green', d.status) : d.status === 'rejected' ? paint('red', d.status) : paint('yellow', d.status);
    return [String(d.index), String(d.requested), String(d.planned), status, dash(d.nodearray), dash(d.boundBy), dash(d.explanation ?? d.reason)];
  });
  const demands = table(head, paint, wrapLastColumn(head, rows, width));
  for (const row of rows) demands.push(row);
  out.push(demands.toString());
  return out.join('\n');
}

/** `clusters`: buckets with available/active/max and their placement groups. */
export function renderCluster(status: ClusterStatus, paint: Paint): string {
  const age = `${status.ageSeconds} s old`;
  const head = `${paint('bold', status.cluster)}  snapshot ${status.takenAt} (${status.stale ? paint('red', `${age}, STALE`) : age})`;
  const t = table(['nodearray', 'bucket', 'machine type', 'vCPU', 'IB', 'available/active/max', 'PG size', 'placement groups'], paint);
  for (const na of status.nodearrays) {
    for (const b of na.buckets) {
      const machine = b.valid ? b.machineType : `${b.machineType} ${paint('red', '(invalid)')}`;
      const groups = b.placementGroups.length ? b.placementGroups.map((g) => `${g.name}:${g.activeCount}`).join(', ') : '-';
      t.push([na.name, b.bucketId, machine, b.vcpuCount, b.infiniband ? 'yes' : 'no', `${b.availableCount}/${b.activeCount}/${b.maxCount}`, b.maxPlacementGroupSize, groups]);
    }
  }
  return `${head}\n${t.toString()}`;
}

export function renderHealth(health: Health, paint: Paint): string {
  const status = health.status === 'ok' ? paint('green', 'ok') : paint('red', 'degraded');
  const lines = [
    `status: ${status}`,
    `storage: ${health.storage.reachable ? 'reachable' : paint('red', 'unreachable')}`,
    `queue ${health.queue.name}: ${dash(health.queue.depth)} message(s)`,
    `poison ${health.poison.name}: ${dash(health.poison.count)} message(s)`,
    `rejected messages: ${dash(health.rejectedMessages)}`,
    `scale-out: ${health.paused === null ? 'unknown' : health.paused ? paint('yellow', 'paused') : 'running'}`,
  ];
  if (health.clusters.length) {
    const t = table(['cluster', 'snapshot taken', 'age (s)', 'stale', 'consecutive failures'], paint);
    for (const c of health.clusters) t.push([c.cluster, dash(c.takenAt), dash(c.ageSeconds), c.stale ? paint('red', 'yes') : 'no', c.consecutiveFailures]);
    lines.push(t.toString());
  } else {
    lines.push('no clusters yet');
  }
  return lines.join('\n');
}

/**
 * `ccscale tenants`: one line per tenant (weight, caps, and with a price table what it spent today and
 * this month, UTC, over every cluster; its monthly budget), then one per cluster it may use.
 */
export function renderTenants(view: TenantsResponse, paint: Paint = painter(false)): string {
  const lines = [view.declared ? 'tenants (from the tenants document):' : "no tenants document: every request is default's, weight 1, no cap"];
  for (const t of view.tenants) {
    const clusters = Object.keys(t.usage);
    const where = (c: string) => (c === '*' ? 'in all clusters' : `on ${c}`);
    const caps = [...Object.entries(t.caps.maxCores).map(([c, n]) => `${n} cores ${where(c)}`), ...Object.entries(t.caps.maxNodes).map(([c, n]) => `${n} nodes ${where(c)}`)];
    const costs = view.currency !== null ? `  cost today ${money(t.costToday, view.currency)}  this month ${money(t.costMonth, view.currency)}` : '';
    // With a price table every tenant shows its budget (`-`: none); without one only a declared budget (not enforced then)
    const budget = t.budget
      ? `  budget ${t.budget.monthly}${view.currency ? ` ${view.currency}` : ''}${t.budget.past ? ` ${paint('red', '(past)')}` : ''}`
      : view.currency !== null
        ? '  budget -'
        : '';
    lines.push(
      `  ${t.name}  weight ${t.weight}${caps.length ? `  caps: ${caps.join(', ')}` : ''}${t.caps.clusters ? `  clusters: ${t.caps.clusters.join(', ')}` : ''}${costs}${budget}`,
    );
    for (const c of clusters) {
      const u = t.usage[c]!;
      const cap = t.caps.maxCores[c];
      lines.push(`    ${c}: ${u.nodes} nodes, ${u.cores}${cap !== undefined ? ` of ${cap}` : ''} cores, share ${Math.round((t.share[c] ?? 0) * 1000) / 10} %`);
    }
  }
  return lines.join('\n');
}
