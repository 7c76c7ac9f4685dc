/**
 * Runs `npm start` (src/local/main.ts) as a user does, for end-to-end tests: the real local host, the
 * real function registrations, the embedded simulator over HTTP, and the test run's azurite under
 * names of its own (so files never clash). Also runs `npm run simulator` (src/simulator/main.ts).
 *
 * @example
 * const host = await startScaler({ storageConnectionString: inject('storageConnectionString') });
 * const res = await host.api('/scale-requests', { method: 'POST', body: JSON.stringify(request) });
 * const record = await host.waitFinal('job-1');
 * await host.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FINAL_STATES, type RequestRecord } from '../../src/ledger/schemas.ts';
import { freePort } from '../helpers/net.ts';

/** The repository root (where `npm start` runs). */
export const root = fileURLToPath(new URL('../..', import.meta.url));

/** A simulator call as `GET /__sim/calls` lists it. */
export type { CallRecord as SimCall } from '../../src/simulator/model.ts';
import type { CallRecord as SimCall } from '../../src/simulator/model.ts';

export interface SimulatorAccess {
  url: string;
  username: string;
  password: string;
}

/** A running `npm start`. */
export interface RunningScaler {
  child: ChildProcess;
  /** The printed HTTP base URL, ending in `/api`. */
  base: string;
  /** The printed function key. */
  key: string;
  sim: SimulatorAccess;
  /** The storage prefix and the scale-requests queue this instance uses. */
  prefix: string;
  scaleQueue: string;
  /** Everything the process wrote so far (stdout and stderr). */
  output(): string;
  /** `fetch` of `<base><path>` with the function key and a JSON content type (both overridable). */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** A simulator hook (`/__sim/...`) or CycleCloud route with the simulator's Basic credentials. */
  sim$(path: string, init?: RequestInit): Promise<Response>;
  /** The simulator's call log. */
  simCalls(): Promise<SimCall[]>;
  /** Polls the record until it is final (or throws with the last record after `timeoutMs`). */
  waitFinal(requestId: string, timeoutMs?: number): Promise<RequestRecord>;
  /** SIGINT to the process group; resolves with the exit code once it is gone. */
  stop(): Promise<number | null>;
}

export interface StartScalerOptions {
  /** The azurite connection string of the test run (`inject('storageConnectionString')`). */
  storageConnectionString: string;
  /** Extra settings; `undefined` removes one. Defaults: fast simulator and tracker, snapshots every 5 s. */
  env?: Record<string, string | undefined>;
  /** How long start-up may take. Default 45 s. */
  startTimeoutMs?: number;
}

/** Settings a user may have exported that would change what `npm start` does. */
const CLEARED = [
  'CYCLECLOUD_URL',
  'CYCLECLOUD_USERNAME',
  'CYCLECLOUD_PASSWORD',
  'CYCLECLOUD_CLUSTERS',
  'FUNCTION_KEY',
  'KEY_VAULT_URL',
  'SCALER_SIGNING_SECRET',
  'REQUIRE_SIGNED_WEBHOOKS',
];

/** The environment `npm start` gets: the test process's, minus user settings, plus `overrides`. */
function scalerEnv(overrides: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CLEARED) delete env[k];
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Spawns `node src/local/main.ts` in its own process group and collects its output. */
export function spawnScaler(overrides: Record<string, string | undefined>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['src/local/main.ts'], { cwd: root, env: scalerEnv(overrides), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Starts `npm start` and waits until it prints its HTTP base URL. */
export async function startScaler(options: StartScalerOptions): Promise<RunningScaler> {
  const port = await freePort();
  const prefix = `e2e${randomBytes(4).toString('hex')}`;
  const scaleQueue = `${prefix}-scale`;
  const { child, output, exited } = spawnScaler({
    PORT: String(port),
    AzureWebJobsStorage: options.storageConnectionString,
    STORAGE_PREFIX: prefix,
    SCALE_REQUESTS_QUEUE: scaleQueue,
    SIMULATOR_STEP_MS: '100',
    TRACKER_POLL_MIN_SECONDS: '0.5',
    TRACKER_POLL_MAX_SECONDS: '1',
    SNAPSHOT_SCHEDULE: '*/5 * * * * *',
    ...options.env,
  });
  const deadline = Date.now() + (options.startTimeoutMs ?? 45_000);
  while (!/HTTP base URL:\s+(\S+)/.test(output())) {
    if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}\n${output()}`);
    if (Date.now() > deadline) {
      process.kill(-child.pid!, 'SIGKILL');
      throw new Error(`npm start printed no URL\n${output()}`);
    }
    await sleep(100);
  }
  const base = /HTTP base URL:\s+(\S+)/.exec(output())![1]!;
  const key = /Function key:\s+(\S+)/.exec(output())![1]!;
  // The embedded simulator's credentials, or a CycleCloud (simulator) given by the settings.
  const external = options.env?.CYCLECLOUD_URL;
  const sim: SimulatorAccess = external
    ? { url: external, username: options.env?.CYCLECLOUD_USERNAME ?? '', password: options.env?.CYCLECLOUD_PASSWORD ?? '' }
    : (JSON.parse(readFileSync(/password in (\S+)\)/.exec(output())![1]!, 'utf8')) as SimulatorAccess);
  const basic = `Basic ${Buffer.from(`${sim.username}:${sim.password}`).toString('base64')}`;

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, { ...init, headers: { 'x-functions-key': key, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });
  const sim$ = (path: string, init: RequestInit = {}) =>
    fetch(`${sim.url}${path}`, { ...init, headers: { authorization: basic, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });

  return {
    child,
    base,
    key,
    sim,
    prefix,
    scaleQueue,
    output,
    api,
    sim$,
    async simCalls() {
      return ((await (await sim$('/__sim/calls')).json()) as { calls: SimCall[] }).calls;
    },
    async waitFinal(requestId, timeoutMs = 45_000) {
      const until = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        const res = await api(`/scale-requests/${encodeURIComponent(requestId)}`);
        if (res.status === 200) {
          const record = (await res.json()) as RequestRecord;
          if (FINAL_STATES.has(record.state)) return record;
          last = JSON.stringify(record);
        } else {
          last = `HTTP ${res.status}`;
        }
        if (Date.now() > until) throw new Error(`request ${requestId} not final after ${timeoutMs} ms: ${last}`);
        await sleep(200);
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      process.kill(-child.pid!, 'SIGINT');
      return exited;
    },
  };
}

/** Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
