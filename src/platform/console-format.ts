/**
 * Log lines for a person at a terminal. The product writes JSON lines (src/platform/log.ts), which
 * Application Insights keeps as they are; the local host re-renders each one as
 *
 *   14:02:11.123 INFO  scaleRequests   job-4711  create accepted  cluster=hpc added=[4,2]
 *
 * (time, level, function, request id, message, the other fields as key=value), coloured by level
 * when the terminal has colours. A line that is not JSON is printed unchanged.
 */
import type { LogLevel } from './log.ts';

export type LogFormat = 'json' | 'text';

/** Fields that have a column of their own, or that only machines need. */
const HIDDEN = new Set(['level', 'msg', 'functionName', 'requestId', 'invocationId', 'host', 'messageId', 'queueMessageId']);
const LABEL: Record<LogLevel, string> = { debug: 'DEBUG', info: 'INFO ', warn: 'WARN ', error: 'ERROR' };
const COLOUR: Record<LogLevel, [string, string]> = {
  debug: ['\x1b[90m', '\x1b[39m'],
  info: ['\x1b[36m', '\x1b[39m'],
  warn: ['\x1b[33m', '\x1b[39m'],
  error: ['\x1b[31m', '\x1b[39m'],
};

/**
 * `LOG_FORMAT` (`json` or `text`) wins; otherwise text on a terminal and JSON when the output is a
 * pipe or a file (log collectors, tests). Throws naming the setting for any other value.
 */
export function chooseLogFormat(setting: string | undefined, isTTY: boolean): LogFormat {
  const value = setting?.trim().toLowerCase();
  if (!value) return isTTY ? 'text' : 'json';
  if (value === 'json' || value === 'text') return value;
  throw new Error(`Setting LOG_FORMAT must be "json" or "text" (got "${setting}")`);
}

function show(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  if (value && typeof value === 'object') {
    // Errors were sanitised to {name, message, code, cause}: say them as a sentence, not as JSON.
    const sentence = errorSentence(value);
    if (sentence !== undefined) return JSON.stringify(sentence);
  }
  return JSON.stringify(value);
}

const ERROR_KEYS = new Set(['name', 'message', 'code', 'cause']);

/** `CODE: message; caused by CODE: message…` for a logged error (see `log.ts`), else undefined. */
function errorSentence(value: unknown, isCause = false): string | undefined {
  if (typeof value === 'string') return isCause ? value : undefined;
  if (!value || typeof value !== 'object' || !Object.keys(value).every((k) => ERROR_KEYS.has(k))) return undefined;
  const error = value as { message?: unknown; code?: unknown; cause?: unknown };
  if (typeof error.message !== 'string' && !isCause) return undefined;
  const code = typeof error.code === 'string' || typeof error.code === 'number' ? String(error.code) : undefined;
  const message = typeof error.message === 'string' ? error.message : '';
  const cause = error.cause === undefined ? undefined : errorSentence(error.cause, true);
  const head = code && message ? `${code}: ${message}` : (code ?? message);
  return cause ? `${head}; caused by ${cause}` : head;
}

function clock(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** One JSON log line as one line of text. */
export function formatForTerminal(level: LogLevel, line: string, options: { colour: boolean; now?: Date }): string {
  let entry: Record<string, unknown>;
  try {
    const parsed = JSON.parse(line) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return line;
    entry = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  // The function, else where the line comes from: an HTTP route's handler, the local host itself.
  const who = typeof entry.functionName === 'string' ? entry.functionName : typeof entry.route === 'string' ? 'http' : typeof entry.host === 'string' ? 'host' : '';
  const requestId = typeof entry.requestId === 'string' ? `  ${entry.requestId}` : '';
  const rest = Object.entries(entry)
    // A first delivery and empty values say nothing to a reader (LOG_FORMAT=json keeps everything).
    .filter(([k, v]) => !HIDDEN.has(k) && v !== undefined && v !== null && !(k === 'dequeueCount' && v === 1))
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ');
  const [on, off] = options.colour ? COLOUR[level] : ['', ''];
  const dim = options.colour ? ['\x1b[2m', '\x1b[22m'] : ['', ''];
  const time = clock(options.now ?? new Date());
  return `${dim[0]}${time}${dim[1]} ${on}${LABEL[level]}${off} ${who.padEnd(14)}${requestId}  ${String(entry.msg ?? '')}${rest ? `  ${dim[0]}${rest}${dim[1]}` : ''}`;
}
