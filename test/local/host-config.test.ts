import { describe, expect, it } from 'vitest';
import { parseHostSettings, parseTimeSpan, resolveBindingExpression } from '../../src/local/host-config.ts';

describe('host.json settings', () => {
  it('parses TimeSpans with hours, days and fractions', () => {
    expect(parseTimeSpan('00:00:10', 'x')).toBe(10_000);
    expect(parseTimeSpan('01:02:03', 'x')).toBe(3_723_000);
    expect(parseTimeSpan('1.00:00:00', 'x')).toBe(86_400_000);
    expect(parseTimeSpan('00:00:00.250', 'x')).toBe(250);
    expect(() => parseTimeSpan('10s', 'host.json functionTimeout')).toThrow(/host\.json functionTimeout/);
  });

  it('applies the Functions defaults when host.json says nothing', () => {
    const s = parseHostSettings({ version: '2.0' });
    expect(s).toEqual({
      functionTimeoutMs: 300_000,
      routePrefix: 'api',
      queues: { batchSize: 16, newBatchThreshold: 8, maxDequeueCount: 5, visibilityTimeoutMs: 0, maxPollingIntervalMs: 60_000, messageEncoding: 'base64' },
    });
  });

  it('reads extensions.queues and lets app settings override them', () => {
    // Prepare
    const hostJson = {
      functionTimeout: '00:10:00',
      extensions: {
        queues: { batchSize: 8, maxDequeueCount: 5, visibilityTimeout: '00:00:30', maxPollingInterval: '00:00:02', messageEncoding: 'none' },
        http: { routePrefix: '/v1/' },
      },
    };

    // Act
    const s = parseHostSettings(hostJson, { AzureFunctionsJobHost__extensions__queues__batchSize: '2' });

    // Assess
    expect(s.functionTimeoutMs).toBe(600_000);
    expect(s.routePrefix).toBe('v1');
    expect(s.queues).toMatchObject({ batchSize: 2, newBatchThreshold: 1, maxDequeueCount: 5, visibilityTimeoutMs: 30_000, maxPollingIntervalMs: 2000, messageEncoding: 'none' });
  });

  it('names the bad host.json field', () => {
    expect(() => parseHostSettings({ extensions: { queues: { batchSize: 64 } } })).toThrow(/extensions\.queues\.batchSize/);
    expect(() => parseHostSettings({ extensions: { queues: { messageEncoding: 'utf8' } } })).toThrow(/messageEncoding/);
  });
});

describe('%SETTING% binding expressions', () => {
  it('substitutes app settings', () => {
    expect(resolveBindingExpression('%Q%-x-%P%', { Q: 'scale', P: 'poison' }, 'w')).toBe('scale-x-poison');
    expect(resolveBindingExpression('plain', {}, 'w')).toBe('plain');
  });

  it('names the missing setting and where it was used', () => {
    expect(() => resolveBindingExpression('%SNAPSHOT_SCHEDULE%', {}, 'function "snapshot" schedule')).toThrow(
      'function "snapshot" schedule: app setting "SNAPSHOT_SCHEDULE" (from %SNAPSHOT_SCHEDULE%) is not set',
    );
  });
});
