import { app } from '@azure/functions';
import { storageNames } from '../src/platform/names.ts';
import { services } from '../src/app/services.ts';
import { invocationLogger, queueInvocation } from '../src/app/triggers.ts';

// Operation tracker wake-ups (delayed messages): one poll of one CycleCloud operation each.
app.storageQueue('tracker', {
  queueName: storageNames({ prefix: process.env.STORAGE_PREFIX || undefined }).trackerQueue,
  connection: 'AzureWebJobsStorage',
  handler: async (message, ctx) => {
    const s = await services();
    const meta = queueInvocation(ctx, s.names.trackerQueue);
    await s.tracker.handleTrackerMessage(message, meta, invocationLogger(ctx));
  },
});
