/**
 * The tenants document (docs/api.md, Tenants): who may ask for nodes, with what weight and caps.
 * Set inline in `TENANTS` or kept in Key Vault under `TENANTS_SECRET_NAME`; parsed once at start-up,
 * a bad one names the field (`TENANTS: tenants.cfd.maxCores.hpc: must be a whole number ≥ 1`).
 *
 * A request names its `tenant`, or gets the tenant whose `keys` hold the SHA-256 of the function key
 * it came with, else `default`. Without a document every tenant is allowed, with weight 1 and no cap.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type DocumentResult, parseJsonDocument } from './json-document.ts';

export const TENANT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const DEFAULT_TENANT = 'default';

export const TenantName = z.string({ error: 'must be a tenant name' }).regex(TENANT_NAME, 'must be 1–63 lower-case letters, digits and . _ - (starting with a letter or digit)');

const cap = z.number({ error: 'must be a whole number ≥ 1' }).int('must be a whole number ≥ 1').min(1, 'must be a whole number ≥ 1');
/** Per cluster name: the cap on that cluster. */
const caps = z.record(z.string().min(1, 'must name a cluster'), cap);

export const Tenant = z
  .object({
    weight: z.number({ error: 'must be a number > 0' }).positive('must be > 0').max(1_000_000, 'must be ≤ 1000000').default(1),
    maxCores: caps.optional(),
    maxNodes: caps.optional(),
    /** Clusters it may use; absent = every cluster. */
    clusters: z.array(z.string().min(1)).min(1, 'lists at least one cluster (or leave it out: every cluster)').optional(),
    /** Spend per calendar month (UTC) in the price table's currency: past it, new demands wait (docs/api.md, Cost). */
    budget: z
      .object({
        monthly: z.number({ error: 'must be an amount > 0' }).positive('must be an amount > 0'),
        /** Optional; must be the price table's (checked at start-up). */
        currency: z
          .string()
          .regex(/^[A-Z]{3}$/, 'must be a 3-letter currency code such as USD')
          .optional(),
      })
      .strict()
      .optional(),
    /** `sha256:<hex>` of function keys whose requests belong to this tenant when they name none. */
    keys: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 lower-case hex digits> of a function key')).optional(),
  })
  .strict();
export type Tenant = z.infer<typeof Tenant>;

export const TenantsDocument = z
  .object({
    tenants: z.record(TenantName, Tenant).refine((t) => Object.keys(t).length > 0, 'declares at least one tenant'),
  })
  .strict();
export type TenantsDocument = z.infer<typeof TenantsDocument>;

/** The parsed document with what intake and the planner ask of it. */
export interface Tenants {
  /** False without a document: every name is allowed, weight 1, no caps. */
  readonly declared: boolean;
  readonly names: readonly string[];
  get(name: string): Tenant | undefined;
  /** The tenant a request belongs to when it names none: by its function key, else `default`. */
  forKey(functionKey: string | undefined): string;
  /** Why `tenant` may not ask for nodes on `cluster`, or null when it may. */
  refusal(tenant: string, cluster: string): string | null;
}

/** The text of one document problem: `tenants.cfd.weight: must be > 0`. */
export function parseTenantsDocument(text: string): DocumentResult<TenantsDocument> {
  return parseJsonDocument(TenantsDocument, text);
}

export const keyHash = (key: string): string => `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;

export function tenantsOf(doc: TenantsDocument | undefined): Tenants {
  const byName = new Map(Object.entries(doc?.tenants ?? {}));
  const byKey = new Map<string, string>();
  for (const [name, t] of byName) for (const k of t.keys ?? []) byKey.set(k, name);
  const names = [...byName.keys()].sort();
  return {
    declared: doc !== undefined,
    names,
    get: (name) => byName.get(name),
    forKey: (key) => (key && byKey.size > 0 ? (byKey.get(keyHash(key)) ?? DEFAULT_TENANT) : DEFAULT_TENANT),
    refusal(tenant, cluster) {
      if (!doc) return null;
      const t = byName.get(tenant);
      if (!t) return `tenant "${tenant}" is not declared (declared: ${names.join(', ')})`;
      if (t.clusters && !t.clusters.includes(cluster)) return `tenant ${tenant} may not use cluster ${cluster} (its clusters: ${t.clusters.join(', ')})`;
      return null;
    },
  };
}
