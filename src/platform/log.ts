/**
 * Structured JSON logging with redaction.
 *
 * Two nets keep secrets out of logs: keys that look secret are replaced whatever their value, and
 * every secret value the process learns (CycleCloud password and Basic header, HMAC keys, function
 * keys) is registered with {@link registerSecret} and scrubbed from every line, wherever it hides.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;
export type LogSink = (level: LogLevel, line: string) => void;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /**
   * A custom metric as a log line `{"metric":name,"value":n,...dims}`; Application Insights keeps it in
   * `traces.customDimensions`, so Kusto can chart it (README "Operate").
   */
  metric(name: string, value: number, dimensions?: LogFields): void;
  /** A logger whose lines all carry `fields` (request id, cluster, operation id…). */
  child(fields: LogFields): Logger;
}

const secrets = new Set<string>();
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let minimumLevel: LogLevel = 'debug';

/** Lines below `level` are dropped (`LOG_LEVEL`); metric lines are always kept. Default `debug`. */
export function setLogLevel(level: LogLevel): void {
  minimumLevel = level;
}
const SECRET_KEY = /pass(word)?|secret|authorization|api[-_]?key|functionkey|token|signature|credential/i;
const REDACTED = '[redacted]';

/** Remembers a secret value so it is scrubbed from every log line and error text. */
export function registerSecret(value: string | undefined | null): void {
  // Very short values would scrub innocent text; they are not credible secrets anyway.
  if (value && value.length >= 4) secrets.add(value);
}

/** For tests only. */
export function clearRegisteredSecrets(): void {
  secrets.clear();
}

/** Replaces every registered secret value in `text`. */
export function scrub(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

/** Causes followed below a logged error; deeper ones are cut (a chain is rarely longer than three). */
const MAX_CAUSES = 5;

/**
 * An error as `{name, message, code?, cause?}`, its `cause` chain included (each cause by the same
 * three fields). Nothing else an error carries is copied: not its other own fields, not a stack, not
 * a request or response, so no header or body can leak; messages are scrubbed with the whole line.
 */
function describeError(error: Error, seen: Set<unknown>): Record<string, unknown> {
  seen.add(error);
  const code = (error as Error & { code?: unknown }).code;
  const out: Record<string, unknown> = { name: error.name, message: error.message, ...(code !== undefined ? { code } : {}) };
  const cause = error.cause;
  if (cause === undefined || cause === null || seen.has(cause)) return out;
  if (seen.size > MAX_CAUSES) out.cause = '[…]';
  else if (cause instanceof Error) out.cause = describeError(cause, seen);
  else if (typeof cause === 'object') {
    // A thrown non-Error object: only its code and message, never its other fields.
    const c = cause as { code?: unknown; message?: unknown };
    out.cause = { ...(typeof c.code === 'string' || typeof c.code === 'number' ? { code: c.code } : {}), ...(typeof c.message === 'string' ? { message: c.message } : {}) };
  } else out.cause = String(cause);
  return out;
}

function sanitize(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[…]';
  if (value instanceof Error) return describeError(value, new Set());
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => sanitize(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? REDACTED : sanitize(v, depth + 1);
    return out;
  }
  return value;
}

/** Formats one JSON log line (already scrubbed). */
export function formatLine(level: LogLevel, message: string, fields: LogFields): string {
  const body = { level, msg: message, ...(sanitize(fields) as LogFields) };
  return scrub(JSON.stringify(body));
}

const writeToConsole: LogSink = (level, line) => {
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
};
let consoleOutput: LogSink = writeToConsole;

/** Where {@link consoleSink} writes. The local host sets a filter/renderer (text for a terminal); default stdout/stderr. */
export function setConsoleOutput(sink: LogSink | undefined): void {
  consoleOutput = sink ?? writeToConsole;
}

export const consoleSink: LogSink = (level, line) => consoleOutput(level, line);

export function createLogger(sink: LogSink = consoleSink, base: LogFields = {}): Logger {
  const emit = (level: LogLevel, message: string, fields?: LogFields, always = false) => {
    if (!always && LEVELS[level] < LEVELS[minimumLevel]) return;
    sink(level, formatLine(level, message, { ...base, ...fields }));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    metric: (name, value, dims) => emit('info', `metric ${name}`, { ...dims, metric: name, value }, true),
    child: (fields) => createLogger(sink, { ...base, ...fields }),
  };
}

/** A logger that writes through an Azure Functions InvocationContext (so App Insights correlates it). */
export function contextLogger(
  ctx: { invocationId: string; log(...a: unknown[]): void; warn(...a: unknown[]): void; error(...a: unknown[]): void; debug?(...a: unknown[]): void },
  base: LogFields = {},
): Logger {
  return createLogger(
    (level, line) => {
      if (level === 'error') ctx.error(line);
      else if (level === 'warn') ctx.warn(line);
      else if (level === 'debug' && ctx.debug) ctx.debug(line);
      else ctx.log(line);
    },
    { invocationId: ctx.invocationId, ...base },
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger(() => {});
