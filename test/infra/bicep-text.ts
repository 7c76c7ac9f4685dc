/**
 * A light reader of Bicep source text, enough to check the templates' invariants offline (nothing
 * on the build machines can compile Bicep). It understands comments, single-quoted strings with
 * `${…}` interpolation, and brace/bracket structure; it finds `param`, `var`, `resource`, `module`
 * and `output` declarations and the property blocks inside them. It is not a Bicep parser: it
 * reports what the text says, and the checks in `infra-checks.ts` decide what that must be.
 */

/**
 * The source with comments and the inside of string literals blanked to spaces (quotes kept), so
 * structural searches never match text inside a string or a comment. Offsets are unchanged.
 * `keepStrings` blanks comments only. Throws on an unterminated string or block comment.
 */
export function mask(src: string, options: { keepStrings?: boolean } = {}): string {
  const out = src.split('');
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  let i = 0;
  const scanString = (start: number): number => {
    // start is at the opening quote; returns the index after the closing quote.
    let j = start + 1;
    while (j < src.length) {
      const c = src[j];
      if (c === '\\') {
        j += 2;
        continue;
      }
      if (c === "'") return j + 1;
      if (c === '$' && src[j + 1] === '{') {
        // Interpolation: scan an expression up to the matching `}`, which may contain strings.
        let depth = 1;
        j += 2;
        while (j < src.length && depth > 0) {
          const d = src[j];
          if (d === "'") j = scanString(j);
          else {
            if (d === '{') depth++;
            else if (d === '}') depth--;
            j++;
          }
        }
        continue;
      }
      if (c === '\n') throw new Error(`unterminated string at offset ${start}`);
      j++;
    }
    throw new Error(`unterminated string at offset ${start}`);
  };
  while (i < src.length) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      const stop = end === -1 ? src.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end === -1) throw new Error(`unterminated block comment at offset ${i}`);
      blank(i, end + 2);
      i = end + 2;
    } else if (c === "'") {
      const end = scanString(i);
      if (!options.keepStrings) blank(i + 1, end - 1);
      i = end;
    } else {
      i++;
    }
  }
  return out.join('');
}

/** The first bracket that does not balance, or undefined when `{}`, `[]` and `()` all balance. */
export function unbalanced(src: string): string | undefined {
  let masked: string;
  try {
    masked = mask(src);
  } catch (e) {
    return (e as Error).message;
  }
  const pairs: Record<string, string> = { '}': '{', ']': '[', ')': '(' };
  const stack: { c: string; at: number }[] = [];
  for (let i = 0; i < masked.length; i++) {
    const c = masked[i]!;
    if (c === '{' || c === '[' || c === '(') stack.push({ c, at: i });
    else if (c in pairs) {
      const top = stack.pop();
      if (!top || top.c !== pairs[c]) return `unexpected '${c}' at line ${lineOf(src, i)}`;
    }
  }
  const open = stack.pop();
  return open ? `'${open.c}' opened at line ${lineOf(src, open.at)} is never closed` : undefined;
}

export function lineOf(src: string, offset: number): number {
  return src.slice(0, offset).split('\n').length;
}

/** Index of the bracket closing the one at `open` (in masked text). */
function closing(masked: string, open: number): number {
  const o = masked[open]!;
  const c = o === '{' ? '}' : o === '[' ? ']' : ')';
  let depth = 0;
  for (let i = open; i < masked.length; i++) {
    if (masked[i] === o) depth++;
    else if (masked[i] === c) {
      depth--;
      if (depth === 0) return i;
    }
  }
  throw new Error(`bracket at offset ${open} is never closed`);
}

export interface BicepParam {
  name: string;
  type: string;
  /** The default value's source text, when there is one. */
  defaultText?: string;
}

export interface BicepResource {
  symbol: string;
  /** Full type, e.g. `Microsoft.Web/sites` (children declared inside a parent keep their short type). */
  type: string;
  apiVersion: string;
  existing: boolean;
  /** The condition's source text for `= if (…) {`. */
  condition?: string;
  /** True for `= [for … : {…}]`. */
  loop: boolean;
  /** The loop header `for x in y` when loop. */
  loopHeader?: string;
  /** Source text of the body object, braces excluded. */
  body: string;
}

export interface BicepModule {
  symbol: string;
  path: string;
  condition?: string;
  body: string;
}

