import { describe, expect, it, inject } from 'vitest';
import { Storage } from '../src/platform/storage.ts';
import { uniqueNames } from './helpers/names.ts';

describe('azurite test harness', () => {
  it('gives each test file its own tables and queues on a shared azurite', async () => {
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    const names = uniqueNames();
    await storage.ensure({ tables: [names.requestsTable], queues: [names.scaleQueue] });
    await storage.table(names.requestsTable).createEntity({ partitionKey: 'p', rowKey: 'r', v: 1 });
    const e = await storage.table(names.requestsTable).getEntity<{ v: number }>('p', 'r');
    expect(e.v).toBe(1);
    await storage.queue(names.scaleQueue).sendMessage('aGk=');
    const props = await storage.queue(names.scaleQueue).getProperties();
    expect(props.approximateMessagesCount).toBe(1);
  });
});
