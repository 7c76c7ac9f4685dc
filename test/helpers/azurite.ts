/** Spawns azurite (in memory) on free loopback ports and waits until it accepts connections. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { freePort, waitForPort } from './net.ts';

export interface AzuriteHandle {
  connectionString: string;
  stop(): Promise<void>;
}

const ACCOUNT = 'devstoreaccount1';
// The well-known development-storage key: public, documented, not a secret.
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export async function startAzurite(): Promise<AzuriteHandle> {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('azurite/dist/src/azurite.js');
  const [blob, queue, table] = [await freePort(), await freePort(), await freePort()];
  const proc: ChildProcess = spawn(
    process.execPath,
    [entry, '--inMemoryPersistence', '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry',
      '--blobHost', '127.0.0.1', '--queueHost', '127.0.0.1', '--tableHost', '127.0.0.1',
      '--blobPort', String(blob), '--queuePort', String(queue), '--tablePort', String(table)],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await Promise.all([waitForPort(blob), waitForPort(queue), waitForPort(table)]);
  const connectionString = azuriteConnectionString({ blob, queue, table });
  return {
    connectionString,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

export function azuriteConnectionString(ports: { blob: number; queue: number; table: number }): string {
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${ACCOUNT}`,
    `AccountKey=${DEV_KEY}`,
    `BlobEndpoint=http://127.0.0.1:${ports.blob}/${ACCOUNT}`,
    `QueueEndpoint=http://127.0.0.1:${ports.queue}/${ACCOUNT}`,
    `TableEndpoint=http://127.0.0.1:${ports.table}/${ACCOUNT}`,
  ].join(';');
}
