// PLACEHOLDER written by the local-host engineer so `npm start` and the build have an entry:
// the lead replaces this file with the real registrations (functions/*.ts).
import { app } from '@azure/functions';

app.http('health', {
  route: 'health',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: () => ({ status: 200, jsonBody: { status: 'ok' } }),
});
