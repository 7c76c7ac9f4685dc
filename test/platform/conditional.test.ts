import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { TableClient } from '@azure/data-tables';
import { Storage } from '../../src/platform/storage.ts';
import { conditionalUpdate, readRow } from '../../src/platform/conditional.ts';
import { uniqueNames } from '../helpers/names.ts';

let table: TableClient;

beforeAll(async () => {
  const names = uniqueNames();
  const storage = Storage.fromConnectionString(inject('storageConnectionString'));
  await storage.ensure({ tables: [names.stateTable] });
  table = storage.table(names.stateTable);
});

const add = (rowKey: string, by: number, extra: { maxAttempts?: number } = {}) =>
  conditionalUpdate<{ value?: number }, number>({
    table,
    partitionKey: 'p',
    rowKey,
    ...extra,
    decide: (row) => {
      const value = Number(row?.value ?? 0) + by;
      return { write: { value }, result: value };
    },
    contention: (attempts, cause) => Object.assign(new Error(`gave up after ${attempts}`, { cause }), { code: 'TEST_CONTENTION' }),
  });

describe('conditionalUpdate on azurite', () => {
  it('creates an absent row, and loses no update among concurrent writers (creates racing included)', async () => {
    // Act: 20 writers start on an absent row at once.
    const results = await Promise.all(Array.from({ length: 20 }, () => add('race', 1, { maxAttempts: 100 })));
    // Assess: each saw a distinct value, and the row holds all of them.
    expect(new Set(results.map((r) => r.result)).size).toBe(20);
    expect((await readRow<{ value: number }>(table, 'p', 'race'))?.value).toBe(20);
  });

  it('writes nothing when the decision says so, and reports the row as read', async () => {
    await add('quiet', 5);
    const before = await readRow(table, 'p', 'quiet');
    const r = await conditionalUpdate<{ value?: number }, string>({
      table,
      partitionKey: 'p',
      rowKey: 'quiet',
      decide: () => ({ result: 'same' }),
      contention: () => new Error('no'),
    });
    expect(r).toEqual({ result: 'same', written: false, etag: before?.etag });
  });

  it("gives up with the caller's error, the lost write as its cause, when every attempt loses", async () => {
    await add('contended', 1);
    let calls = 0;
    // Another writer changes the row between every read and write of ours.
    const spoiled = new Proxy(table, {
      get(target, prop, receiver) {
        if (prop === 'updateEntity') {
          return async (...args: Parameters<TableClient['updateEntity']>) => {
            await target.upsertEntity({ partitionKey: 'p', rowKey: 'contended', value: -1 }, 'Replace');
            return target.updateEntity(...args);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const error = await conditionalUpdate<{ value?: number }, number>({
      table: spoiled,
      partitionKey: 'p',
      rowKey: 'contended',
      maxAttempts: 3,
      decide: (row) => {
        calls += 1;
        return { write: { value: Number(row?.value ?? 0) + 1 }, result: 0 };
      },
      contention: (attempts, cause) => Object.assign(new Error(`gave up after ${attempts}`, { cause }), { code: 'TEST_CONTENTION' }),
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'TEST_CONTENTION', message: 'gave up after 3', cause: { statusCode: 412 } });
    expect(calls).toBe(3);
  });

  it('passes other storage errors through at once', async () => {
    let writes = 0;
    const failing = {
      getEntity: async () => Promise.reject(Object.assign(new Error('not found'), { statusCode: 404 })),
      createEntity: async () => {
        writes += 1;
        throw Object.assign(new Error('server busy'), { statusCode: 503 });
      },
    } as unknown as TableClient;
    const r = conditionalUpdate({ table: failing, partitionKey: 'p', rowKey: 'x', decide: () => ({ write: { v: 1 }, result: 1 }), contention: () => new Error('no') });
    await expect(r).rejects.toMatchObject({ statusCode: 503 });
    expect(writes).toBe(1);
  });
});
