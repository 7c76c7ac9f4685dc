/**
 * A small stand-in for the Azure Functions host: it runs captured registrations (timer, storage
 * queue, HTTP) with the host's semantics and nothing else — no product logic lives here, so the
 * same handlers behave the same way in Azure and under `npm start`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Timer } from '@azure/functions';
import { consoleSink, createLogger, registerSecret, type LogSink } from '../platform/log.ts';
import { poisonQueueName } from '../platform/names.ts';
import { Storage } from '../platform/storage.ts';
import { parseHostSettings, resolveBindingExpression, type HostSettings } from './host-config.ts';
import { compileRoute, createHttpDispatcher, DEFAULT_MAX_BODY_BYTES, type CompiledRoute } from './http-trigger.ts';
import { checkOutputBindings, invoke, storageFromEnv, type InvokeOptions, type StorageForConnection } from './invocation.ts';
import { QueuePoller } from './queue-trigger.ts';
import { LocalHostError, type Registration } from './registrations.ts';
import { TimerSchedule } from './timer-trigger.ts';

export interface LocalHostOptions {
  /** What `captureRegistrations` returned (or synthetic registrations in tests). */
  registrations: Registration[];
  /** App settings for `%SETTING%` expressions and storage connections. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** host.json content (parsed JSON). Default: the repository's `host.json`. */
  hostJson?: unknown;
  /** HTTP port; `0` picks a free one. Default 7071. */
  port?: number;
  /** Default `127.0.0.1`. */
  hostname?: string;
  /** The key for `authLevel: 'function' | 'admin'` routes; without it those routes answer 401. */
  functionKey?: string;
  /** Default 256 KiB (docs/api.md §4). */
  maxBodyBytes?: number;
  /** Where log lines go. Default stdout/stderr. */
  logSink?: LogSink;
  /** Storage for a binding's connection setting name. Default: built from `env`. */
  storageFor?: StorageForConnection;
  /** How long `stop()` waits for running invocations. Default 10 000 ms. */
  stopGraceMs?: number;
}

export interface LocalHost {
  /** `http://host:port` (routes live under `/<routePrefix>`). */
  url: string;
  port: number;
  settings: HostSettings;
  /** Stops timers and pollers (in-flight invocations get `stopGraceMs`), then closes the server. */
  stop(): Promise<void>;
}

function defaultHostJson(): unknown {
  return JSON.parse(readFileSync(new URL('../../host.json', import.meta.url), 'utf8')) as unknown;
}

function bindingsOf(reg: Registration): InvokeOptions['bindings'] {
  return {
    ...(reg.options.return ? { return: reg.options.return } : {}),
    ...(reg.options.extraOutputs ? { extraOutputs: reg.options.extraOutputs } : {}),
  };
}

/** Starts the local host. Fails (naming the function and setting) before anything runs if a binding is unusable. */
export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const env = options.env ?? process.env;
  const sink = options.logSink ?? consoleSink;
  const logger = createLogger(sink, { host: 'local' });
  const settings = parseHostSettings(options.hostJson ?? defaultHostJson(), env);
  const storageFor = options.storageFor ?? storageFromEnv(env, (conn) => Storage.connect(conn));
  const stopGraceMs = options.stopGraceMs ?? 10_000;
  if (options.functionKey) registerSecret(options.functionKey);

  const base = (functionName: string, trigger: InvokeOptions['trigger'], bindings: InvokeOptions['bindings']): InvokeOptions => ({
    functionName,
    trigger,
    bindings,
    logger,
    sink,
    env,
    storageFor,
    messageEncoding: settings.queues.messageEncoding,
  });

  // Resolve and validate every binding first, so a bad one stops start-up before anything runs.
  const timers: TimerSchedule[] = [];
  const pollers: QueuePoller[] = [];
  const routes: CompiledRoute[] = [];
  for (const reg of options.registrations) {
    const where = `function "${reg.name}"`;
    const bindings = bindingsOf(reg);
    checkOutputBindings(reg.name, bindings, reg.kind);
    if (reg.options.extraInputs?.length) {
      throw new LocalHostError('LOCAL_UNSUPPORTED', `${where}: input bindings (extraInputs) are not supported by the local host`);
    }
    if (reg.kind === 'timer' && reg.options.retry) {
      logger.warn('timer retry policy is not applied by the local host; a failed run waits for the next tick', { functionName: reg.name });
    }
    if (reg.kind === 'timer') {
      const { handler } = reg.options;
      timers.push(
        new TimerSchedule({
          functionName: reg.name,
          schedule: resolveBindingExpression(reg.options.schedule, env, `${where} schedule`),
          runOnStartup: reg.options.runOnStartup === true,
          logger,
          run: async (timer: Timer) => {
            await invoke(base(reg.name, 'timer', bindings), (ctx) => handler(timer, ctx));
          },
        }),
      );
    } else if (reg.kind === 'storageQueue') {
      const { handler } = reg.options;
      const queueName = resolveBindingExpression(reg.options.queueName, env, `${where} queueName`);
      const storage = await storageFor(reg.options.connection || 'AzureWebJobsStorage');
      pollers.push(
        new QueuePoller({
          functionName: reg.name,
          queue: storage.queue(queueName),
          poison: storage.queue(poisonQueueName(queueName)),
          settings: settings.queues,
          receiveVisibilityMs: settings.functionTimeoutMs + 30_000,
          logger,
          run: async (item, triggerMetadata) => {
            await invoke({ ...base(reg.name, 'storageQueue', bindings), triggerMetadata }, (ctx) => handler(item, ctx));
          },
        }),
      );
    } else {
      routes.push(compileRoute(reg, resolveBindingExpression(reg.options.route, env, `${where} route`)));
    }
  }

  let baseUrl = '';
  const server: Server = createServer(
    createHttpDispatcher({
      routes,
      routePrefix: settings.routePrefix,
      functionKey: options.functionKey,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      logger,
      baseUrl: () => baseUrl,
      run: (reg, run) => invoke({ ...base(reg.name, 'http', bindingsOf(reg)), triggerMetadata: {} }, run),
    }),
  );
  const hostname = options.hostname ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7071, hostname, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://${hostname}:${port}`;

  try {
    await Promise.all(pollers.map((p) => p.start()));
  } catch (error) {
    await Promise.all(pollers.map((p) => p.stop(0)));
    server.close();
    throw error;
  }
  for (const t of timers) t.start();
  logger.debug('local host started', { url: baseUrl, functions: options.registrations.map((r) => `${r.kind}:${r.name}`) });

  let stopping: Promise<void> | undefined;
  return {
    url: baseUrl,
    port,
    settings,
    stop: () =>
      (stopping ??= (async () => {
        await Promise.all([...timers.map((t) => t.stop(stopGraceMs)), ...pollers.map((p) => p.stop(stopGraceMs))]);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // Requests still open after the grace period are cut.
          setTimeout(() => server.closeAllConnections(), stopGraceMs).unref();
        });
        logger.info('local host stopped');
      })()),
  };
}
