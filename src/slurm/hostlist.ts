/**
 * Slurm hostlist expressions (`hpc-[1-4,7],htc-3`), parsed and formatted the way Slurm 22.05's
 * `hostlist.c` does, so what slurmctld hands the ResumeProgram and what `scontrol show hostnames`
 * prints are the same names here. Checked against the real `scontrol show hostnames|hostlist` in
 * test/e2e/slurm.test.ts; the rules below are what that showed:
 *
 * - Items are separated by `,` or whitespace outside brackets; order and duplicates are kept.
 * - `[lo-hi,n,…]` expands each range in order; the zero-padded width is the length of `lo` as
 *   written (`[01-10]` → 01…10, `[1-010]` → 1…10); `hi < lo` is an error.
 * - Several bracket groups expand as a product, left to right (`a[1-2]b[3-4]` → a1b3,a1b4,a2b3,a2b4);
 *   text after the last bracket is an error (`a[1-2]b`), as in Slurm.
 * - Formatting keeps the given order: a name joins the previous range when it has the same prefix,
 *   its number is the range's last + 1 and the zero-padding widths are compatible (`a9,a10` →
 *   `a[9-10]`, `a08,a9` → `a[08,9]`); consecutive ranges with the same prefix share one bracket.
 *
 * Pure: no I/O.
 */
import { ScalerError } from '../platform/errors.ts';

/** A hostlist that Slurm would refuse too; `message` names the offending part. */
export class HostlistError extends ScalerError<'SLURM_BAD_HOSTLIST'> {
  override name = 'HostlistError';
  constructor(message: string, options?: ErrorOptions) {
    super('SLURM_BAD_HOSTLIST', message, options);
  }
}

/** Most names one expression may expand to (Slurm's own limit is about this order). */
export const MAX_HOSTLIST_NAMES = 100_000;

function splitItems(expression: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of expression) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (depth < 0) throw new HostlistError(`unbalanced "]" in hostlist ${JSON.stringify(expression)}`);
    if (depth === 0 && (ch === ',' || /\s/.test(ch))) {
      if (current) items.push(current);
      current = '';
      continue;
    }
    if (depth > 1) throw new HostlistError(`nested "[" in hostlist ${JSON.stringify(expression)}`);
    current += ch;
  }
  if (depth !== 0) throw new HostlistError(`unclosed "[" in hostlist ${JSON.stringify(expression)}`);
  if (current) items.push(current);
  return items;
}

/** The numbers of one bracket body, as zero-padded strings. */
function expandRanges(body: string, item: string, budget: number): string[] {
  const out: string[] = [];
  for (const part of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new HostlistError(`invalid range "${part}" in ${JSON.stringify(item)}`);
    const loText = m[1]!;
    const lo = BigInt(loText);
    const hi = m[2] === undefined ? lo : BigInt(m[2]);
    if (hi < lo) throw new HostlistError(`invalid range "${part}" in ${JSON.stringify(item)}: ${m[2]} is below ${loText}`);
    if (hi - lo + BigInt(out.length) >= BigInt(budget)) throw new HostlistError(`hostlist expands to more than ${MAX_HOSTLIST_NAMES} names`);
    for (let n = lo; n <= hi; n++) out.push(n.toString().padStart(loText.length, '0'));
  }
  return out;
}

/**
 * Expands a hostlist expression to node names, in Slurm's order, duplicates kept.
 * Throws {@link HostlistError} for what Slurm refuses (and for more than {@link MAX_HOSTLIST_NAMES}).
 *
 * @example expandHostlist('hpc-[1-3,7],htc-3') // ['hpc-1','hpc-2','hpc-3','hpc-7','htc-3']
 */
export function expandHostlist(expression: string): string[] {
  const names: string[] = [];
  for (const item of splitItems(expression)) {
    // literal ( "[" body "]" literal )*, with no literal after the last bracket.
    const pieces = item.split(/\[([^\]]*)\]/);
    if (pieces.length === 1) {
      names.push(item);
      continue;
    }
    if (pieces[pieces.length - 1] !== '') throw new HostlistError(`text after "]" in ${JSON.stringify(item)}`);
    let partial = [''];
    for (let i = 0; i < pieces.length - 1; i += 2) {
      const numbers = expandRanges(pieces[i + 1]!, item, MAX_HOSTLIST_NAMES - names.length);
      const next: string[] = [];
      for (const head of partial) {
        for (const n of numbers) {
          next.push(`${head}${pieces[i]}${n}`);
          if (next.length + names.length > MAX_HOSTLIST_NAMES) throw new HostlistError(`hostlist expands to more than ${MAX_HOSTLIST_NAMES} names`);
        }
      }
      partial = next;
    }
    names.push(...partial);
  }
  return names;
}

