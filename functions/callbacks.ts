import { app } from '@azure/functions';
import { storageNames } from '../src/platform/names.ts';
import { services } from '../src/app/services.ts';
import { invocationLogger, queueInvocation } from '../src/app/triggers.ts';

// Signed callbacks to the caller's callbackUrl, retried apart from the tracker.
app.storageQueue('callbacks', {
  queueName: storageNames({ prefix: process.env.STORAGE_PREFIX || undefined }).callbackQueue,
  connection: 'AzureWebJobsStorage',
  handler: async (message, ctx) => {
    const s = await services();
    await s.callbacks.handleCallbackMessage(message, queueInvocation(ctx, s.names.callbackQueue), invocationLogger(ctx));
  },
});
