/**
 * `npm start`: the whole scaler on one machine. Validates the configuration, starts azurite unless
 * `AzureWebJobsStorage` is set and the embedded CycleCloud simulator unless `CYCLECLOUD_URL` is set,
 * captures the registrations of `functions/index.ts` (the same list Azure loads) and runs them under
 * the local host.
 *
 *   npm start [-- --data DIR]
 *
 * Without `--data` everything lives in memory; with it azurite's files, the simulator's state, the
 * function key and the simulator's credentials live in DIR and survive restarts.
 *
 * Stopping (docs/api.md, "Commands"): SIGINT or SIGTERM, to this process or to npm's (the script
 * `exec`s node, so npm forwards to us), stops everything within 5 s; a second signal a second later
 * exits at once. If our parent dies (npm killed), we stop too; azurite and the temp-folder reaper
 * watch a pipe from us and go when we go, even after a SIGKILL.
 */
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, type Config } from '../platform/config.ts';
import { chooseLogFormat, formatForTerminal, type LogFormat } from '../platform/console-format.ts';
import { codeOf } from '../platform/errors.ts';
import { consoleSink, registerSecret, scrub, setConsoleOutput, type LogLevel, type LogSink } from '../platform/log.ts';
import { startSimulator } from '../simulator/server.ts';
import { keepSimulatorState, readSimulatorState } from '../simulator/state-file.ts';
import { startAzurite } from './azurite.ts';
import { startLocalHost, type LocalHost } from './host.ts';
import { captureRegistrations } from './registrations.ts';

/** Everything must be down within 5 s of a signal (docs/api.md); this is the last resort. */
const FORCE_EXIT_AFTER_MS = 4_500;
/** Running invocations get this long to finish on stop (the design survives a cut: exactly once). */
const STOP_GRACE_MS = 2_500;
/** npm forwards a terminal's Ctrl-C that already reached us: a repeat this soon is the same one. */
const SAME_SIGNAL_MS = 1_000;
/** `LOG_LEVEL` filters the host's lines (and handler lines passed through it). */
const LEVEL_ORDER: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

const USAGE = "usage: npm start [-- --data DIR]   (DIR keeps storage, the simulator's nodes and the function key across restarts)";

const env = process.env;
const closers: Array<{ what: string; close: () => Promise<void> | void }> = [];
let stoppingSinceMs: number | undefined;

/** A start-up failure whose message is already the sentence to print. */
class StartError extends Error {}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function parseArgs(argv: string[]): { dataDir?: string } {
  const out: { dataDir?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--data' || arg.startsWith('--data=')) {
      const value = arg === '--data' ? argv[++i] : arg.slice('--data='.length);
      if (!value) fail(`--data needs a folder\n${USAGE}`);
      out.dataDir = resolve(value);
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      fail(`unknown argument "${arg}"\n${USAGE}`);
    }
  }
  return out;
}