/** Parsed declarations of one Bicep file. */
export interface BicepFile {
  text: string;
  params: BicepParam[];
  vars: Map<string, string>;
  outputs: Map<string, string>;
  resources: BicepResource[];
  modules: BicepModule[];
  targetScope?: string;
}

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';

/** Reads the top-level declarations of a Bicep file. */
export function parseBicep(text: string): BicepFile {
  const masked = mask(text);
  const file: BicepFile = { text, params: [], vars: new Map(), outputs: new Map(), resources: [], modules: [] };
  const scope = /^targetScope\s*=\s*'([^']*)'/m.exec(text);
  if (scope?.[1] !== undefined && masked.slice(scope.index, scope.index + 11) === 'targetScope') file.targetScope = scope[1];

  // Declarations start a line (after decorators); matched on masked text so strings never count.
  const decl = new RegExp(`^(param|var|output|resource|module)\\s+(${IDENT})\\b`, 'gm');
  for (let m = decl.exec(masked); m; m = decl.exec(masked)) {
    const kind = m[1]!;
    const name = m[2]!;
    const after = m.index + m[0].length;
    if (kind === 'param') {
      const rest = lineRest(masked, text, after);
      const typeMatch = /^\s*(\S+)/.exec(rest.masked);
      const eq = rest.masked.indexOf('=');
      const p: BicepParam = { name, type: typeMatch?.[1] ?? '' };
      if (eq !== -1) p.defaultText = valueText(text, masked, after + eq + 1);
      file.params.push(p);
    } else if (kind === 'var') {
      const eq = masked.indexOf('=', after);
      file.vars.set(name, valueText(text, masked, eq + 1));
    } else if (kind === 'output') {
      const eq = masked.indexOf('=', after);
      file.outputs.set(name, valueText(text, masked, eq + 1));
    } else {
      const q1 = text.indexOf("'", after);
      const q2 = text.indexOf("'", q1 + 1);
      const typeText = text.slice(q1 + 1, q2);
      const eq = masked.indexOf('=', q2);
      const head = masked.slice(q2 + 1, eq);
      const { bodyStart, condition, loop, loopHeader } = bodyOf(text, masked, eq + 1);
      const bodyEnd = closing(masked, bodyStart);
      const body = text.slice(bodyStart + 1, bodyEnd);
      if (kind === 'module') {
        file.modules.push({ symbol: name, path: typeText, body, ...(condition ? { condition } : {}) });
      } else {
        const [type = '', apiVersion = ''] = typeText.split('@');
        file.resources.push({
          symbol: name,
          type,
          apiVersion,
          existing: /\bexisting\b/.test(head),
          loop,
          body,
          ...(condition ? { condition } : {}),
          ...(loopHeader ? { loopHeader } : {}),
        });
        // Child resources declared inside the body (`resource x 'subnets' existing = {…}`).
        for (const child of parseBicep(dedentBody(body)).resources) {
          file.resources.push({ ...child, type: child.type.includes('/') ? child.type : `${type}/${child.type}` });
        }
      }
    }
  }
  return file;
}

/** Nested declarations are indented; parseBicep only looks at line starts. */
function dedentBody(body: string): string {
  return body.replace(/^[ \t]+(?=resource\s)/gm, '');
}

function lineRest(masked: string, text: string, from: number): { masked: string; text: string } {
  const end = masked.indexOf('\n', from);
  const stop = end === -1 ? masked.length : end;
  return { masked: masked.slice(from, stop), text: text.slice(from, stop) };
}

/**
 * The source text of a value starting at `from`: up to the end of the line, extended over any
 * bracket opened on it (objects, arrays, calls spanning lines) and over continuation lines that
 * start with `?` or `:` (multi-line ternaries).
 */
export function valueText(text: string, masked: string, from: number): string {
  return valueSpan(text, masked, from).value;
}

function valueSpan(text: string, masked: string, from: number): { value: string; end: number } {
  let i = from;
  let depth = 0;
  for (; i < masked.length; i++) {
    const c = masked[i];
    if (c === '{' || c === '[' || c === '(') depth++;
    else if (c === '}' || c === ']' || c === ')') {
      if (depth === 0) break;
      depth--;
    } else if (c === '\n' && depth === 0) {
      if (!/^\n\s*[?:]/.test(masked.slice(i, i + 200))) break;
    } else if (c === ',' && depth === 0) break;
  }
  return { value: text.slice(from, i).trim(), end: i };
}

