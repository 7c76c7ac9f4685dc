import { app } from '@azure/functions';
import { services } from '../src/app/services.ts';
import { internalQueueName, invocationLogger, queueInvocation } from '../src/app/triggers.ts';

// Operation tracker wake-ups (delayed messages): one poll of one CycleCloud operation each.
app.storageQueue('tracker', {
  queueName: internalQueueName('trackerQueue'),
  connection: 'AzureWebJobsStorage',
  handler: async (message, ctx) => {
    const s = await services();
    const meta = queueInvocation(ctx, s.names.trackerQueue);
    await s.tracker.handleTrackerMessage(message, meta, invocationLogger(ctx));
  },
});
