// Shared bits for the local host tests: a log sink that keeps lines, and synthetic registrations.
import type { LogLevel, LogSink } from '../../src/platform/log.ts';
import type { HttpRegistration, QueueRegistration, TimerRegistration } from '../../src/local/registrations.ts';

export interface CapturedLog {
  sink: LogSink;
  lines: Array<{ level: LogLevel; line: string; entry: Record<string, unknown> }>;
}

export function captureLog(): CapturedLog {
  const lines: CapturedLog['lines'] = [];
  return {
    lines,
    sink: (level, line) => lines.push({ level, line, entry: JSON.parse(line) as Record<string, unknown> }),
  };
}

export function httpReg(name: string, options: Partial<HttpRegistration['options']> & Pick<HttpRegistration['options'], 'handler'>): HttpRegistration {
  return { kind: 'http', name, options: { methods: ['GET', 'POST'], authLevel: 'anonymous', route: name, ...options } };
}

export function queueReg(name: string, options: QueueRegistration['options']): QueueRegistration {
  return { kind: 'storageQueue', name, options };
}

export function timerReg(name: string, options: TimerRegistration['options']): TimerRegistration {
  return { kind: 'timer', name, options };
}

/** Polls `check` until it returns a value other than undefined (or throws after `timeoutMs`). */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