function bodyOf(text: string, masked: string, from: number): { bodyStart: number; condition?: string; loop: boolean; loopHeader?: string } {
  let i = from;
  while (/\s/.test(masked[i]!)) i++;
  if (masked.startsWith('if', i)) {
    const open = masked.indexOf('(', i);
    const close = closing(masked, open);
    const bodyStart = masked.indexOf('{', close);
    return { bodyStart, condition: text.slice(open + 1, close).trim(), loop: false };
  }
  if (masked[i] === '[') {
    const colon = masked.indexOf(':', i);
    const loopHeader = text.slice(i + 1, colon).trim();
    return { bodyStart: masked.indexOf('{', colon), loop: true, loopHeader };
  }
  return { bodyStart: masked.indexOf('{', i), loop: false };
}

/**
 * The top-level entries of an object literal's body (text between its braces): key → value text.
 * Keys may be identifiers or quoted strings; entries are separated by newlines or commas.
 */
export function entries(objectBody: string): Map<string, string> {
  const masked = mask(objectBody);
  const out = new Map<string, string>();
  const key = new RegExp(`^(?:(${IDENT})|'([^']*)')\\s*:`);
  let i = 0;
  while (i < masked.length) {
    const c = masked[i]!;
    if (/[\s,]/.test(c)) {
      i++;
      continue;
    }
    const m = key.exec(objectBody.slice(i));
    if (!m) {
      // Not an entry (e.g. a spread or a stray token): skip to the end of this value.
      i = valueSpan(objectBody, masked, i).end + 1;
      continue;
    }
    const span = valueSpan(objectBody, masked, i + m[0].length);
    out.set(m[1] ?? m[2]!, span.value);
    i = span.end + 1;
  }
  return out;
}

/** The body of an object literal value (`{ … }` → text inside), or undefined if not an object. */
export function objectBody(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!v.startsWith('{')) return undefined;
  const masked = mask(v);
  return v.slice(1, closing(masked, 0));
}

/** Follows `path` through nested object literals: `get(body, 'properties', 'functionAppConfig')`. */
export function get(body: string | undefined, ...path: string[]): string | undefined {
  let current: string | undefined = body;
  for (let k = 0; k < path.length; k++) {
    if (current === undefined) return undefined;
    const value = entries(current).get(path[k]!);
    if (k === path.length - 1) return value;
    current = objectBody(value);
  }
  return current;
}

/** Items of an array literal (`[ a \n b ]` or `['a', 'b']`) as source texts. */
export function arrayItems(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!v.startsWith('[')) return undefined;
  const masked = mask(v);
  const inner = v.slice(1, closing(masked, 0));
  const innerMasked = masked.slice(1, 1 + inner.length);
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= inner.length; i++) {
    const c = innerMasked[i];
    if (c === '{' || c === '[' || c === '(') depth++;
    else if (c === '}' || c === ']' || c === ')') depth--;
    if (i === inner.length || (depth === 0 && (c === '\n' || c === ','))) {
      const item = inner.slice(start, i).trim();
      if (item) items.push(item);
      start = i + 1;
    }
  }
  return items;
}

/**
 * Evaluates a string expression made of a literal with `${name}` interpolations, where each name
 * is a var or param (with a default) of `file` whose value is itself such a string. Anything else
 * (function calls, properties) is undefined: the checks only evaluate names meant to be constant.
 */
export function evalString(expr: string, file: BicepFile, seen: Set<string> = new Set()): string | undefined {
  const e = expr.trim();
  const ident = new RegExp(`^${IDENT}$`);
  if (ident.test(e)) {
    if (seen.has(e)) return undefined;
    const next = new Set(seen).add(e);
    const v = file.vars.get(e) ?? file.params.find((p) => p.name === e)?.defaultText;
    return v === undefined ? undefined : evalString(v, file, next);
  }
  const lit = /^'((?:[^'\\]|\\.)*)'$/.exec(e);
  if (!lit) return undefined;
  let failed = false;
  const out = lit[1]!.replace(/\$\{([^}]*)\}/g, (_, inner: string) => {
    const v = evalString(inner, file, seen);
    if (v === undefined) failed = true;
    return v ?? '';
  });
  return failed ? undefined : out.replace(/\\'/g, "'");
}
