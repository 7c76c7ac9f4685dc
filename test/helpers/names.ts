import { randomBytes } from 'node:crypto';
import { storageNames, type StorageNames } from '../../src/platform/names.ts';

/** Storage names no other test uses (tables and queues in the shared azurite). */
export function uniqueNames(): StorageNames {
  const prefix = `t${randomBytes(5).toString('hex')}`;
  return storageNames({ prefix, scaleQueue: `${prefix}-scale` });
}
