/**
 * Structural limits on request messages (README "Security"): what keeps a hostile or careless
 * body from overflowing a stack or a storage row before validation has even started.
 *
 * - Any message: JSON nesting at most {@link MAX_MESSAGE_DEPTH} levels, checked without recursion
 *   before the schema runs, so depth 10 000 is a 400 naming the field, not a stack overflow.
 * - `nodeAttributes` (passed to CycleCloud unchanged): nesting at most
 *   {@link NODE_ATTRIBUTES_MAX_DEPTH} levels below the object, and at most
 *   {@link NODE_ATTRIBUTES_MAX_BYTES} bytes as JSON per demand.
 */
import { z } from 'zod';
import type { FieldError } from './schemas.ts';

/** Nesting of any message, counted in objects and arrays from the top (a scale request needs 4). */
export const MAX_MESSAGE_DEPTH = 32;
/** Nesting inside one demand's `nodeAttributes` (the object itself is level 1). */
export const NODE_ATTRIBUTES_MAX_DEPTH = 8;
/** One demand's `nodeAttributes` as compact JSON. */
export const NODE_ATTRIBUTES_MAX_BYTES = 16 * 1024;

/** How many path segments an error names before eliding the rest. */
const SHOWN_SEGMENTS = 6;

/**
 * The first place where `value` nests deeper than `maxDepth` (iterative: safe at any depth), or
 * null. The path names the field where the limit was crossed, elided after a few segments.
 */
export function nestingError(value: unknown, maxDepth: number = MAX_MESSAGE_DEPTH): FieldError | null {
  const stack: { v: unknown; depth: number; path: string[] }[] = [{ v: value, depth: 0, path: [] }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > maxDepth) {
      const shown = path.slice(0, SHOWN_SEGMENTS).join('.') + (path.length > SHOWN_SEGMENTS ? '…' : '');
      return { path: shown, message: `nests deeper than ${maxDepth} levels of objects and arrays` };
    }
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    for (const [k, x] of entries) if (x !== null && typeof x === 'object') stack.push({ v: x, depth: depth + 1, path: [...path, k] });
  }
  return null;
}

/** `nodeAttributes` of a demand: an object passed to CycleCloud unchanged, within the limits above. */
export const NodeAttributes = z
  .record(z.string(), z.unknown())
  .superRefine((attrs, ctx) => {
    const deep = nestingError(attrs, NODE_ATTRIBUTES_MAX_DEPTH);
    if (deep) {
      ctx.addIssue({ code: 'custom', message: `${deep.message}${deep.path ? ` (at ${deep.path})` : ''}` });
      return;
    }
    const bytes = Buffer.byteLength(JSON.stringify(attrs));
    if (bytes > NODE_ATTRIBUTES_MAX_BYTES) ctx.addIssue({ code: 'custom', message: `is ${bytes} bytes as JSON; at most ${NODE_ATTRIBUTES_MAX_BYTES} are allowed` });
  })
  .meta({ description: `Passed to CycleCloud unchanged. At most ${NODE_ATTRIBUTES_MAX_DEPTH} levels deep and ${NODE_ATTRIBUTES_MAX_BYTES} bytes as JSON.` });

/** True when `text` is a URL the WHATWG parser accepts (never throws). */
export function parsesAsUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

/** Loopback host names http callbacks may use in local development. */
export const LOOPBACK_HOSTS: readonly string[] = ['127.0.0.1', 'localhost', '[::1]'];

/**
 * `callbackUrl`: an absolute https URL without credentials (http only to a loopback host, for a
 * scheduler on the same machine in local development; the sender refuses it in Azure). Every
 * malformed value is a field error, never an exception.
 */
export const CallbackUrl = z
  .string({ error: 'must be an https URL' })
  .max(2048, 'must be at most 2048 characters')
  .superRefine((text, ctx) => {
    const url = parsesAsUrl(text);
    if (!url || !/^https?:$/.test(url.protocol) || url.hostname === '') {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute https URL' });
      return;
    }
    if (url.username || url.password) {
      ctx.addIssue({ code: 'custom', message: 'must not contain credentials' });
      return;
    }
    if (url.protocol === 'http:' && !LOOPBACK_HOSTS.includes(url.hostname)) {
      ctx.addIssue({ code: 'custom', message: 'must be an https URL (http is accepted only for loopback hosts)' });
    }
  })
  .meta({ format: 'uri' });

export { LEASE_SECONDS, MAX_LIFETIME_SECONDS } from '../platform/lifetimes.ts';
