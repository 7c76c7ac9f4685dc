import { afterEach, describe, expect, it } from 'vitest';
import { clearRegisteredSecrets, createLogger, registerSecret, setLogLevel } from '../src/platform/log.ts';

describe('logger', () => {
  afterEach(() => {
    setLogLevel('debug');
    clearRegisteredSecrets();
  });

  it('drops lines below LOG_LEVEL but always keeps metrics', () => {
    const lines: string[] = [];
    const log = createLogger((_l, line) => lines.push(line));
    setLogLevel('warn');
    log.info('chatty');
    log.warn('kept');
    log.metric('nodes_ready', 3, { cluster: 'hpc' });
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['kept', 'metric nodes_ready']);
    expect(JSON.parse(lines[1]!)).toMatchObject({ metric: 'nodes_ready', value: 3, cluster: 'hpc' });
  });

  it('scrubs registered secrets anywhere and redacts secret-looking keys', () => {
    const lines: string[] = [];
    const log = createLogger((_l, line) => lines.push(line));
    registerSecret('hunter2-password');
    log.error('login failed for hunter2-password', { authorization: 'Basic abc', nested: { note: 'x hunter2-password y' } });
    expect(lines[0]).not.toContain('hunter2-password');
    expect(lines[0]).not.toContain('Basic abc');
    expect(JSON.parse(lines[0]!).authorization).toBe('[redacted]');
  });
});
