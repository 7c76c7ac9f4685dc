import { app } from '@azure/functions';
import { services } from '../src/app/services.ts';
import { runSnapshotJob } from '../src/app/jobs.ts';
import { invocationLogger } from '../src/app/triggers.ts';

// Snapshots every cluster, reconciles the ledger with what CycleCloud has, and sweeps lost wake-ups.
app.timer('snapshot', {
  schedule: '%SNAPSHOT_SCHEDULE%',
  handler: async (timer, ctx) => {
    await runSnapshotJob(await services(), { isPastDue: timer.isPastDue }, invocationLogger(ctx));
  },
});
