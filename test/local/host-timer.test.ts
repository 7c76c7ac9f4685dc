import { afterEach, describe, expect, it } from 'vitest';
import type { InvocationContext, Timer } from '@azure/functions';
import { startLocalHost, type LocalHost } from '../../src/local/host.ts';
import { captureLog, eventually, timerReg } from './helpers.ts';

const hosts: LocalHost[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
});

async function start(options: Parameters<typeof startLocalHost>[0]): Promise<LocalHost> {
  const host = await startLocalHost({ port: 0, stopGraceMs: 3000, hostJson: {}, ...options });
  hosts.push(host);
  return host;
}

describe('local host timer trigger', () => {
  it('fires on its NCRONTAB schedule with a Timer and a real InvocationContext', async () => {
    // Prepare
    const runs: Array<{ timer: Timer; ctx: InvocationContext; atMs: number }> = [];
    await start({
      env: { EVERY_SECOND: '*/1 * * * * *' },
      logSink: captureLog().sink,
      registrations: [
        timerReg('snapshot', {
          schedule: '%EVERY_SECOND%',
          handler: (timer, ctx) => {
            runs.push({ timer, ctx, atMs: Date.now() });
          },
        }),
      ],
    });

    // Act
    await eventually(() => (runs.length >= 2 ? true : undefined), 5000);

    // Assess
    const [first, second] = runs;
    expect(first?.ctx.functionName).toBe('snapshot');
    expect(first?.ctx.invocationId).not.toBe(second?.ctx.invocationId);
    expect(first?.timer).toMatchObject({ isPastDue: false, schedule: { adjustForDST: false } });
    expect(first?.timer.scheduleStatus.last).toBe('0001-01-01T00:00:00.000Z');
    expect(Date.parse(first!.timer.scheduleStatus.next)).toBeGreaterThan(Date.parse(first!.timer.scheduleStatus.lastUpdated));
    expect(second?.timer.scheduleStatus.last).not.toBe('0001-01-01T00:00:00.000Z');
    // Ticks land on whole seconds (UTC schedule), not at start-up offsets.
    expect(Date.parse(second!.timer.scheduleStatus.last) % 1000).toBe(0);
  });

  it('runs once at start-up with runOnStartup', async () => {
    // Prepare
    let runs = 0;

    // Act: a schedule that will not come round during the test
    await start({
      env: {},
      logSink: captureLog().sink,
      registrations: [
        timerReg('boot', {
          schedule: '0 0 0 1 1 *',
          runOnStartup: true,
          handler: () => {
            runs++;
          },
        }),
      ],
    });

    // Assess
    await eventually(() => (runs === 1 ? true : undefined), 2000);
  });

  it('skips a tick while the previous run of the same timer is still going', async () => {
    // Prepare
    let started = 0;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const log = captureLog();
    await start({
      env: {},
      logSink: log.sink,
      registrations: [
        timerReg('singleton', {
          schedule: '*/1 * * * * *',
          handler: async () => {
            started++;
            await held;
          },
        }),
      ],
    });

    // Act
    await eventually(() => (log.lines.some((l) => l.entry.msg?.toString().startsWith('timer run skipped')) ? true : undefined), 5000);

    // Assess
    expect(started).toBe(1);
    release();
  });

  it('refuses a schedule that is not 6-field NCRONTAB, naming the function', async () => {
    await expect(
      startLocalHost({ port: 0, hostJson: {}, env: {}, logSink: captureLog().sink, registrations: [timerReg('snapshot', { schedule: '*/5 * * * *', handler: () => {} })] }),
    ).rejects.toThrow(/function "snapshot": schedule "\*\/5 \* \* \* \*" is not a 6-field NCRONTAB/);
  });

  it('logs a failing run and keeps the schedule', async () => {
    // Prepare
    let runs = 0;
    const log = captureLog();
    await start({
      env: {},
      logSink: log.sink,
      registrations: [
        timerReg('flaky', {
          schedule: '*/1 * * * * *',
          handler: () => {
            runs++;
            throw new Error('nope');
          },
        }),
      ],
    });

    // Act
    await eventually(() => (runs >= 2 ? true : undefined), 5000);

    // Assess
    expect(log.lines.filter((l) => l.entry.functionName === 'flaky' && l.entry.outcome === 'failed').length).toBeGreaterThanOrEqual(1);
  });
});
