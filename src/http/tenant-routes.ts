/**
 * `GET /api/tenants` (docs/api.md, Tenants): each tenant's weight, caps and what it holds per cluster
 * (nodes and cores: its tagged nodes in the newest snapshot plus its reservations since), with its
 * dominant share of each cluster, and with a price table what it spent today and this month (the
 * cost meter) against its monthly budget.
 */
import { z } from 'zod';
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import type { Logger } from '../platform/log.ts';
import { DEFAULT_TENANT } from '../platform/tenants.ts';
import type { HttpDeps } from './deps.ts';
import type { RouteDefinition, RouteHandler } from './routes.ts';
import { json } from './problem.ts';

const Holding = z.object({ nodes: z.number().int(), cores: z.number().int() });

export const TenantsResponse = z.object({
  /** False without a tenants document: every request is `default`'s, weight 1, no cap. */
  declared: z.boolean(),
  tenants: z.array(
    z.object({
      name: z.string(),
      weight: z.number(),
      caps: z.object({
        maxCores: z.record(z.string(), z.number().int()),
        maxNodes: z.record(z.string(), z.number().int()),
        /** Clusters it may use; null = every cluster. */
        clusters: z.array(z.string()).nullable(),
      }),
      /** Per cluster: nodes and cores it holds (tagged nodes in the newest snapshot plus its reservations since). */
      usage: z.record(z.string(), Holding),
      /** Per cluster: the larger of its node and core fractions of the cluster (0–1), before weight. */
      share: z.record(z.string(), z.number()),
      /** What its nodes cost today (UTC) over every configured cluster, in `currency`; null without a price table. */
      costToday: z.number().nullable(),
      /** The same over this calendar month (UTC); null without a price table. */
      costMonth: z.number().nullable(),
      /** Its monthly budget and whether this month's spend reached it (new demands then wait); null = none. */
      budget: z.object({ monthly: z.number(), spent: z.number().nullable(), past: z.boolean() }).nullable(),
    }),
  ),
  /** The price table's currency; null without one. */
  currency: z.string().nullable(),
});
export type TenantsResponse = z.infer<typeof TenantsResponse>;

/** What the route reads per cluster: each tenant's holding and the cluster's size; null = no snapshot yet. */
export type TenantUsageReader = (cluster: string) => Promise<{ holdings: ReadonlyMap<string, { nodes: number; cores: number }>; size: { nodes: number; cores: number } } | null>;

/** The route, as a `ROUTES` entry (`routes.ts` hands in its `guarded`; this file imports only its types). */
export function tenantRoutes(guarded: (route: string, impl: (deps: HttpDeps, request: HttpRequest, log: Logger) => Promise<HttpResponseInit>) => RouteHandler): RouteDefinition[] {
  const handler = guarded('tenants', async (deps) => {
    const clusters = deps.configuredClusters?.() ?? [];
    const usage = await Promise.all(clusters.map(async (c) => [c, (await deps.tenantUsage?.(c)) ?? null] as const));
    const names = new Set<string>(deps.tenants?.names ?? []);
    for (const [, u] of usage) for (const t of u?.holdings.keys() ?? []) names.add(t);
    const prices = deps.prices?.();
    const spend = prices && deps.tenantCosts ? await deps.tenantCosts(deps.now()) : undefined;
    for (const t of spend?.keys() ?? []) names.add(t);
    if (names.size === 0) names.add(DEFAULT_TENANT);
    const tenants = [...names].sort().map((name) => {
      const t = deps.tenants?.get(name);
      const held: Record<string, { nodes: number; cores: number }> = {};
      const share: Record<string, number> = {};
      for (const [cluster, u] of usage) {
        const h = u?.holdings.get(name) ?? { nodes: 0, cores: 0 };
        held[cluster] = { nodes: h.nodes, cores: h.cores };
        const size = u?.size ?? { nodes: 0, cores: 0 };
        share[cluster] = Number(Math.max(size.nodes > 0 ? h.nodes / size.nodes : 0, size.cores > 0 ? h.cores / size.cores : 0).toFixed(4));
      }
      return {
        name,
        weight: t?.weight ?? 1,
        caps: { maxCores: t?.maxCores ?? {}, maxNodes: t?.maxNodes ?? {}, clusters: t?.clusters ?? null },
        usage: held,
        share,
        costToday: spend ? (spend.get(name)?.today ?? 0) : null,
        costMonth: spend ? (spend.get(name)?.month ?? 0) : null,
        budget: t?.budget
          ? { monthly: t.budget.monthly, spent: spend ? (spend.get(name)?.month ?? 0) : null, past: spend ? (spend.get(name)?.month ?? 0) >= t.budget.monthly : false }
          : null,
      };
    });
    return json(200, { declared: deps.tenants?.declared ?? false, currency: prices?.currency ?? null, tenants } satisfies TenantsResponse);
  });
  return [
    {
      name: 'tenants',
      methods: ['GET'],
      route: 'tenants',
      authLevel: 'function',
      summary: "Each tenant's weight, caps, and the nodes and cores it holds per cluster, with its dominant share",
      description:
        "docs/api.md, Tenants. Usage is the tenant's tagged nodes in the newest snapshot of each configured cluster plus its reservations since; `costToday` and `costMonth` (the cost meter, docs/api.md Cost) are null without a price table.",
      responseSchema: TenantsResponse,
      handler,
    },
  ];
}
