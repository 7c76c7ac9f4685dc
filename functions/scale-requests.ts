import { app } from '@azure/functions';
import { services } from '../src/app/services.ts';
import { invocationLogger, queueInvocation } from '../src/app/triggers.ts';

// Scale and terminate requests (docs/api.md §3): intake, planning and exactly-once submission.
app.storageQueue('scaleRequests', {
  queueName: '%SCALE_REQUESTS_QUEUE%',
  connection: 'AzureWebJobsStorage',
  handler: async (message, ctx) => {
    const s = await services();
    const meta = queueInvocation(ctx, s.names.scaleQueue);
    await s.pipeline.handle(message, meta, invocationLogger(ctx, { messageId: meta.messageId }));
  },
});