/** A name split as Slurm does: prefix, and the trailing digits (null when there are none). */
export function splitName(name: string): { prefix: string; number: bigint | null; width: number } {
  const m = /^(.*?)(\d+)$/s.exec(name);
  if (!m) return { prefix: name, number: null, width: 0 };
  return { prefix: m[1]!, number: BigInt(m[2]!), width: m[2]!.length };
}

const digits = (n: bigint): number => n.toString().length;
const zeroPadding = (n: bigint, width: number): number => Math.max(0, width - digits(n));

/**
 * Slurm's `_width_equiv`: whether a number written with width `wm` can extend a range whose low end
 * `n` is written with width `wn`; returns the width the range keeps, or null.
 */
function equivalentWidth(n: bigint, wn: number, m: bigint, wm: number): number | null {
  if (wn === wm) return wn;
  const npad = zeroPadding(n, wn);
  const nmpad = zeroPadding(n, wm);
  const mpad = zeroPadding(m, wm);
  const mnpad = zeroPadding(m, wn);
  if (npad !== nmpad && mpad !== mnpad) return null;
  if (npad !== nmpad) return mpad === mnpad ? wn : null;
  return wm;
}

interface Range {
  prefix: string;
  lo: bigint;
  hi: bigint;
  width: number;
}

/**
 * The ranged form of a list of names, as `scontrol show hostlist` prints it: order kept, no sorting
 * and no de-duplication (callers sort first when they want the shortest form).
 *
 * @example formatHostlist(['hpc-1','hpc-2','hpc-3','htc-3']) // 'hpc-[1-3],htc-3'
 */
export function formatHostlist(names: readonly string[]): string {
  const ranges: (Range | { prefix: string; lo: null })[] = [];
  for (const name of names) {
    const { prefix, number, width } = splitName(name);
    if (number === null) {
      ranges.push({ prefix, lo: null });
      continue;
    }
    const last = ranges[ranges.length - 1];
    if (last && last.lo !== null && last.prefix === prefix && last.hi + 1n === number) {
      const w = equivalentWidth(last.lo, last.width, number, width);
      if (w !== null) {
        last.width = w;
        last.hi = number;
        continue;
      }
    }
    ranges.push({ prefix, lo: number, hi: number, width });
  }
  const out: string[] = [];
  for (let i = 0; i < ranges.length; ) {
    const first = ranges[i]!;
    if (first.lo === null) {
      out.push(first.prefix);
      i++;
      continue;
    }
    const group: Range[] = [first];
    for (i++; i < ranges.length; i++) {
      const r = ranges[i]!;
      if (r.lo === null || r.prefix !== first.prefix) break;
      group.push(r);
    }
    const pad = (n: bigint, w: number): string => n.toString().padStart(w, '0');
    const text = group.map((r) => (r.lo === r.hi ? pad(r.lo, r.width) : `${pad(r.lo, r.width)}-${pad(r.hi, r.width)}`));
    out.push(group.length === 1 && first.lo === first.hi ? `${first.prefix}${text[0]}` : `${first.prefix}[${text.join(',')}]`);
  }
  return out.join(',');
}

/** Names sorted for the shortest ranged form: by prefix, then number, then width; unique. */
export function sortNames(names: Iterable<string>): string[] {
  return [...new Set(names)].sort((a, b) => {
    const x = splitName(a);
    const y = splitName(b);
    if (x.prefix !== y.prefix) return x.prefix < y.prefix ? -1 : 1;
    if (x.number === null || y.number === null) return x.number === null ? (y.number === null ? 0 : -1) : 1;
    if (x.number !== y.number) return x.number < y.number ? -1 : 1;
    return x.width - y.width;
  });
}
