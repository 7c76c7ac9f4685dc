/**
 * `npm run simulator`: the CycleCloud simulator alone (docs/api.md §1).
 *
 *   node src/simulator/main.ts [--port N (default 8080; 0 = free port)] [--host H (default 127.0.0.1)]
 *                              [--step-ms N (default 1000)] [--username U] [--password P]
 *
 * When listening it prints exactly one JSON line on stdout:
 * `{"url":"http://127.0.0.1:8080","username":"…","password":"…","clusters":["hpc"]}`.
 * Bad flags exit 2 with a message naming the flag; SIGINT/SIGTERM close cleanly.
 */
import { parseArgs } from 'node:util';
import { startSimulator } from './server.ts';
import { codeOf } from '../platform/errors.ts';

function usage(message: string): never {
  process.stderr.write(`simulator: ${message}\nusage: npm run simulator -- [--port N] [--host H] [--step-ms N] [--username U] [--password P]\n`);
  process.exit(2);
}

function nonNegativeInt(flag: string, raw: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > max) usage(`--${flag}: must be an integer from 0 to ${max}, got "${raw}"`);
  return Number(raw);
}

let values: Record<string, string | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'step-ms': { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  // parseArgs names the offending flag in its message (e.g. "Unknown option '--prot'").
  usage(error instanceof Error ? error.message : String(error));
}

const port = nonNegativeInt('port', values.port, 8080, 65535);
const stepMs = nonNegativeInt('step-ms', values['step-ms'], 1000);
if (values.username === '') usage('--username: must not be empty');
if (values.password === '') usage('--password: must not be empty');

let handle: Awaited<ReturnType<typeof startSimulator>>;
try {
  handle = await startSimulator({
    port,
    host: values.host ?? '127.0.0.1',
    stepMs,
    ...(values.username !== undefined ? { username: values.username } : {}),
    ...(values.password !== undefined ? { password: values.password } : {}),
  });
} catch (error) {
  const code = codeOf(error);
  process.stderr.write(`simulator: cannot listen on ${values.host ?? '127.0.0.1'}:${port}${code ? ` (${code})` : ''}\n`);
  process.exit(1);
}

process.stdout.write(`${JSON.stringify({ url: handle.url, username: handle.username, password: handle.password, clusters: handle.clusters })}\n`);

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`simulator: ${signal}, closing\n`);
  handle.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGINT', () => stop('SIGINT'));
process.once('SIGTERM', () => stop('SIGTERM'));
