import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { ScalerClient } from '../../src/cli/client.ts';
import { painter } from '../../src/cli/render.ts';
import { watchRequest } from '../../src/cli/watch.ts';
import type { RequestRecord } from '../../src/ledger/schemas.ts';
import { recordFor } from '../http/fakes.ts';

function record(state: RequestRecord['state'], ready: number, requested = 4): RequestRecord {
  const base = recordFor({ kind: 'scale', requestId: 'job-7', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: requested }] }, 0);
  return {
    ...base,
    state,
    demands: [{ ...base.demands[0]!, created: requested, ready }],
    nodes: Array.from({ length: requested }, (_, i) => ({ name: `n${i}`, id: null, status: i < ready ? 'Ready' : 'Acquiring', demand: 0 })),
  };
}

/** A fetch that answers the scripted steps in order (a step may be an error to throw). */
function scriptedFetch(steps: (RequestRecord | Error)[]): { fetch: typeof fetch; calls: () => number } {
  let i = 0;
  const fetchFn = (async () => {
    const step = steps[Math.min(i++, steps.length - 1)]!;
    if (step instanceof Error) throw step;
    return new Response(JSON.stringify(step), { status: 200, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { fetch: fetchFn, calls: () => i };
}

/** A terminal-like stream that keeps what is written. */
function terminal(): { stream: Writable & { isTTY: boolean; columns: number }; text: () => string } {
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    }),
    { isTTY: true, columns: 120 },
  );
  return { stream, text: () => chunks.join('') };
}

const noSleep = async () => {};

describe('watchRequest', () => {
  it('draws a progress bar of ready/requested nodes on a terminal and ends with the final state', async () => {
    // Prepare
    const { fetch } = scriptedFetch([record('submitted', 0), record('submitted', 2), record('fulfilled', 4)]);
    const client = new ScalerClient({ baseUrl: 'http://127.0.0.1:7071', fetch });
    const out = terminal();
    const err = terminal();
    // Act
    const code = await watchRequest(client, 'job-7', { json: false, tty: true, paint: painter(false), stdout: out.stream, stderr: err.stream, sleep: noSleep });
    // Assess
    expect(code).toBe(0);
    const text = out.text();
    expect(text).toMatch(/job-7 fulfilled \[[█░]+\] 4\/4 ready \| Ready 4/);
    expect(text).toContain('job-7 ended fulfilled: 4/4 nodes ready');
  });

  it('rides out a few network failures but not a refusal', async () => {
    const flaky = scriptedFetch([new TypeError('fetch failed'), new TypeError('fetch failed'), record('fulfilled', 4)]);
    const client = new ScalerClient({ baseUrl: 'http://127.0.0.1:7071', fetch: flaky.fetch });
    const err = terminal();
    const code = await watchRequest(client, 'job-7', { json: false, tty: false, paint: painter(false), stdout: terminal().stream, stderr: err.stream, sleep: noSleep });
    expect(code).toBe(0);
    expect(err.text()).toContain('retrying (2/5)');

    const down = scriptedFetch([new TypeError('fetch failed')]);
    const dead = new ScalerClient({ baseUrl: 'http://127.0.0.1:7071', fetch: down.fetch });
    await expect(
      watchRequest(dead, 'job-7', { json: false, tty: false, paint: painter(false), stdout: terminal().stream, stderr: terminal().stream, sleep: noSleep, maxNetworkFailures: 3 }),
    ).rejects.toMatchObject({ code: 'CLI_NETWORK' });
    expect(down.calls()).toBe(3);
  });
});

describe('ScalerClient', () => {
  it('accepts the base URL the local host prints (with /api) and keeps a proxy prefix', () => {
    expect(new ScalerClient({ baseUrl: 'http://127.0.0.1:7071/api' }).baseUrl).toBe('http://127.0.0.1:7071');
    expect(new ScalerClient({ baseUrl: 'http://127.0.0.1:7071/api/?code=k' }).baseUrl).toBe('http://127.0.0.1:7071');
    expect(new ScalerClient({ baseUrl: 'https://gw.example.net/scaler/' }).baseUrl).toBe('https://gw.example.net/scaler');
    expect(() => new ScalerClient({ baseUrl: 'not a url' })).toThrow(/--url must be a URL/);
  });
});
