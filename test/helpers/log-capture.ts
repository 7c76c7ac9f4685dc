/**
 * Log capture and the no-secret matcher.
 *
 * @example
 * import { captureLogs } from './log-capture.ts';
 * const logs = captureLogs();                  // logs.logger is a real Logger writing into logs.lines
 * ... run code with logs.logger ...
 * expect([...logs.lines, error]).toContainNoSecret([password, basicHeader]);
 *
 * Importing this file registers `toContainNoSecret` with vitest's `expect`.
 */
import { expect, vi } from 'vitest';
import { createLogger, type Logger, type LogLevel, type LogSink } from '../../src/platform/log.ts';

export interface LogCapture {
  /** Every line, in order, as the sink received it (JSON text). */
  readonly lines: string[];
  /** The same lines with their level. */
  readonly records: Array<{ level: LogLevel; line: string }>;
  readonly sink: LogSink;
  /** A real logger (with its redaction) that writes into this capture. */
  readonly logger: Logger;
  /** The lines parsed as JSON objects. */
  entries(): Array<Record<string, unknown>>;
  clear(): void;
}

/** A {@link LogSink} that records lines, and a logger on it. */
export function captureLogs(): LogCapture {
  const lines: string[] = [];
  const records: Array<{ level: LogLevel; line: string }> = [];
  const sink: LogSink = (level, line) => {
    lines.push(line);
    records.push({ level, line });
  };
  return {
    lines,
    records,
    sink,
    logger: createLogger(sink),
    entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    clear: () => {
      lines.length = 0;
      records.length = 0;
    },
  };
}

export interface ConsoleCapture {
  /** Everything written through console.* and process.stdout/stderr.write, one entry per call. */
  readonly lines: string[];
  restore(): void;
}

/** Captures console output (and raw stdout/stderr writes) until `restore()`. */
export function captureConsole(): ConsoleCapture {
  const lines: string[] = [];
  const record = (...args: unknown[]) => {
    lines.push(args.map((a) => (typeof a === 'string' ? a : textsOf(a).join(' '))).join(' '));
  };
  const spies = (['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((m) => vi.spyOn(console, m).mockImplementation(record));
  const writes = [process.stdout, process.stderr].map((stream) =>
    vi.spyOn(stream, 'write').mockImplementation(((chunk: unknown) => {
      lines.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return true;
    }) as typeof stream.write),
  );
  return {
    lines,
    restore: () => {
      for (const s of [...spies, ...writes]) s.mockRestore();
    },
  };
}

/**
 * Every text under which a value could be printed: strings as they are; errors by message, stack,
 * `String(e)`, `JSON.stringify(e)`, own properties and their causes; other values by JSON.
 */
function textsOf(value: unknown, seen = new Set<unknown>()): string[] {
  if (typeof value === 'string') return [value];
  if (value === null || value === undefined) return [];
  if (typeof value !== 'object') return [String(value)];
  if (seen.has(value)) return [];
  seen.add(value);
  if (value instanceof Error) {
    const out = [value.message, value.stack ?? '', String(value), safeJson(value)];
    for (const key of Object.getOwnPropertyNames(value)) {
      if (key === 'message' || key === 'stack') continue;
      // Non-enumerable request/response details count too: a careless logger could reach them.
      out.push(...textsOf((value as unknown as Record<string, unknown>)[key], seen));
    }
    return out;
  }
  if (Array.isArray(value)) return value.flatMap((v) => textsOf(v, seen));
  return [safeJson(value)];
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return String(value);
  }
}

/** The forms a secret takes on the way out: raw, URL-encoded, JSON-escaped, base64. */
function formsOf(secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')]);
  return [...forms];
}

/** The first place a secret appears in `values`, or undefined. */
export function findSecret(values: Iterable<unknown>, secrets: readonly string[]): { index: number; secretIndex: number } | undefined {
  let index = 0;
  for (const value of values) {
    const texts = textsOf(value);
    for (const [secretIndex, secret] of secrets.entries()) {
      if (!secret) continue;
      if (formsOf(secret).some((form) => texts.some((t) => t.includes(form)))) return { index, secretIndex };
    }
    index++;
  }
  return undefined;
}

/** Throws (naming the value's index and the secret's index, never the secret) if any secret appears in `values`. */
export function expectNoSecrets(values: Iterable<unknown>, secrets: readonly string[]): void {
  const found = findSecret(values, secrets);
  if (found) throw new Error(`secret #${found.secretIndex} appears in value #${found.index}`);
}

expect.extend({
  toContainNoSecret(received: unknown, secrets: readonly string[]) {
    const values = Array.isArray(received) ? received : [received];
    const found = findSecret(values, secrets);
    return {
      pass: found === undefined,
      // The message names positions only: a failing test must not print the secret either.
      message: () => (found ? `expected no secret, but secret #${found.secretIndex} appears in value #${found.index}` : 'expected a secret to appear, but none of them does'),
    };
  },
});

declare module 'vitest' {
  // Type parameters exactly as vitest declares them (declaration merging requires it).
  interface Matchers<R extends void | Promise<void> = void | Promise<void>, T = unknown> {
    /** Passes when none of `secrets` (raw, URL-encoded, JSON-escaped or base64) appears in the value(s). */
    toContainNoSecret(secrets: readonly string[]): R;
  }
}
