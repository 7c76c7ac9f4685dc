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
import { ConfigError, loadConfig } from '../../src/platform/config.ts';
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

describe('security settings', () => {
  it('reads CALLBACK_ALLOWED_HOSTS as lower-case hosts and IP literals', () => {
    const config = loadConfig({ CALLBACK_ALLOWED_HOSTS: ' Slurm.HPC.internal, 10.0.0.7 ,[fd00::1],' }, { mode: 'local' });
    expect(config.callbackAllowedHosts).toEqual(['slurm.hpc.internal', '10.0.0.7', 'fd00::1']);
    expect(loadConfig({}, { mode: 'local' }).callbackAllowedHosts).toEqual([]);
  });

  it.each(['https://slurm.example.com', 'slurm.example.com/hook', 'slurm.example.com:8443', 'a b'])('refuses CALLBACK_ALLOWED_HOSTS=%j by name', (value) => {
    expect(() => loadConfig({ CALLBACK_ALLOWED_HOSTS: value }, { mode: 'local' })).toThrow(ConfigError);
    expect(() => loadConfig({ CALLBACK_ALLOWED_HOSTS: value }, { mode: 'local' })).toThrow(/CALLBACK_ALLOWED_HOSTS/);
  });

  it('takes a secondary signing key for rotation, with the same rules as the primary', () => {
    const config = loadConfig({ SCALER_SIGNING_SECRET: 'primary-key-0123456789', SCALER_SIGNING_SECRET_SECONDARY: 'secondary-key-0123456789' }, { mode: 'local' });
    expect(config.signingSecretSecondary).toBe('secondary-key-0123456789');
    expect(() => loadConfig({ SCALER_SIGNING_SECRET_SECONDARY: 'short' }, { mode: 'local' })).toThrow(/SCALER_SIGNING_SECRET_SECONDARY/);
    expect(() => loadConfig({ SIGNING_SECRET_SECONDARY_NAME: 'next-key' }, { mode: 'local' })).toThrow(/SIGNING_SECRET_SECONDARY_NAME.*KEY_VAULT_URL/);
  });
});
