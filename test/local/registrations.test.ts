import { describe, expect, it } from 'vitest';
import { app } from '@azure/functions';
import { captureRegistrations, LocalHostError } from '../../src/local/registrations.ts';

describe('captureRegistrations', () => {
  it('records the registrations of a functions module with the library defaults applied', async () => {
    // Prepare
    const originalHttp = app.http;
    const originalTimer = app.timer;

    // Act
    const regs = await captureRegistrations(() => import('./fixtures/functions.ts'));

    // Assess
    expect(regs.map((r) => `${r.kind}:${r.name}`)).toEqual([
      'http:echo',
      'http:defaults',
      'http:shortcut',
      'http:shortcutHandler',
      'timer:tick',
      'storageQueue:work',
      'storageQueue:viaGeneric',
    ]);
    const byName = new Map(regs.map((r) => [r.name, r]));
    const echo = byName.get('echo');
    expect(echo?.kind === 'http' && echo.options).toMatchObject({ route: 'echo/{id}', authLevel: 'function', methods: ['PUT'] });
    const defaults = byName.get('defaults');
    expect(defaults?.kind === 'http' && defaults.options).toMatchObject({ route: 'defaults', authLevel: 'anonymous', methods: ['GET', 'POST'] });
    const shortcut = byName.get('shortcut');
    expect(shortcut?.kind === 'http' && shortcut.options).toMatchObject({ route: 'things', methods: ['GET'] });
    const handlerOnly = byName.get('shortcutHandler');
    expect(handlerOnly?.kind === 'http' && handlerOnly.options.methods).toEqual(['DELETE']);
    expect(typeof handlerOnly?.options.handler).toBe('function');
    const tick = byName.get('tick');
    expect(tick?.kind === 'timer' && tick.options).toMatchObject({ schedule: '%TICK_SCHEDULE%', runOnStartup: true });
    const work = byName.get('work');
    expect(work?.kind === 'storageQueue' && work.options).toMatchObject({ queueName: 'fixture-in', connection: 'AzureWebJobsStorage' });
    expect(work?.options.extraOutputs?.[0]).toMatchObject({ type: 'queue', queueName: 'fixture-out' });
    const generic = byName.get('viaGeneric');
    expect(generic?.kind === 'storageQueue' && generic.options).toMatchObject({ queueName: 'fixture-generic', connection: 'AzureWebJobsStorage' });
    expect(typeof generic?.options.handler).toBe('function');
    // The library's own functions are back in place for everyone else.
    expect(app.http).toBe(originalHttp);
    expect(app.timer).toBe(originalTimer);
  });

  it('refuses a trigger the local host cannot run, naming the function', async () => {
    // Prepare
    const originalBlob = app.storageBlob;

    // Act
    const attempt = captureRegistrations(() => import('./fixtures/unsupported-functions.ts'));

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(LocalHostError);
    await expect(attempt).rejects.toThrow(/"blobby".*app\.storageBlob/);
    expect(app.storageBlob).toBe(originalBlob);
  });
});
