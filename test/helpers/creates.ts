/**
 * Reading recorded `nodes/create` calls when creates may be batched: a call belongs to a request
 * when its CycleCloud requestId is one of the request's own (`<requestId>-g<n>`) or when one of its
 * sets carries the request's `ccscale-request` tag (a batch carries sets of several requests).
 */
import { CREATE_TAG, REQUEST_TAG } from '../../src/cyclecloud/tags.ts';

interface CallLike {
  method: string;
  path: string;
  body?: unknown;
}
interface WireSet {
  count: number;
  nodeAttributes?: { Tags?: Record<string, unknown> };
}

const body = (c: CallLike) => (c.body ?? {}) as { requestId?: string; sets?: WireSet[] };
const owns = (s: WireSet, requestId: string) => String(s.nodeAttributes?.Tags?.[REQUEST_TAG] ?? '').startsWith(requestId);

export const isCreate = (c: CallLike): boolean => c.method === 'POST' && c.path.endsWith('/nodes/create');

/** The create calls carrying sets of requests whose ids start with `requestId` (every create when undefined). */
export function createCallsOf<C extends CallLike>(calls: readonly C[], requestId?: string): C[] {
  return calls.filter((c) => isCreate(c) && (requestId === undefined || String(body(c).requestId).startsWith(requestId) || (body(c).sets ?? []).some((s) => owns(s, requestId))));
}

/** A create call's sets that belong to requests whose ids start with `requestId`. */
export function setsOf(c: CallLike, requestId: string): WireSet[] {
  const sets = body(c).sets ?? [];
  return String(body(c).requestId).startsWith(requestId) && !sets.some((s) => s.nodeAttributes?.Tags?.[REQUEST_TAG]) ? sets : sets.filter((s) => owns(s, requestId));
}

/** How many nodes a create call asks for on behalf of requests whose ids start with `requestId`. */
export const askedFor = (c: CallLike, requestId: string): number => setsOf(c, requestId).reduce((n, s) => n + s.count, 0);

/** The member create ids (`<requestId>-g<n>`) a call carries: its sets' `ccscale-create` tags, else its own requestId. */
export function memberCreatesOf(c: CallLike): string[] {
  const tagged = (body(c).sets ?? []).map((s) => s.nodeAttributes?.Tags?.[CREATE_TAG]).filter((x): x is string => typeof x === 'string');
  return tagged.length > 0 ? [...new Set(tagged)] : [String(body(c).requestId)];
}
