import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ClusterStatus, NodeCreationRequest, NodeCreationResult, NodeManagementRequest, NodeManagementResult } from '../../src/cyclecloud/schemas.ts';

const dir = new URL('../fixtures/', import.meta.url);
const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));

describe('seed fixtures (the CycleCloud REST examples, repaired where the seed was broken)', () => {
  it('the status example parses, with the seed numbers', () => {
    // Act
    const status = ClusterStatus.parse(fixture('seed-status.json'));
    // Assess
    const [fs32, hc44] = status.nodearrays[0]?.buckets ?? [];
    expect(status.nodearrays.map((n) => n.name)).toEqual(['ondemand']);
    expect([fs32?.maxCount, fs32?.availableCount, fs32?.maxPlacementGroupSize]).toEqual([3, 3, 40]);
    expect([hc44?.maxCount, hc44?.quotaCoreCount, hc44?.consumedCoreCount, hc44?.virtualMachine.infiniband]).toEqual([11, 8800, 44, true]);
    expect(hc44?.virtualMachine.gpuCount).toBe(0);
  });

  it.each([
    ['seed-create-request.json', NodeCreationRequest],
    ['seed-create-colocated-request.json', NodeCreationRequest],
    ['seed-create-result.json', NodeCreationResult],
    ['seed-terminate-request.json', NodeManagementRequest],
    ['seed-terminate-result.json', NodeManagementResult],
  ] as const)('%s parses with its schema', (name, schema) => {
    // Act
    const result = schema.safeParse(fixture(name));
    // Assess
    expect(result.success).toBe(true);
  });

  it('every seed fixture is covered above', () => {
    const names = readdirSync(dir)
      .filter((n) => n.startsWith('seed-'))
      .sort();
    expect(names).toEqual([
      'seed-create-colocated-request.json',
      'seed-create-request.json',
      'seed-create-result.json',
      'seed-status.json',
      'seed-terminate-request.json',
      'seed-terminate-result.json',
    ]);
  });
});
