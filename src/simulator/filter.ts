/**
 * A small evaluator for CycleCloud node filter expressions (reference/cyclecloud-rest-api.md §3.7),
 * enough for what real clients send, e.g.
 * `ClusterName == "c" && Name in {"a","b"} && (State=="Terminated" || State is undefined)`.
 *
 * Grammar: `or := and ('||' and)*`, `and := unary ('&&' unary)*`, `unary := '!' unary | primary`,
 * `primary := '(' or ')' | value [('=='|'==='|'!='|'!==') value | 'in' '{' value,… '}' | 'is' ['not'] 'undefined']`,
 * `value := attribute path (Configuration.autoscale.enabled) | "string" | 'string' | number | true | false | undefined`.
 * A bare attribute is true when truthy.
 */
import { ScalerError } from '../platform/errors.ts';

/** A filter that does not parse. `code` is stable; the message names the position, never the whole input. */
export class FilterSyntaxError extends ScalerError<'SIM_FILTER_SYNTAX'> {
  override readonly name = 'FilterSyntaxError';
  constructor(message: string, options?: ErrorOptions) {
    super('SIM_FILTER_SYNTAX', message, options);
  }
}

type Token =
  | { kind: 'op'; value: string; at: number }
  | { kind: 'str'; value: string; at: number }
  | { kind: 'num'; value: number; at: number }
  | { kind: 'ident'; value: string; at: number };

const OPERATORS = ['===', '!==', '==', '!=', '&&', '||', '!', '(', ')', '{', '}', ','];

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let value = '';
      let j = i + 1;
      for (; j < text.length && text[j] !== c; j++) {
        if (text[j] === '\\' && j + 1 < text.length) j++;
        value += text[j];
      }
      if (j >= text.length) throw new FilterSyntaxError(`filter: unterminated string at ${i}`);
      tokens.push({ kind: 'str', value, at: i });
      i = j + 1;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', value: op, at: i });
      i += op.length;
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(text.slice(i));
    if (num) {
      tokens.push({ kind: 'num', value: Number(num[0]), at: i });
      i += num[0].length;
      continue;
    }
    const ident = /^[A-Za-z_][\w.]*/.exec(text.slice(i));
    if (ident) {
      tokens.push({ kind: 'ident', value: ident[0], at: i });
      i += ident[0].length;
      continue;
    }
    throw new FilterSyntaxError(`filter: unexpected character at ${i}`);
  }
  return tokens;
}

/** A compiled filter: a predicate over node records. */
export type NodeFilter = (record: Readonly<Record<string, unknown>>) => boolean;

type Value = (record: Readonly<Record<string, unknown>>) => unknown;

/** Parses `text` once; throws {@link FilterSyntaxError} naming the position of the problem. */
export function compileFilter(text: string): NodeFilter {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isOp = (value: string): boolean => {
    const t = peek();
    return t !== undefined && t.kind === 'op' && t.value === value;
  };
  const isWord = (value: string): boolean => {
    const t = peek();
    return t !== undefined && t.kind === 'ident' && t.value === value;
  };
  const fail = (what: string): never => {
    const t = peek();
    throw new FilterSyntaxError(`filter: expected ${what} at ${t ? t.at : text.length}`);
  };
  const expectOp = (value: string): void => {
    if (!isOp(value)) fail(`'${value}'`);
    pos++;
  };

  const value = (): Value => {
    const t = peek();
    if (!t) return fail('a value');
    pos++;
    if (t.kind === 'str' || t.kind === 'num') {
      const v = t.value;
      return () => v;
    }
    if (t.kind === 'ident') {
      if (t.value === 'true') return () => true;
      if (t.value === 'false') return () => false;
      if (t.value === 'undefined') return () => undefined;
      const path = t.value.split('.');
      return (record) => {
        let current: unknown = record;
        for (const key of path) {
          if (current === null || typeof current !== 'object') return undefined;
          current = (current as Record<string, unknown>)[key];
        }
        return current;
      };
    }
    pos--;
    return fail('a value');
  };

  const primary = (): NodeFilter => {
    if (isOp('(')) {
      pos++;
      const inner = or();
      expectOp(')');
      return inner;
    }
    const left = value();
    const t = peek();
    if (t?.kind === 'op' && ['==', '===', '!=', '!=='].includes(t.value)) {
      pos++;
      const right = value();
      return t.value.startsWith('!') ? (r) => left(r) !== right(r) : (r) => left(r) === right(r);
    }
    if (isWord('in')) {
      pos++;
      expectOp('{');
      const items: Value[] = [];
      if (!isOp('}')) {
        items.push(value());
        while (isOp(',')) {
          pos++;
          items.push(value());
        }
      }
      expectOp('}');
      return (r) => {
        const v = left(r);
        return items.some((item) => item(r) === v);
      };
    }
    if (isWord('is')) {
      pos++;
      const negate = isWord('not');
      if (negate) pos++;
      if (!isWord('undefined')) fail("'undefined'");
      pos++;
      return negate ? (r) => left(r) !== undefined : (r) => left(r) === undefined;
    }
    return (r) => Boolean(left(r));
  };

  const unary = (): NodeFilter => {
    if (isOp('!')) {
      pos++;
      const inner = unary();
      return (r) => !inner(r);
    }
    return primary();
  };

  const and = (): NodeFilter => {
    let left = unary();
    while (isOp('&&')) {
      pos++;
      const l = left;
      const right = unary();
      left = (r) => l(r) && right(r);
    }
    return left;
  };

  function or(): NodeFilter {
    let left = and();
    while (isOp('||')) {
      pos++;
      const l = left;
      const right = and();
      left = (r) => l(r) || right(r);
    }
    return left;
  }

  if (tokens.length === 0) throw new FilterSyntaxError('filter: empty expression');
  const compiled = or();
  if (pos < tokens.length) fail('end of expression');
  return compiled;
}
