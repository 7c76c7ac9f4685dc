import { afterEach, describe, expect, inject, it } from 'vitest';
import { output, type InvocationContext } from '@azure/functions';
import { startLocalHost, type LocalHost } from '../../src/local/host.ts';
import { decodeQueueMessage, encodeQueueMessage, Storage } from '../../src/platform/storage.ts';
import { uniqueNames } from '../helpers/names.ts';
import { captureLog, eventually, queueReg } from './helpers.ts';

const connectionString = inject('storageConnectionString');
const storage = Storage.fromConnectionString(connectionString);
const hosts: LocalHost[] = [];

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
});

function queuesJson(extra: Record<string, unknown> = {}) {
  return { extensions: { queues: { batchSize: 4, maxDequeueCount: 3, visibilityTimeout: '00:00:00', maxPollingInterval: '00:00:00.200', ...extra } } };
}

async function start(options: Parameters<typeof startLocalHost>[0]): Promise<LocalHost> {
  const host = await startLocalHost({ port: 0, stopGraceMs: 2000, ...options });
  hosts.push(host);
  return host;
}

describe('local host queue trigger', () => {
  it('delivers a base64 JSON message as a parsed object with its trigger metadata, then deletes it', async () => {
    // Prepare
    const queueName = uniqueNames().scaleQueue;
    const seen: Array<{ item: unknown; meta: Record<string, unknown> | undefined }> = [];
    const log = captureLog();
    await start({
      env: { AzureWebJobsStorage: connectionString, IN_QUEUE: queueName },
      hostJson: queuesJson(),
      logSink: log.sink,
      registrations: [
        queueReg('intake', {
          queueName: '%IN_QUEUE%',
          connection: 'AzureWebJobsStorage',
          handler: (item: unknown, ctx: InvocationContext) => {
            seen.push({ item, meta: ctx.triggerMetadata });
          },
        }),
      ],
    });

    // Act
    const sent = await storage.queue(queueName).sendMessage(encodeQueueMessage({ kind: 'scale', requestId: 'job-1' }));

    // Assess
    await eventually(() => (seen.length > 0 ? true : undefined));
    expect(seen[0]?.item).toEqual({ kind: 'scale', requestId: 'job-1' });
    expect(seen[0]?.meta).toMatchObject({ dequeueCount: 1, id: sent.messageId });
    for (const k of ['popReceipt', 'insertionTime', 'expirationTime', 'nextVisibleTime']) expect(typeof seen[0]?.meta?.[k]).toBe('string');
    await eventually(async () => ((await storage.queue(queueName).getProperties()).approximateMessagesCount === 0 ? true : undefined));
    expect(log.lines.some((l) => l.entry.functionName === 'intake' && l.entry.outcome === 'succeeded')).toBe(true);
  });

  it('retries a failing message with a rising dequeueCount and moves the original text to <queue>-poison', async () => {
    // Prepare
    const queueName = uniqueNames().scaleQueue;
    const counts: number[] = [];
    await start({
      env: { AzureWebJobsStorage: connectionString },
      hostJson: queuesJson(),
      logSink: captureLog().sink,
      registrations: [
        queueReg('failing', {
          queueName,
          connection: 'AzureWebJobsStorage',
          handler: (_item: unknown, ctx: InvocationContext) => {
            counts.push(ctx.triggerMetadata?.dequeueCount as number);
            throw new Error('transient');
          },
        }),
      ],
    });
    const original = encodeQueueMessage({ requestId: 'poisoned' });

    // Act
    await storage.queue(queueName).sendMessage(original);

    // Assess
    const poison = storage.queue(`${queueName}-poison`);
    const moved = await eventually(async () => {
      if (!(await poison.exists())) return undefined;
      const peeked = await poison.peekMessages();
      return peeked.peekedMessageItems[0];
    });
    expect(moved.messageText).toBe(original);
    expect(counts).toEqual([1, 2, 3]);
    expect((await storage.queue(queueName).peekMessages()).peekedMessageItems).toHaveLength(0);
  });

  it('treats text that is not base64 as a failed delivery: never handed to the function, poisoned at the end', async () => {
    // Prepare
    const queueName = uniqueNames().scaleQueue;
    let calls = 0;
    await start({
      env: { AzureWebJobsStorage: connectionString },
      hostJson: queuesJson({ maxDequeueCount: 2 }),
      logSink: captureLog().sink,
      registrations: [
        queueReg('strict', {
          queueName,
          connection: 'AzureWebJobsStorage',
          handler: () => {
            calls++;
          },
        }),
      ],
    });

    // Act
    await storage.queue(queueName).sendMessage('{"requestId":"raw"}');

    // Assess
    const poison = storage.queue(`${queueName}-poison`);
    const moved = await eventually(async () => ((await poison.exists()) ? (await poison.peekMessages()).peekedMessageItems[0] : undefined));
    expect(moved.messageText).toBe('{"requestId":"raw"}');
    expect(calls).toBe(0);
  });

  it('makes a failed message visible again only after visibilityTimeout', async () => {
    // Prepare
    const queueName = uniqueNames().scaleQueue;
    let attempts = 0;
    await start({
      env: { AzureWebJobsStorage: connectionString },
      hostJson: queuesJson({ visibilityTimeout: '00:01:00' }),
      logSink: captureLog().sink,
      registrations: [
        queueReg('slowRetry', {
          queueName,
          connection: 'AzureWebJobsStorage',
          handler: () => {
            attempts++;
            throw new Error('once');
          },
        }),
      ],
    });

    // Act
    await storage.queue(queueName).sendMessage(encodeQueueMessage('x'));
    await eventually(() => (attempts > 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 1000));

    // Assess: still invisible (not deleted, not retried yet)
    expect(attempts).toBe(1);
    expect((await storage.queue(queueName).getProperties()).approximateMessagesCount).toBe(1);
  });

  it('passes raw text with messageEncoding none, and strings that are not JSON as strings', async () => {
    // Prepare
    const queueName = uniqueNames().scaleQueue;
    const items: unknown[] = [];
    await start({
      env: { AzureWebJobsStorage: connectionString },
      hostJson: queuesJson({ messageEncoding: 'none' }),
      logSink: captureLog().sink,
      registrations: [
        queueReg('raw', {
          queueName,
          connection: 'AzureWebJobsStorage',
          handler: (item: unknown) => {
            items.push(item);
          },
        }),
      ],
    });

    // Act
    await storage.queue(queueName).sendMessage('{"a":1}');
    await storage.queue(queueName).sendMessage('not json');

    // Assess
    await eventually(() => (items.length === 2 ? true : undefined));
    expect(items).toEqual(expect.arrayContaining([{ a: 1 }, 'not json']));
  });

  it('writes storage-queue output bindings (extraOutputs and return) after the handler succeeds', async () => {
    // Prepare
    const names = uniqueNames();
    const inQueue = names.scaleQueue;
    const outQueue = names.trackerQueue;
    const extra = output.storageQueue({ queueName: outQueue, connection: 'AzureWebJobsStorage' });
    const ret = output.storageQueue({ queueName: outQueue, connection: 'AzureWebJobsStorage' });
    await start({
      env: { AzureWebJobsStorage: connectionString },
      hostJson: queuesJson(),
      logSink: captureLog().sink,
      registrations: [
        queueReg('fanout', {
          queueName: inQueue,
          connection: 'AzureWebJobsStorage',
          extraOutputs: [extra],
          return: ret,
          handler: (item: unknown, ctx: InvocationContext) => {
            ctx.extraOutputs.set(extra, [{ n: 1 }, { n: 2 }]);
            return { echoed: item };
          },
        }),
      ],
    });

    // Act
    await storage.queue(inQueue).sendMessage(encodeQueueMessage('hello'));

    // Assess
    const texts = await eventually(async () => {
      if (!(await storage.queue(outQueue).exists())) return undefined;
      const peeked = (await storage.queue(outQueue).peekMessages({ numberOfMessages: 32 })).peekedMessageItems;
      return peeked.length === 3 ? peeked.map((m) => JSON.parse(decodeQueueMessage(m.messageText)) as unknown) : undefined;
    });
    expect(texts).toEqual(expect.arrayContaining([{ n: 1 }, { n: 2 }, { echoed: 'hello' }]));
  });

  it('refuses to start when a queueName setting is missing, naming it', async () => {
    await expect(
      startLocalHost({
        port: 0,
        env: { AzureWebJobsStorage: connectionString },
        hostJson: queuesJson(),
        logSink: captureLog().sink,
        registrations: [queueReg('intake', { queueName: '%SCALE_REQUESTS_QUEUE%', connection: 'AzureWebJobsStorage', handler: () => {} })],
      }),
    ).rejects.toThrow(/function "intake" queueName: app setting "SCALE_REQUESTS_QUEUE"/);
  });
});
