/**
 * `npm start`: the whole scaler on one machine. Validates the configuration, starts azurite (in
 * memory) unless `AzureWebJobsStorage` is set and the embedded CycleCloud simulator unless
 * `CYCLECLOUD_URL` is set, captures the registrations of `functions/index.ts` (the same list Azure
 * loads) and runs them under the local host. Ctrl-C (SIGINT to the process group) or SIGTERM stops
 * everything within 20 s; a second Ctrl-C exits at once.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, type Config } from '../platform/config.ts';
import { consoleSink, registerSecret, scrub, type LogLevel, type LogSink } from '../platform/log.ts';
import { startSimulator } from '../simulator/server.ts';
import { startAzurite } from './azurite.ts';
import { startLocalHost } from './host.ts';
import { captureRegistrations } from './registrations.ts';

/** Everything must be down by then (CONTRACT §2 allows 20 s). */
const FORCE_EXIT_AFTER_MS = 18_000;
/** Running invocations get this long to finish on stop. */
const STOP_GRACE_MS = 8_000;
/** `LOG_LEVEL` filters the host's lines (and handler lines passed through it). */
const LEVEL_ORDER: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

const env = process.env;
const closers: Array<{ what: string; close: () => Promise<void> }> = [];
let stopping = false;

function fail(message: string): never {
  console.error(message);
  process.exit(1);
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

function onSignal(signal: NodeJS.Signals): void {
  if (stopping) {
    console.error(`${signal} again: exiting now`);
    process.exit(130);
  }
  stopping = true;
  console.error(`${signal}: stopping the local host, the simulator and azurite…`);
  setTimeout(() => {
    console.error('stopping took too long; exiting');
    process.exit(1);
  }, FORCE_EXIT_AFTER_MS).unref();
  shutdown().then(
    () => process.exit(0),
    () => process.exit(1),
  );
}

async function main(): Promise<void> {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // 1. Configuration: one message naming the bad setting, never a secret value.
  let config: Config;
  try {
    config = loadConfig(env, { mode: 'local' });
    // The functions build their services from this environment; tell them it is the local host.
    env.SCALER_MODE = 'local';
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }

  // 2. Storage: azurite in memory unless a storage account is configured.
  let storageNote = 'AzureWebJobsStorage from the environment';
  if (!config.storage) {
    const azurite = await startAzurite({ preferDefaultPorts: true });
    closers.push({ what: 'azurite', close: () => azurite.stop() });
    // If this process dies without shutdown, do not leave azurite behind.
    process.once('exit', () => {
      if (azurite.pid) try { process.kill(azurite.pid, 'SIGTERM'); } catch { /* already gone */ }
    });
    env.AzureWebJobsStorage = azurite.connectionString;
    storageNote = `azurite in memory (blob ${azurite.ports.blob}, queue ${azurite.ports.queue}, table ${azurite.ports.table})`;
  }
  if (stopping) return;

  // 3. CycleCloud: the embedded simulator unless a CycleCloud URL is configured.
  let cycleCloudNote = `${config.cycleCloudUrl} (from the environment)`;
  if (!config.cycleCloudUrl) {
    const creds = config.cycleCloudCredentials;
    // Credentials set without a URL become the simulator's, so the user knows them.
    const stepMs = env.SIMULATOR_STEP_MS ? Number(env.SIMULATOR_STEP_MS) : undefined;
    if (stepMs !== undefined && !(Number.isInteger(stepMs) && stepMs >= 1 && stepMs <= 600_000)) fail('Setting SIMULATOR_STEP_MS must be a whole number of milliseconds from 1 to 600000');
    const sim = await startSimulator({
      port: 0,
      ...(stepMs !== undefined ? { stepMs } : {}),
      ...(creds.kind === 'settings' ? { username: creds.username, password: creds.password } : {}),
    });
    closers.push({ what: 'the simulator', close: () => sim.close() });
    registerSecret(sim.password);
    env.CYCLECLOUD_URL = sim.url;
    env.CYCLECLOUD_USERNAME = sim.username;
    env.CYCLECLOUD_PASSWORD = sim.password;
    env.CYCLECLOUD_CLUSTERS ??= sim.clusters.join(',');
    // The password is not printed: it goes to a file only this user can read, removed on stop.
    const dir = mkdtempSync(join(tmpdir(), 'ccscale-local-'));
    const credentialsFile = join(dir, 'simulator-credentials.json');
    writeFileSync(credentialsFile, `${JSON.stringify({ url: sim.url, username: sim.username, password: sim.password })}\n`, { mode: 0o600 });
    closers.unshift({ what: 'the credentials file', close: async () => rmSync(dir, { recursive: true, force: true }) });
    cycleCloudNote = `${sim.url} (embedded simulator, clusters ${sim.clusters.join(', ')}; user "${sim.username}", password in ${credentialsFile})`;
  }
  if (stopping) return;

  // 4. The function key HTTP callers must send.
  const functionKey = config.functionKey ?? randomBytes(24).toString('base64url');
  env.FUNCTION_KEY = functionKey;

  // Binding expressions (%SNAPSHOT_SCHEDULE%, %SCALE_REQUESTS_QUEUE%) need app settings; in Azure
  // the deployment sets them, here the configuration's defaults stand in (like local.settings.json).
  env.SNAPSHOT_SCHEDULE ||= config.snapshotSchedule;
  env.SCALE_REQUESTS_QUEUE ||= config.scaleRequestsQueue;

  // 5. The same registrations Azure loads, under the local host.
  const registrations = await captureRegistrations(() => import(new URL('../../functions/index.ts', import.meta.url).href));
  const minLevel = LEVEL_ORDER.indexOf(config.logLevel);
  const logSink: LogSink = (level, line) => {
    if (LEVEL_ORDER.indexOf(level) >= minLevel) consoleSink(level, line);
  };
  const host = await startLocalHost({ registrations, env, port: config.port, functionKey, stopGraceMs: STOP_GRACE_MS, logSink });
  closers.push({ what: 'the local host', close: () => host.stop() });
  if (stopping) return;

  const api = `${host.url}/${host.settings.routePrefix}`;
  const example = JSON.stringify({ requestId: 'demo-1', cluster: (env.CYCLECLOUD_CLUSTERS ?? 'hpc').split(',')[0], demands: [{ nodearray: 'ondemand', count: 2 }] });
  console.log(
    [
      '',
      'CycleCloud scaler is running locally (Ctrl-C stops everything).',
      `  HTTP base URL:  ${api}`,
      `  Function key:   ${functionKey}   (x-functions-key header or ?code=)`,
      `  CycleCloud:     ${cycleCloudNote}`,
      `  Storage:        ${storageNote}`,
      `  Functions:      ${registrations.map((r) => r.name).join(', ')}`,
      '  Try:',
      `    curl -s -X POST ${api}/scale-requests -H 'x-functions-key: ${functionKey}' -H 'content-type: application/json' -d '${example}'`,
      '',
    ].join('\n'),
  );
}

main().catch(async (error: unknown) => {
  console.error(scrub(`npm start failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`));
  await shutdown();
  process.exit(1);
});
