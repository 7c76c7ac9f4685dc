/**
 * Starts azurite (blob, queue, table), in memory or in a folder, as a child process on loopback, for `npm start`
 * and the test harness. The storage SDKs send API versions newer than azurite knows, hence
 * `--skipApiVersionCheck`; telemetry is on by default in azurite, hence `--disableTelemetry`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, isPortFree, waitForPort } from './net.ts';

export interface AzuriteHandle {
  connectionString: string;
  ports: AzuritePorts;
  /**
   * The child's pid. It runs in a process group of its own (a terminal Ctrl-C reaches only us, and
   * we stop it after the functions) and exits by itself when this process dies.
   */
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface AzuritePorts {
  blob: number;
  queue: number;
  table: number;
}

export interface StartAzuriteOptions {
  /**
   * Use the well-known ports 10000–10002 when all three are free (tools such as Storage Explorer
   * find it there), else free ports. Default false: always free ports.
   */
  preferDefaultPorts?: boolean;
  /** How long to wait for the ports. Default 30 000 ms. */
  timeoutMs?: number;
  /** A folder to keep the data in across restarts. Default: in memory. */
  location?: string;
}

const ACCOUNT = 'devstoreaccount1';
// The well-known development-storage key: public, documented, not a secret.
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

async function choosePorts(preferDefault: boolean): Promise<AzuritePorts> {
  if (preferDefault) {
    const free = await Promise.all([10000, 10001, 10002].map(isPortFree));
    if (free.every(Boolean)) return { blob: 10000, queue: 10001, table: 10002 };
  }
  return { blob: await freePort(), queue: await freePort(), table: await freePort() };
}

/** Spawns azurite (in memory, or in `location`) and resolves once its three ports accept connections. */
export async function startAzurite(options: StartAzuriteOptions = {}): Promise<AzuriteHandle> {
  const ports = await choosePorts(options.preferDefaultPorts === true);
  const persistence = options.location !== undefined ? ['--location', options.location] : ['--inMemoryPersistence'];
  const proc: ChildProcess = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('./azurite-child.ts', import.meta.url)),
      ...persistence,
      '--silent',
      '--skipApiVersionCheck',
      '--loose',
      '--disableTelemetry',
      '--blobHost',
      '127.0.0.1',
      '--queueHost',
      '127.0.0.1',
      '--tableHost',
      '127.0.0.1',
      '--blobPort',
      String(ports.blob),
      '--queuePort',
      String(ports.queue),
      '--tablePort',
      String(ports.table),
    ],
    // stdin is the lifeline (azurite-child.ts exits when it closes); a group of its own keeps a
    // terminal's Ctrl-C from stopping storage under the functions' feet.
    { stdio: ['pipe', 'ignore', 'inherit'], detached: true },
  );
  proc.stdin?.on('error', () => {});
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const early = new AbortController();
  void exited.then(() => early.abort(new Error(`azurite exited during start-up (code ${proc.exitCode})`)));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    // Azurite closes in well under a second; never let it hold a stop up for long.
    const force = setTimeout(() => proc.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(force);
  };
  try {
    const wait = { timeoutMs: options.timeoutMs ?? 30_000, abortSignal: early.signal };
    await Promise.all([waitForPort(ports.blob, wait), waitForPort(ports.queue, wait), waitForPort(ports.table, wait)]);
  } catch (error) {
    await stop();
    throw error;
  }
  return { connectionString: azuriteConnectionString(ports), ports, pid: proc.pid, stop };
}

/** The connection string for an azurite on loopback with the given ports. */
export function azuriteConnectionString(ports: AzuritePorts): string {
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${ACCOUNT}`,
    `AccountKey=${DEV_KEY}`,
    `BlobEndpoint=http://127.0.0.1:${ports.blob}/${ACCOUNT}`,
    `QueueEndpoint=http://127.0.0.1:${ports.queue}/${ACCOUNT}`,
    `TableEndpoint=http://127.0.0.1:${ports.table}/${ACCOUNT}`,
  ].join(';');
}
