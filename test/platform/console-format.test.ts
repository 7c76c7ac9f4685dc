import { describe, expect, it } from 'vitest';
import { chooseLogFormat, formatForTerminal } from '../../src/platform/console-format.ts';

describe('console log format', () => {
  it('is text on a terminal, JSON on a pipe, and LOG_FORMAT wins; anything else is named', () => {
    expect(chooseLogFormat(undefined, true)).toBe('text');
    expect(chooseLogFormat(undefined, false)).toBe('json');
    expect(chooseLogFormat('JSON', true)).toBe('json');
    expect(chooseLogFormat('text', false)).toBe('text');
    expect(() => chooseLogFormat('pretty', true)).toThrow(/LOG_FORMAT must be "json" or "text" \(got "pretty"\)/);
  });

  it('renders one JSON line as time, level, function, request id, message and the other fields', () => {
    const line = JSON.stringify({
      level: 'warn',
      msg: 'create refused',
      functionName: 'scaleRequests',
      requestId: 'job-4711',
      invocationId: 'x',
      queueMessageId: 'q',
      dequeueCount: 1,
      cluster: 'hpc',
      reason: 'no capacity in bucket',
      error: { name: 'CycleCloudError', message: 'throttled', code: 'CC_THROTTLED' },
      operationId: null,
    });
    const text = formatForTerminal('warn', line, { colour: false, now: new Date(2026, 0, 2, 3, 4, 5, 6) });
    expect(text).toBe('03:04:05.006 WARN  scaleRequests   job-4711  create refused  cluster=hpc reason="no capacity in bucket" error="CC_THROTTLED: throttled"');
  });

  it('colours the level only when asked, and leaves a line that is not JSON as it is', () => {
    const line = JSON.stringify({ level: 'error', msg: 'boom' });
    expect(formatForTerminal('error', line, { colour: true })).toContain('\x1b[31mERROR\x1b[39m');
    expect(formatForTerminal('error', line, { colour: false })).not.toContain('\x1b[');
    expect(formatForTerminal('info', 'plain words', { colour: false })).toBe('plain words');
  });
});
