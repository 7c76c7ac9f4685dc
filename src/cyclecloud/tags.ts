/**
 * The scaler's mark on the nodes it creates. Every create set carries `nodeAttributes.Tags` naming
 * the caller's request and the CycleCloud requestId of the create (reference §3.5: `nodeAttributes`
 * are "additional attributes to be set on each node from this set"; §3.4: `Tags` is a node key set
 * through them, and CycleCloud passes node tags on to the Azure VM). Two things follow:
 * - a node is never anonymous: the snapshot shows whose it is, so a node no record accounts for (an
 *   orphan) can be found, adopted or terminated;
 * - a create whose answer was lost can be found in the full node list even when CycleCloud no longer
 *   answers a lookup by request id (how long it remembers ids is not documented, §5.1).
 */
import type { NodeRecord } from './schemas.ts';

/** Tag naming the caller's requestId (the ledger key). */
export const REQUEST_TAG = 'ccscale-request';
/** Tag naming the CycleCloud requestId of the create that made the node. */
export const CREATE_TAG = 'ccscale-create';
/** Tag naming the request's tenant, when it is not `default` (docs/api.md, Tenants). */
export const TENANT_TAG = 'ccscale-tenant';

export interface ScalerMark {
  requestId: string;
  cycleCloudRequestId: string;
  /** Absent: the `default` tenant. */
  tenant?: string;
}

/** `nodeAttributes` with the scaler's tags merged into the caller's own `Tags` (the caller's other tags stay). */
export function markAttributes(attributes: Record<string, unknown> | undefined, mark: ScalerMark): Record<string, unknown> {
  const own = attributes?.Tags;
  const tags = own && typeof own === 'object' && !Array.isArray(own) ? (own as Record<string, unknown>) : {};
  return {
    ...attributes,
    Tags: { ...tags, [REQUEST_TAG]: mark.requestId, [CREATE_TAG]: mark.cycleCloudRequestId, ...(mark.tenant ? { [TENANT_TAG]: mark.tenant } : {}) },
  };
}

/** The scaler's mark on a node record, or null for a node the scaler did not create. */
export function markOf(node: Pick<NodeRecord, 'Name'> & { Tags?: unknown }): ScalerMark | null {
  const tags = node.Tags;
  if (!tags || typeof tags !== 'object' || Array.isArray(tags)) return null;
  const requestId = (tags as Record<string, unknown>)[REQUEST_TAG];
  const cycleCloudRequestId = (tags as Record<string, unknown>)[CREATE_TAG];
  if (typeof requestId !== 'string' || !requestId || typeof cycleCloudRequestId !== 'string' || !cycleCloudRequestId) return null;
  const tenant = (tags as Record<string, unknown>)[TENANT_TAG];
  return typeof tenant === 'string' && tenant ? { requestId, cycleCloudRequestId, tenant } : { requestId, cycleCloudRequestId };
}
