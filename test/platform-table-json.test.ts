import { describe, expect, it, inject } from 'vitest';
import { packJson, unpackJson, DocumentTooLargeError } from '../src/platform/table-json.ts';
import { Storage } from '../src/platform/storage.ts';
import { uniqueNames } from './helpers/names.ts';
import { randomBytes } from 'node:crypto';

describe('table-json', () => {
  it('round-trips a large document through a real table entity', async () => {
    // Prepare: 5,000 node-like records, well over one 64 KiB property uncompressed.
    const doc = { nodes: Array.from({ length: 5000 }, (_, i) => ({ name: `ondemand-${i}`, id: randomBytes(8).toString('hex'), status: 'Ready' })) };
    const names = uniqueNames();
    const storage = Storage.fromConnectionString(inject('storageConnectionString'));
    await storage.ensure({ tables: [names.stateTable] });
    // Act
    await storage.table(names.stateTable).createEntity({ partitionKey: 'p', rowKey: 'r', ...packJson(doc) });
    const back = unpackJson<typeof doc>(await storage.table(names.stateTable).getEntity('p', 'r'));
    // Assess
    expect(back).toEqual(doc);
  });

  it('names the limit when a document cannot fit', () => {
    const incompressible = randomBytes(1_200_000).toString('base64');
    expect(() => packJson({ incompressible })).toThrow(DocumentTooLargeError);
  });
});
