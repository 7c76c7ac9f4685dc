/**
 * Starts one in-memory azurite for the whole test run on free ports and hands its connection
 * string to tests through `inject('storageConnectionString')`. Tests isolate themselves with a
 * unique storage prefix (see `uniqueNames`).
 */
import type { TestProject } from 'vitest/node';
import { startAzurite, type AzuriteHandle } from './azurite.ts';

let azurite: AzuriteHandle | undefined;

export async function setup(project: TestProject): Promise<void> {
  azurite = await startAzurite();
  project.provide('storageConnectionString', azurite.connectionString);
}

export async function teardown(): Promise<void> {
  await azurite?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    storageConnectionString: string;
  }
}
