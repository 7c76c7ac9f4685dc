import { app } from '@azure/functions';
import { services } from '../src/app/services.ts';
import { internalQueueName, invocationLogger, queueInvocation } from '../src/app/triggers.ts';

// Signed callbacks to the caller's callbackUrl, retried apart from the tracker.
app.storageQueue('callbacks', {
  queueName: internalQueueName('callbackQueue'),
  connection: 'AzureWebJobsStorage',
  handler: async (message, ctx) => {
    const s = await services();
    await s.callbacks.handleCallbackMessage(message, queueInvocation(ctx, s.names.callbackQueue), invocationLogger(ctx));
  },
});
