/**
 * The timer trigger: a 6-field NCRONTAB schedule in UTC (croner), `runOnStartup`, and the Azure
 * singleton rule that a run never overlaps the previous one of the same timer (a tick that finds
 * the previous run still going is skipped).
 */
import { Cron } from 'croner';
import type { Timer } from '@azure/functions';
import type { Logger } from '../platform/log.ts';
import { LocalHostError } from './registrations.ts';

/** `scheduleStatus.last` before the first run, as the host reports it (DateTime.MinValue). */
const NEVER = '0001-01-01T00:00:00.000Z';
/** A run that starts later than this after its scheduled time is reported as past due. */
const PAST_DUE_AFTER_MS = 1000;

export interface TimerScheduleOptions {
  functionName: string;
  /** 6-field NCRONTAB (`{second} {minute} {hour} {day} {month} {day-of-week}`), already resolved. */
  schedule: string;
  runOnStartup: boolean;
  logger: Logger;
  /** Runs the function; throws when the function failed. */
  run(timer: Timer): Promise<void>;
}

/** Validates a 6-field NCRONTAB expression; returns a paused croner job for it. */
export function parseSchedule(schedule: string, functionName: string): Cron {
  if (schedule.trim().split(/\s+/).length !== 6) {
    throw new LocalHostError('LOCAL_CONFIG', `function "${functionName}": schedule "${schedule}" is not a 6-field NCRONTAB expression`);
  }
  try {
    return new Cron(schedule, { timezone: 'UTC', mode: '6-part', paused: true });
  } catch (cause) {
    throw new LocalHostError('LOCAL_CONFIG', `function "${functionName}": schedule "${schedule}" is not a valid NCRONTAB expression`, { cause });
  }
}

/** Runs one timer function on its schedule; `start()` then `stop(graceMs)`. Throws on a bad schedule. */
export class TimerSchedule {
  readonly #o: TimerScheduleOptions;
  #job: Cron | undefined;
  #running: Promise<void> | undefined;
  #lastIso = NEVER;
  #expectedMs: number | undefined;

  constructor(options: TimerScheduleOptions) {
    this.#o = options;
    parseSchedule(options.schedule, options.functionName).stop();
  }

  start(): void {
    this.#job = new Cron(this.#o.schedule, { timezone: 'UTC', mode: '6-part' }, () => {
      void this.#fire(false);
    });
    this.#expectedMs = this.#job.nextRun()?.getTime();
    if (this.#o.runOnStartup) void this.#fire(true);
  }

  /** Stops scheduling and waits up to `graceMs` for a run in progress. */
  async stop(graceMs: number): Promise<void> {
    this.#job?.stop();
    if (!this.#running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#running, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  async #fire(onStartup: boolean): Promise<void> {
    const nowMs = Date.now();
    const scheduledMs = onStartup ? nowMs : (this.#expectedMs ?? nowMs);
    const next = this.#job?.nextRun();
    this.#expectedMs = next?.getTime();
    if (this.#running) {
      this.#o.logger.warn('timer run skipped: the previous run is still in progress', { functionName: this.#o.functionName });
      return;
    }
    const timer: Timer = {
      isPastDue: nowMs - scheduledMs > PAST_DUE_AFTER_MS,
      schedule: { adjustForDST: false },
      scheduleStatus: { last: this.#lastIso, next: next ? next.toISOString() : NEVER, lastUpdated: new Date(nowMs).toISOString() },
    };
    this.#lastIso = new Date(scheduledMs).toISOString();
    this.#running = this.#o.run(timer).catch(() => {
      // The invocation wrapper logged the failure; the timer keeps its schedule.
    });
    try {
      await this.#running;
    } finally {
      this.#running = undefined;
    }
  }
}
