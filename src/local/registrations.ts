/**
 * Captures the `app.*` registrations of the functions entry so the local host runs exactly the
 * list Azure loads. The @azure/functions library, outside the Functions host, is in "test mode"
 * and drops registrations with a warning; we swap its registration functions for recorders while
 * the entry module is evaluated, then put the originals back.
 */
import { app } from '@azure/functions';
import { ScalerError } from '../platform/errors.ts';
import type { FunctionOutput, HttpFunctionOptions, HttpHandler, HttpMethod, HttpMethodFunctionOptions, StorageQueueFunctionOptions, TimerFunctionOptions } from '@azure/functions';

/** A timer-triggered function as registered. */
export interface TimerRegistration {
  kind: 'timer';
  name: string;
  options: TimerFunctionOptions;
}

/** A storage-queue-triggered function as registered. */
export interface QueueRegistration {
  kind: 'storageQueue';
  name: string;
  options: StorageQueueFunctionOptions;
}

/**
 * An HTTP-triggered function with the library's defaults applied (`methods` `['GET','POST']`,
 * `authLevel` `'anonymous'`, `route` = the function name), as the host sees it.
 */
export interface HttpRegistration {
  kind: 'http';
  name: string;
  options: HttpFunctionOptions & { methods: HttpMethod[]; authLevel: 'anonymous' | 'function' | 'admin'; route: string };
}

export type Registration = TimerRegistration | QueueRegistration | HttpRegistration;

/** Raised for registrations the local host cannot run (it would silently differ from Azure). */
export class LocalHostError extends ScalerError<'LOCAL_UNSUPPORTED' | 'LOCAL_BINDING' | 'LOCAL_CONFIG'> {
  override readonly name = 'LocalHostError';

  constructor(code: LocalHostError['code'], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

type AppRecord = Record<string, unknown>;

// One capture at a time: the recorders are process-global (they patch the shared `app` object).
let captureChain: Promise<unknown> = Promise.resolve();

/**
 * Runs `load` (typically `() => import('../../functions/index.ts')`) with `app.timer`,
 * `app.storageQueue`, `app.http`, the `app.get/put/post/patch/deleteRequest` shortcuts and
 * `app.generic` replaced by recorders, and returns what was registered, in order.
 *
 * `load` must evaluate the registration code: a module already imported by this process is not
 * evaluated again. `app.setup` is a read-only export of the library; in test mode it only records
 * options, so calls to it are harmless and left alone. A trigger other than timer, storage queue
 * or HTTP makes the capture fail with a {@link LocalHostError} naming the function.
 */
export async function captureRegistrations(load: () => Promise<unknown>): Promise<Registration[]> {
  const run = captureChain.then(() => captureOnce(load));
  captureChain = run.catch(() => undefined);
  return run;
}

async function captureOnce(load: () => Promise<unknown>): Promise<Registration[]> {
  const target = app as unknown as AppRecord;
  const registrations: Registration[] = [];
  let failure: LocalHostError | undefined;
  const fail = (name: string, what: string) => {
    failure ??= new LocalHostError('LOCAL_UNSUPPORTED', `function "${name}": ${what} is not supported by the local host`);
  };

  const http = (name: string, options: HttpFunctionOptions) => {
    registrations.push({
      kind: 'http',
      name,
      options: {
        ...options,
        methods: (options.methods ?? ['GET', 'POST']).map((m) => m.toUpperCase() as HttpMethod),
        authLevel: options.authLevel ?? 'anonymous',
        route: options.route ?? name,
      },
    });
  };
  const shortcut = (method: HttpMethod) => (name: string, optionsOrHandler: HttpMethodFunctionOptions | HttpHandler) => {
    const options = typeof optionsOrHandler === 'function' ? { handler: optionsOrHandler } : optionsOrHandler;
    http(name, { ...options, methods: [method] });
  };
  const recorders: AppRecord = {
    http,
    get: shortcut('GET'),
    put: shortcut('PUT'),
    post: shortcut('POST'),
    patch: shortcut('PATCH'),
    deleteRequest: shortcut('DELETE'),
    timer: (name: string, options: TimerFunctionOptions) => registrations.push({ kind: 'timer', name, options }),
    storageQueue: (name: string, options: StorageQueueFunctionOptions) => registrations.push({ kind: 'storageQueue', name, options }),
    generic: (name: string, options: { trigger: { type: string } & Record<string, unknown>; handler: never; return?: FunctionOutput; extraOutputs?: FunctionOutput[] }) => {
      const { trigger, ...rest } = options;
      const { type: _type, name: _bindingName, ...triggerOptions } = trigger;
      if (trigger.type === 'timerTrigger') registrations.push({ kind: 'timer', name, options: { ...triggerOptions, ...rest } as unknown as TimerFunctionOptions });
      else if (trigger.type === 'queueTrigger')
        registrations.push({ kind: 'storageQueue', name, options: { ...triggerOptions, ...rest } as unknown as StorageQueueFunctionOptions });
      else if (trigger.type === 'httpTrigger') http(name, { ...triggerOptions, ...rest } as unknown as HttpFunctionOptions);
      else fail(name, `trigger type "${trigger.type}"`);
    },
  };
  // Everything else that registers a function would be dropped silently; refuse it instead.
  for (const key of [
    'storageBlob',
    'serviceBusQueue',
    'serviceBusTopic',
    'eventHub',
    'eventGrid',
    'cosmosDB',
    'warmup',
    'sql',
    'mySql',
    'webPubSub',
    'connectorTrigger',
    'mcpTool',
    'mcpResource',
    'mcpPrompt',
  ]) {
    if (typeof target[key] === 'function') recorders[key] = (name: string) => fail(name, `app.${key}`);
  }

  const originals = new Map<string, unknown>();
  for (const [key, recorder] of Object.entries(recorders)) {
    const descriptor = Object.getOwnPropertyDescriptor(target, key);
    if (descriptor && !descriptor.writable && !descriptor.set) continue;
    originals.set(key, target[key]);
    target[key] = recorder;
  }
  try {
    await load();
  } finally {
    for (const [key, original] of originals) target[key] = original;
  }
  if (failure) throw failure;
  return registrations;
}