async function shutdown(): Promise<void> {
  // Reverse order: the host first (it still uses storage and CycleCloud), azurite last.
  for (const { what, close } of closers.splice(0).reverse()) {
    try {
      await close();
    } catch (error) {
      console.error(`stopping ${what} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

function stop(why: string): void {
  if (stoppingSinceMs !== undefined) {
    if (Date.now() - stoppingSinceMs < SAME_SIGNAL_MS) return;
    console.error(`${why} again: exiting now`);
    process.exit(130);
  }
  stoppingSinceMs = Date.now();
  console.error(`${why}: stopping the local host, the simulator and azurite…`);
  setTimeout(() => {
    console.error('stopping took too long; exiting');
    process.exit(1);
  }, FORCE_EXIT_AFTER_MS).unref();
  shutdown().then(
    () => process.exit(0),
    () => process.exit(1),
  );
}

/**
 * A child that removes `dir` when this process is gone, however it went (its stdin is a pipe from
 * us: end of file = we died). POSIX only; elsewhere the normal stop path removes the folder.
 */
function reapOnExit(dir: string): void {
  if (process.platform === 'win32') return;
  const reaper = spawn('sh', ['-c', 'cat >/dev/null; rm -rf -- "$1"', 'ccscale-reaper', dir], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  reaper.stdin.on('error', () => {});
  reaper.unref();
  (reaper.stdin as unknown as { unref?: () => void }).unref?.();
}

/** A secret kept in the data folder (created on first start, 0600), or a fresh one in memory. */
function keptSecret(dataDir: string | undefined, file: string, make: () => string): string {
  if (!dataDir) return make();
  const path = join(dataDir, file);
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const value = make();
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  return value;
}

function consoleOutput(format: LogFormat, minLevel: LogLevel): LogSink {
  const min = LEVEL_ORDER.indexOf(minLevel);
  const colour = format === 'text' && !env.NO_COLOR && process.stdout.hasColors?.() === true;
  return (level, line) => {
    // Metric lines are for Application Insights; on a terminal they are detail (LOG_LEVEL=debug).
    const shown = format === 'text' && line.includes('"metric":') ? 'debug' : level;
    if (LEVEL_ORDER.indexOf(shown) < min) return;
    const text = format === 'text' ? formatForTerminal(level, line, { colour }) : line;
    if (level === 'error') console.error(text);
    else if (level === 'warn') console.warn(text);
    else console.log(text);
  };
}

async function main(): Promise<void> {
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => stop('SIGHUP'));
  // npm killed, or the terminal gone: our parent changes. Nothing of ours should outlive it.
  const parentPid = process.ppid;
  setInterval(() => {
    if (process.ppid !== parentPid) stop('parent process exited');
  }, 250).unref();

  const { dataDir } = parseArgs(process.argv.slice(2));

  // 1. Configuration: one message naming the bad setting, never a secret value.
  let config: Config;
  let format: LogFormat;
  try {
    config = loadConfig(env, { mode: 'local' });
    format = chooseLogFormat(env.LOG_FORMAT, process.stdout.isTTY === true);
    // The functions build their services from this environment; tell them it is the local host.
    env.SCALER_MODE = 'local';
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    if (error instanceof Error && error.message.startsWith('Setting LOG_FORMAT')) fail(error.message);
    throw error;
  }
  setConsoleOutput(consoleOutput(format, config.logLevel));
  // Checked before anything starts, so a bad value leaves nothing behind.
  const stepMs = env.SIMULATOR_STEP_MS ? Number(env.SIMULATOR_STEP_MS) : undefined;
  if (stepMs !== undefined && !(Number.isInteger(stepMs) && stepMs >= 1 && stepMs <= 600_000))
    fail('Setting SIMULATOR_STEP_MS must be a whole number of milliseconds from 1 to 600000');
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
  }

  // 2. Storage: azurite (in memory, or in DATA/azurite) unless a storage account is configured.
  let storageNote = 'AzureWebJobsStorage from the environment';
  if (!config.storage) {
    const location = dataDir ? join(dataDir, 'azurite') : undefined;
    if (location) mkdirSync(location, { recursive: true });
    const azurite = await startAzurite({ preferDefaultPorts: true, ...(location ? { location } : {}) });
    closers.push({ what: 'azurite', close: () => azurite.stop() });
    env.AzureWebJobsStorage = azurite.connectionString;
    storageNote = `azurite ${location ? `in ${location}` : 'in memory'} (blob ${azurite.ports.blob}, queue ${azurite.ports.queue}, table ${azurite.ports.table})`;
  }
  if (stoppingSinceMs !== undefined) return;

  // 3. CycleCloud: the embedded simulator unless a CycleCloud URL is configured.
  let cycleCloudNote = `${config.cycleCloudUrl} (from the environment)`;
  if (!config.cycleCloudUrl) {
    const creds = config.cycleCloudCredentials;
    // Credentials set without a URL become the simulator's, so the user knows them; with --data the
    // generated password is kept, so clients configured with it keep working.
    const password = creds.kind === 'settings' ? creds.password : keptSecret(dataDir, 'simulator-password', () => randomBytes(18).toString('base64url'));
    const sim = await startSimulator({
      port: 0,
      ...(stepMs !== undefined ? { stepMs } : {}),
      ...(creds.kind === 'settings' ? { username: creds.username } : {}),
      password,
    });
    registerSecret(sim.password);
    let stateNote = '';
    if (dataDir) {
      const statePath = join(dataDir, 'simulator-state.json');
      const saved = readSimulatorState(statePath);
      if (saved) sim.sim.importState(saved);
      const keeper = keepSimulatorState(sim.sim, statePath);
      closers.push({
        what: 'the simulator',
        close: async () => {
          keeper.stop();
          await sim.close();
        },
      });
      stateNote = saved ? ', state restored' : '';
    } else {
      closers.push({ what: 'the simulator', close: () => sim.close() });
    }
    env.CYCLECLOUD_URL = sim.url;
    env.CYCLECLOUD_USERNAME = sim.username;
    env.CYCLECLOUD_PASSWORD = sim.password;
    env.CYCLECLOUD_CLUSTERS ??= sim.clusters.join(',');
    // Illustrative list prices of the simulator's machine types, so records and tenants show a cost.
    env.PRICES_FILE ??= fileURLToPath(new URL('../simulator/prices.json', import.meta.url));
    // The password is not printed: it goes to a file only this user can read. In memory mode that
    // file is in a temp folder removed on every exit path (the reaper covers a SIGKILL).
    let folder: string;
    if (dataDir) folder = dataDir;
    else {
      folder = mkdtempSync(join(tmpdir(), 'ccscale-local-'));
      reapOnExit(folder);
      closers.unshift({ what: 'the credentials file', close: () => rmSync(folder, { recursive: true, force: true }) });
    }
    const credentialsFile = join(folder, 'simulator-credentials.json');
    writeFileSync(credentialsFile, `${JSON.stringify({ url: sim.url, username: sim.username, password: sim.password })}\n`, { mode: 0o600 });
    cycleCloudNote = `${sim.url} (embedded simulator${stateNote}, clusters ${sim.clusters.join(', ')}; user "${sim.username}", password in ${credentialsFile})`;
  }
  if (stoppingSinceMs !== undefined) return;

  // 4. The function key HTTP callers must send (kept in DATA/function-key with --data).
  const functionKey = config.functionKey ?? keptSecret(dataDir, 'function-key', () => randomBytes(24).toString('base64url'));
  env.FUNCTION_KEY = functionKey;

  // Binding expressions (%SNAPSHOT_SCHEDULE%, %SCALE_REQUESTS_QUEUE%) need app settings; in Azure
  // the deployment sets them, here the configuration's defaults stand in (like local.settings.json).
  env.SNAPSHOT_SCHEDULE ||= config.snapshotSchedule;
  env.SCALE_REQUESTS_QUEUE ||= config.scaleRequestsQueue;

  // 5. The same registrations Azure loads, under the local host.
  const registrations = await captureRegistrations(() => import(new URL('../../functions/index.ts', import.meta.url).href));
  let host: LocalHost;
  try {
    host = await startLocalHost({ registrations, env, port: config.port, functionKey, stopGraceMs: STOP_GRACE_MS, logSink: consoleSink });
  } catch (error) {
    if (codeOf(error) === 'EADDRINUSE') {
      throw new StartError(
        `port ${config.port} is already in use (another npm start?): set PORT to a free port, e.g. PORT=${config.port + 1} npm start, or PORT=0 for any free port`,
      );
    }
    throw error;
  }
  closers.push({ what: 'the local host', close: () => host.stop() });
  if (stoppingSinceMs !== undefined) return;

  console.log(
    banner({
      api: `${host.url}/${host.settings.routePrefix}`,
      functionKey,
      cycleCloudNote,
      storageNote,
      dataDir,
      format,
      level: config.logLevel,
      clusters: env.CYCLECLOUD_CLUSTERS ?? 'hpc',
    }),
  );
}

function banner(b: {
  api: string;
  functionKey: string;
  cycleCloudNote: string;
  storageNote: string;
  dataDir: string | undefined;
  format: LogFormat;
  level: LogLevel;
  clusters: string;
}): string {
  const cluster = b.clusters.split(',')[0]!;
  const example = JSON.stringify({ requestId: 'demo-1', cluster, demands: [{ nodearray: 'ondemand', count: 2 }] });
  return [
    '',
    'CycleCloud scaler is running locally (Ctrl-C stops everything).',
    `  HTTP base URL:  ${b.api}`,
    `  Console:        ${b.api}/console   (asks for the function key)`,
    `  Function key:   ${b.functionKey}   (x-functions-key header or ?code=)`,
    `  CycleCloud:     ${b.cycleCloudNote}`,
    `  Storage:        ${b.storageNote}`,
    b.dataDir
      ? `  Data:           kept in ${b.dataDir} (records, queues, simulator nodes, key) across restarts`
      : '  Data:           in memory: lost when this stops (npm start -- --data DIR keeps it)',
    `  Logs:           ${b.format}, level ${b.level} (LOG_LEVEL=debug shows every invocation; LOG_FORMAT=json|text)`,
    '  Try:',
    `    curl -s -X POST ${b.api}/scale-requests -H 'x-functions-key: ${b.functionKey}' -H 'content-type: application/json' -d '${example}'`,
    `    npx ccscale watch demo-1 --url ${b.api} --key ${b.functionKey}`,
    '  API and settings: docs/api.md',
    '',
  ].join('\n');
}

main().catch(async (error: unknown) => {
  const text = error instanceof StartError ? error.message : `npm start failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
  console.error(scrub(text));
  await shutdown();
  process.exit(1);
});
