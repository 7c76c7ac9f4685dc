import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { operationAction, painter, renderRecord, wrapLastColumn } from '../../src/cli/render.ts';
import type { RequestRecord } from '../../src/ledger/schemas.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('ccscale output', () => {
  it('survives a reader that closes the pipe early (ccscale --help | head -c 1)', async () => {
    // Prepare: a shell pipeline, as a user types it
    const child = spawn(
      'bash',
      ['-o', 'pipefail', '-c', `for i in 1 2 3 4 5; do node bin/ccscale.mjs --help; done | head -c 1 >/dev/null; node bin/ccscale.mjs submit --help | (exec 0<&-; true)`],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));

    // Act
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));

    // Assess
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  }, 30_000);

  it('wraps a long reason to the width instead of a 280-character row', () => {
    // Prepare
    const reason =
      'waiting for capacity: bucket Standard_HC44rs of nodearray ondemand has 0 available (quota 8800 cores, 8756 consumed), and Standard_F32s_v2 is in capacity-failure backoff until 14:05 after CycleCloud reported a shortage';
    const record = {
      requestId: 'job-4711',
      cluster: 'hpc',
      kind: 'scale',
      state: 'submitted',
      reason: null,
      createdAt: 'c',
      updatedAt: 'u',
      nodes: [],
      demands: [{ index: 0, requested: 10, created: 6, ready: 6, placementGroupId: null, machineType: 'Standard_HC44rs', reason }],
      operations: [
        { operationId: 'op-1', cycleCloudRequestId: 'job-4711-g0', state: 'done' },
        { operationId: 'op-2', cycleCloudRequestId: 'job-4711-g0-c', state: 'pending' },
      ],
    } as unknown as RequestRecord;

    // Act
    const text = renderRecord(record, painter(false), 110);

    // Assess
    expect(Math.max(...text.split('\n').map((l) => l.length))).toBeLessThanOrEqual(110);
    expect(text.replace(/[│\s]+/g, ' ')).toContain('waiting for capacity');
    expect(text).toMatch(/job-4711-g0 +│ create +│ done/);
    expect(text).toMatch(/job-4711-g0-c +│ terminate \(compensation\) +│ pending/);
  });

  it("leaves a table that fits alone, and names a terminate request's operations", () => {
    expect(wrapLastColumn(['a', 'reason'], [['1', 'short']], 80)).toBeUndefined();
    expect(wrapLastColumn(['a', 'reason'], [['1', 'x'.repeat(200)]], 80)).toEqual([undefined, 80 - 3 - 3]);
    expect(operationAction('terminate', 'drain-17')).toBe('terminate');
    expect(operationAction('scale', 'job-1-g2')).toBe('create');
  });
});
