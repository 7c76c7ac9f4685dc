/**
 * `ccscale watch`: polls the request record until it is final, showing nodes per state and, on a
 * terminal, a progress bar of ready/requested nodes; plain lines (printed when something changes)
 * otherwise. The exit code says how the request ended.
 */
import cliProgress from 'cli-progress';
import { FINAL_STATES, type RequestRecord } from '../ledger/schemas.ts';
import { CliError, EXIT, type ScalerClient } from './client.ts';
import { nodesSummary, paintState, progressLine, progressOf, type Paint } from './render.ts';

export interface WatchOptions {
  /** Poll interval. Default 2000 ms. */
  intervalMs?: number;
  /** Give up (exit 1) after this long; undefined = until the request is final. */
  timeoutMs?: number;
  /** Print only the final record as JSON. */
  json: boolean;
  /** Draw a progress bar (stdout is a terminal). */
  tty: boolean;
  paint: Paint;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Consecutive network failures tolerated before giving up. Default 5. */
  maxNetworkFailures?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** 0 when fulfilled; 1 when failed, rejected, partially fulfilled or out of time. */
export function exitCodeFor(record: Pick<RequestRecord, 'state'>): number {
  return record.state === 'fulfilled' ? EXIT.ok : EXIT.requestFailed;
}

export async function watchRequest(client: ScalerClient, requestId: string, options: WatchOptions): Promise<number> {
  const intervalMs = options.intervalMs ?? 2000;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const startedAtMs = now();
  const maxFailures = options.maxNetworkFailures ?? 5;
  const out = (line: string) => options.stdout.write(`${line}\n`);
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = '';
  let failures = 0;
  try {
    for (;;) {
      let record: RequestRecord;
      try {
        record = (await client.record(requestId)).body;
        failures = 0;
      } catch (error) {
        // A blip (host restarting) should not end a long watch; a refusal (401, 404) should.
        if (!(error instanceof CliError) || error.code !== 'CLI_NETWORK' || ++failures >= maxFailures) throw error;
        options.stderr.write(`${error.message}; retrying (${failures}/${maxFailures})\n`);
        await sleep(intervalMs);
        continue;
      }
      const final = FINAL_STATES.has(record.state);
      if (!options.json) {
        const { ready, requested } = progressOf(record);
        if (options.tty && requested > 0) {
          const payload = { state: paintState(options.paint, record.state), nodes: nodesSummary(record) };
          if (!bar) {
            // The cursor stays visible: a Ctrl-C mid-watch must not leave the terminal without one.
            bar = new cliProgress.SingleBar(
              { format: `${requestId} {state} [{bar}] {value}/{total} ready | {nodes}`, stream: options.stdout, hideCursor: false, clearOnComplete: false, fps: 5 },
              cliProgress.Presets.shades_classic,
            );
            bar.start(requested, ready, payload);
          } else {
            bar.setTotal(requested);
            bar.update(ready, payload);
          }
        } else {
          const line = progressLine(record, options.paint);
          if (line !== lastLine) out(line);
          lastLine = line;
        }
      }
      if (final) {
        bar?.stop();
        bar = undefined;
        if (options.json) out(JSON.stringify(record));
        else out(finalLine(record, options.paint));
        return exitCodeFor(record);
      }
      if (options.timeoutMs !== undefined && now() - startedAtMs >= options.timeoutMs) {
        bar?.stop();
        bar = undefined;
        if (options.json) out(JSON.stringify(record));
        else out(`${requestId} still ${record.state} after ${Math.round(options.timeoutMs / 1000)} s; stopped watching`);
        return EXIT.requestFailed;
      }
      await sleep(intervalMs);
    }
  } finally {
    bar?.stop();
  }
}

function finalLine(record: RequestRecord, paint: Paint): string {
  const { ready, requested } = progressOf(record);
  const counts = requested > 0 ? `: ${ready}/${requested} nodes ready` : '';
  return `${record.requestId} ended ${paintState(paint, record.state)}${counts}${record.reason ? ` (${record.reason})` : ''}`;
}
