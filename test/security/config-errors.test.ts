/**
 * Issue 14 #7: `STORAGE_PREFIX` was read when `functions/*.ts` was imported, so a bad value stopped
 * every function, health included, from loading. Now a bad setting surfaces in `/api/health` as 503
 * problem+json naming it, and in the log.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import functions from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { createServices } from '../../src/app/services.ts';
import { httpTrigger, internalQueueName } from '../../src/app/triggers.ts';
import { getHealth } from '../../src/http/routes.ts';
import { httpRequest } from '../http/fakes.ts';

const run = promisify(execFile);

describe('#7 a bad setting never stops the functions from loading', () => {
  it('imports every registration with STORAGE_PREFIX invalid', async () => {
    const script = "await import('./functions/index.ts'); console.log('loaded');";
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: process.cwd(),
      env: { ...process.env, STORAGE_PREFIX: 'Not/A-Prefix!' },
      timeout: 60_000,
    });
    expect(stdout).toContain('loaded');
  });

  it('names internal queues with the default prefix meanwhile', () => {
    expect(internalQueueName('trackerQueue', { STORAGE_PREFIX: 'Not/A-Prefix!' })).toBe('scaler-tracker');
    expect(internalQueueName('callbackQueue', { STORAGE_PREFIX: 'team1' })).toBe('team1-callbacks');
  });

  it('answers /api/health with 503 problem+json naming the setting, never its value', async () => {
    const lines: string[] = [];
    const context = new functions.InvocationContext({
      functionName: 'health',
      invocationId: 'inv-1',
      logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')),
    });
    const handler = httpTrigger(getHealth, () => createServices({ STORAGE_PREFIX: 'Not/A-Prefix!' }, { mode: 'local' }));
    const res = await handler(httpRequest('GET', '/api/health'), context);
    expect(res.status).toBe(503);
    expect((res.headers as Record<string, string>)['content-type']).toBe('application/problem+json');
    expect(res.jsonBody).toMatchObject({ status: 503, code: 'HTTP_CONFIG', setting: 'STORAGE_PREFIX' });
    expect(JSON.stringify(res.jsonBody)).not.toContain('Not/A-Prefix!');
    expect(lines.join('\n')).toMatch(/STORAGE_PREFIX/);
    expect(lines.join('\n')).not.toContain('Not/A-Prefix!');
  });
});
