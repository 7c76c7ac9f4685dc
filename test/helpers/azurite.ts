// azurite start-up is shared with `npm start` and lives in src/local/azurite.ts.
export { startAzurite, azuriteConnectionString, type AzuriteHandle } from '../../src/local/azurite.ts';
