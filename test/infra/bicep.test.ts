/**
 * Offline contract of the deployment. Nothing on the build machines can compile Bicep (no `bicep`
 * binary, no network), so this reads infra/*.bicep, main.parameters.json, azure.yaml, host.json
 * and .funcignore as text and checks the invariants the README promises. Every check is also run
 * on a copy of the files broken on purpose, to prove it notices.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/platform/config.ts';
import { storageNames } from '../../src/platform/names.ts';
import {
  checkAppSettings,
  checkAzureYaml,
  checkCompiledArm,
  checkFuncignore,
  checkHostJson,
  checkKeyVault,
  checkModules,
  checkMonitoring,
  checkAlerts,
  checkNetwork,
  checkNoSharedKeys,
  checkOutputs,
  checkPlaceholders,
  checkRoles,
  checkRuntime,
  checkStorageNames,
  checkSyntax,
  checkTags,
  loadInfraFiles,
  ROLES,
  type AppSettingsCheckOptions,
  type ExpectedStorage,
  type InfraFiles,
} from './infra-checks.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FILES = loadInfraFiles(ROOT);

const names = storageNames();
const EXPECTED_STORAGE: ExpectedStorage = {
  tables: [names.requestsTable, names.snapshotsTable, names.operationsTable, names.capacityTable, names.stateTable],
  queues: [names.scaleQueue, names.scalePoisonQueue, names.trackerQueue, names.callbackQueue],
  scaleQueue: names.scaleQueue,
};

// Settings the app reads: named in the config schema or the storage adapter (identity-based
// AzureWebJobsStorage__*); the rest are read by the Functions platform and the Azure SDKs.
const APP_SOURCES = ['src/platform/config.ts', 'src/platform/storage.ts'].map((f) => readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8')).join('\n');
const PLATFORM_SETTINGS = new Set([
  'AzureWebJobsStorage__credential',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
  'AZURE_TOKEN_CREDENTIALS',
]);
const CLIENT_ID = '3f2a9c4e-1b7d-4e8a-9c65-0d2f4b8e7a11';
const SETTINGS_OPTIONS: AppSettingsCheckOptions = {
  load: (env) => loadConfig(env, { mode: 'azure' }),
  samples: {
    // main.bicep parameters azd fills from the environment
    cycleCloudUrl: 'https://cyclecloud.contoso.internal:8443',
    cycleCloudClusters: 'hpc,htc',
    // values Azure assigns at deployment
    identityClientId: CLIENT_ID,
    AzureWebJobsStorage__accountName: 'st4kq7c2mhx3zpa',
    KEY_VAULT_URL: 'https://kv-4kq7c2mhx3zpa.vault.azure.net/',
    APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=6c1e0f0a-4a4e-4b59-9d64-3f0c1a2b3c4d;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/',
  },
  known: (setting) => PLATFORM_SETTINGS.has(setting) || APP_SOURCES.includes(`'${setting}'`) || APP_SOURCES.includes(`.${setting}`),
};

const CHECKS: Record<string, (files: InfraFiles) => string[]> = {
  syntax: checkSyntax,
  placeholders: checkPlaceholders,
  runtime: checkRuntime,
  sharedKeys: checkNoSharedKeys,
  roles: checkRoles,
  keyVault: checkKeyVault,
  monitoring: checkMonitoring,
  alerts: checkAlerts,
  storageNames: (f) => checkStorageNames(f, EXPECTED_STORAGE),
  appSettings: (f) => checkAppSettings(f, SETTINGS_OPTIONS),
  tags: checkTags,
  modules: checkModules,
  outputs: checkOutputs,
  network: checkNetwork,
  hostJson: checkHostJson,
  funcignore: checkFuncignore,
  azureYaml: checkAzureYaml,
  compiledArm: checkCompiledArm,
};

/** A copy of the files with `from` replaced by `to` in `path` (the text must be there). */
function broken(path: string, from: string | RegExp, to: string): InfraFiles {
  const text = FILES.get(path);
  if (text === undefined) throw new Error(`${path} is not loaded`);
  const next = text.replace(from, to);
  if (next === text) throw new Error(`${String(from)} not found in ${path}: the mutation would prove nothing`);
  return new Map(FILES).set(path, next);
}

function withFile(path: string, text: string | undefined): InfraFiles {
  const copy = new Map(FILES);
  if (text === undefined) copy.delete(path);
  else copy.set(path, text);
  return copy;
}

const FUNC = 'infra/modules/function-app.bicep';
const STORAGE = 'infra/modules/storage.bicep';
const RBAC = 'infra/modules/rbac.bicep';
const KV = 'infra/modules/keyvault.bicep';
const MON = 'infra/modules/monitoring.bicep';
const MAIN = 'infra/main.bicep';
const ALERTS_BICEP = 'infra/modules/alerts.bicep';
const OPS = 'docs/operations.md';

describe('infra templates (offline invariants)', () => {
  it('loads the templates it is meant to check', () => {
    // Prepare / Act
    const bicep = [...FILES.keys()].filter((f) => f.endsWith('.bicep'));
    // Assess
    expect(bicep).toContain('infra/main.bicep');
    expect(bicep.length).toBeGreaterThanOrEqual(5);
    expect(FILES.has('.funcignore') && FILES.has('azure.yaml') && FILES.has('host.json')).toBe(true);
  });

  it.each(Object.keys(CHECKS))('%s: the committed files pass', (name) => {
    // Act
    const problems = CHECKS[name]!(FILES);
    // Assess
    expect(problems).toEqual([]);
  });

  // Each row breaks one invariant in a copy of the files and names the problem expected.
  const breaks: [check: string, why: string, files: () => InfraFiles, expected: RegExp][] = [
    [
      'syntax',
      'an unclosed brace',
      () => broken(STORAGE, /\n*$/, "\nresource extra 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' = {\n  name: 'default'\n"),
      /never closed/,
    ],
    ['syntax', 'a stray bracket', () => broken(KV, 'sku: {', 'sku: {]'), /unexpected/],
    ['syntax', 'broken parameters JSON', () => broken('infra/main.parameters.json', /}\s*$/, ''), /not JSON/],
    ['placeholders', 'a <placeholder>', () => broken(MAIN, "'rg-${environmentName}'", "'<your resource group>'"), /placeholder/],
    ['placeholders', 'a TODO', () => broken(KV, 'param name string', 'param name string // TODO pick a name'), /placeholder/],
    ['runtime', 'Node 20', () => broken(FUNC, "version: '22'", "version: '20'"), /runtime.version is not '22'/],
    ['runtime', 'another runtime', () => broken(FUNC, "name: 'node'", "name: 'python'"), /runtime.name is not 'node'/],
    ['runtime', 'an old API version', () => broken(FUNC, "'Microsoft.Web/sites@2024-04-01'", "'Microsoft.Web/sites@2022-09-01'"), /predates/],
    ['runtime', 'a consumption (Y1) plan', () => broken(FUNC, "name: 'FC1'", "name: 'Y1'"), /FC1/],
    [
      'runtime',
      'FUNCTIONS_WORKER_RUNTIME',
      () => broken(FUNC, 'SCALE_REQUESTS_QUEUE: scaleRequestsQueue', "SCALE_REQUESTS_QUEUE: scaleRequestsQueue\n      FUNCTIONS_WORKER_RUNTIME: 'node'"),
      /FUNCTIONS_WORKER_RUNTIME/,
    ],
    ['sharedKeys', 'shared keys allowed', () => broken(STORAGE, 'allowSharedKeyAccess: false', 'allowSharedKeyAccess: true'), /allowSharedKeyAccess/],
    [
      'sharedKeys',
      'a listKeys() connection string',
      () =>
        broken(
          FUNC,
          "AzureWebJobsStorage__credential: 'managedidentity'",
          "AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=${storage.name};AccountKey=${storage.listKeys().keys[0].value}'",
        ),
      /listKeys|AccountKey|connection string/,
    ],
    [
      'sharedKeys',
      'no managed identity credential',
      () => broken(FUNC, "AzureWebJobsStorage__credential: 'managedidentity'", "AzureWebJobsStorage__credential: 'connectionstring'"),
      /managedidentity/,
    ],
    ['roles', 'a missing role', () => broken(RBAC, /\/\/ Monitoring Metrics Publisher[\s\S]*?\n}\n/, ''), new RegExp(`${ROLES.monitoringMetricsPublisher} is not assigned`)],
    [
      'roles',
      'a role given to someone else',
      () => broken(RBAC, /(name: guid\(storage\.id, appPrincipalId, '974c5e8b[^\n]*\n[\s\S]*?principalId: )appPrincipalId/, '$1operatorPrincipalId'),
      new RegExp(`${ROLES.storageQueueDataContributor} is not assigned`),
    ],
    ['roles', 'a role on the wrong scope', () => broken(RBAC, /(guid\(vault\.id, appPrincipalId, '4633458b[^\n]*\n\s*)scope: vault/, '$1scope: storage'), /scoped to/],
    [
      'roles',
      'Contributor for the app',
      () => broken(RBAC, "roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')", "roleDefinitions', 'b24988ac-6180-42a0-ab88-20f7382dd24c')"),
      /b24988ac-6180-42a0-ab88-20f7382dd24c, beyond least privilege/,
    ],
    [
      'roles',
      'the principal not being the identity',
      () => broken('infra/modules/identity.bicep', 'output principalId string = uami.properties.principalId', "output principalId string = 'x'"),
      /not assigned/,
    ],
    ['roles', 'no Secrets Officer for the deployer', () => broken(MAIN, 'operatorPrincipalId: principalId', "operatorPrincipalId: ''"), /Secrets Officer/],
    ['keyVault', 'access policies instead of RBAC', () => broken(KV, 'enableRbacAuthorization: true', 'enableRbacAuthorization: false'), /enableRbacAuthorization/],
    ['keyVault', 'no purge protection', () => broken(KV, 'enablePurgeProtection: true\n', ''), /enablePurgeProtection/],
    ['keyVault', 'soft delete off', () => broken(KV, 'enableSoftDelete: true', 'enableSoftDelete: false'), /enableSoftDelete/],
    ['monitoring', 'local auth enabled', () => broken(MON, 'DisableLocalAuth: true', 'DisableLocalAuth: false'), /DisableLocalAuth/],
    ['monitoring', 'a classic (workspace-less) component', () => broken(MON, 'WorkspaceResourceId: workspace.id\n', ''), /WorkspaceResourceId/],
    ['alerts', 'an alert dropped', () => broken(ALERTS_BICEP, "key: 'callbacks-failing'", "key: 'callbacks-slow'"), /alert callbacks-failing is not defined/],
    ['alerts', 'a runbook section missing', () => broken(OPS, '### Snapshot stale', '### Snapshots'), /no section #snapshot-stale/],
    ['alerts', 'a query on a metric that does not exist', () => broken(ALERTS_BICEP, 'name == "scaler.over_ask"', 'name == "scaler.overask"'), /reads scaler\.overask/],
    ['alerts', 'no webhook receiver', () => broken(ALERTS_BICEP, /webhookReceivers: [\s\S]*?\n {4}\]\n/, 'webhookReceivers: []\n'), /webhook receiver/],
    ['alerts', 'rules that notify nobody', () => broken(ALERTS_BICEP, 'actionGroups: [actionGroup.id]', 'actionGroups: []'), /do not notify the action group/],
    [
      'alerts',
      'no workbook',
      () => broken(ALERTS_BICEP, "'Microsoft.Insights/workbooks@2023-06-01'", "'Microsoft.Insights/workbookTemplates@2020-11-20'"),
      /one workbook, found 0/,
    ],
    ['alerts', 'alerts not deployed', () => broken(MAIN, "module alerts 'modules/alerts.bicep'", "module alerts 'modules/alarms.bicep'"), /does not deploy modules\/alerts\.bicep/],
    ['monitoring', 'key-based ingestion', () => broken(FUNC, ';Authorization=AAD', ''), /Authorization=AAD/],
    ['storageNames', 'a missing table', () => broken(MAIN, "  'scalercapacity'\n", ''), /table scalercapacity is not created/],
    ['storageNames', 'a missing queue', () => broken(MAIN, "  'scaler-callbacks'\n", ''), /queue scaler-callbacks is not created/],
    ['storageNames', 'a renamed scale queue', () => broken(MAIN, "var scaleRequestsQueue = 'scale-requests'", "var scaleRequestsQueue = 'scale'"), /scale-requests/],
    ['appSettings', 'a missing required setting', () => broken(FUNC, /\n\s*CYCLECLOUD_CLUSTERS: cycleCloudClusters/, ''), /Setting CYCLECLOUD_CLUSTERS is required/],
    ['appSettings', 'no Key Vault URL', () => broken(FUNC, /\n\s*KEY_VAULT_URL: [^\n]*/, ''), /Setting KEY_VAULT_URL/],
    ['appSettings', 'no host storage', () => broken(FUNC, /\n\s*AzureWebJobsStorage__accountName: [^\n]*/, ''), /Setting AzureWebJobsStorage/],
    ['appSettings', 'an empty setting', () => broken(FUNC, 'SNAPSHOT_SCHEDULE: snapshotSchedule', "SNAPSHOT_SCHEDULE: ''"), /empty string/],
    [
      'appSettings',
      'a default the app rejects',
      () => broken(MAIN, "param snapshotSchedule string = '0 */1 * * * *'", "param snapshotSchedule string = '*/5 * * * *'"),
      /Setting SNAPSHOT_SCHEDULE/,
    ],
    ['appSettings', 'a misspelt setting', () => broken(FUNC, 'SIGNING_SECRET_NAME:', 'SIGNING_SECRET:'), /SIGNING_SECRET is read by nothing/],
    ['tags', 'no azd-service-name', () => broken(FUNC, "'azd-service-name': 'api'", "'azd-service-name': 'web'"), /azd-service-name/],
    ['tags', 'no azd-env-name', () => broken(MAIN, "var tags = { 'azd-env-name': environmentName }", 'var tags = { env: environmentName }'), /azd-env-name/],
    ['modules', 'a missing module file', () => broken(MAIN, "'modules/keyvault.bicep'", "'modules/vault.bicep'"), /does not exist/],
    ['modules', 'a required param not passed', () => broken(MAIN, /\n\s*cycleCloudUrl: cycleCloudUrl/, ''), /does not pass required param cycleCloudUrl/],
    ['modules', 'a misspelt param', () => broken(MAIN, 'keyVaultName: keyVault.outputs.name\n    subnetId', 'keyVaultNmae: keyVault.outputs.name\n    subnetId'), /keyVaultNmae/],
    [
      'modules',
      'a parameter azd does not supply',
      () => broken(MAIN, 'param cycleCloudClusters string', 'param cycleCloudClusters string\n\nparam adminPassword string'),
      /does not supply required param adminPassword/,
    ],
    ['modules', 'an unmapped azd variable', () => broken('infra/main.parameters.json', '${CYCLECLOUD_URL}', 'https://example'), /CYCLECLOUD_URL/],
    ['outputs', 'no function name output', () => broken(MAIN, 'output AZURE_FUNCTION_NAME', 'output FUNCTION_NAME'), /AZURE_FUNCTION_NAME/],
    ['network', 'a subnet not delegated', () => broken('infra/modules/network.bicep', "'Microsoft.App/environments'", "'Microsoft.Web/serverFarms'"), /delegated/],
    ['network', 'no VNet integration on the site', () => broken(FUNC, /\n\s*virtualNetworkSubnetId: [^\n]*/, ''), /virtualNetworkSubnetId/],
    ['hostJson', 'messageEncoding none', () => broken('host.json', '"base64"', '"none"'), /messageEncoding/],
    ['hostJson', 'an unbounded timeout', () => broken('host.json', /"functionTimeout": "[^"]*"/, '"functionTimeout": "-1"'), /functionTimeout/],
    ['hostJson', 'another route prefix', () => broken('host.json', '"routePrefix": "api"', '"routePrefix": ""'), /routePrefix/],
    ['hostJson', 'sampled traces', () => broken('host.json', /"excludedTypes": "[^"]*"/, '"excludedTypes": "Request"'), /samples traces/],
    ['funcignore', 'dist not re-included', () => broken('.funcignore', /!\/dist\/\*\*\n/, ''), /\(azd\) drops dist\/main\.js/],
    ['funcignore', 'sources shipped', () => withFile('.funcignore', 'node_modules/*\ntest/\n'), /ships src\//],
    ['funcignore', 'node_modules excluded outright', () => broken('.funcignore', '!/node_modules/\n', ''), /excludes node_modules itself/],
    ['azureYaml', 'remote build', () => broken('azure.yaml', 'remoteBuild: false', 'remoteBuild: true'), /remoteBuild/],
    ['azureYaml', 'no build in the hook', () => broken('azure.yaml', 'run: npm ci && npm run build', 'run: npm ci'), /posix/],
    ['azureYaml', 'another language', () => broken('azure.yaml', 'language: ts', 'language: python'), /language/],
    ['compiledArm', 'a hand-written ARM template', () => withFile('infra/main.json', '{"$schema":"x","resources":[]}'), /not a template compiled by Bicep/],
  ];

  it.each(breaks)('%s notices %s', (check, _why, make, expected) => {
    // Prepare
    const files = make();
    // Act
    const problems = CHECKS[check]!(files);
    // Assess
    expect(problems.join('\n')).toMatch(expected);
  });

  it('accepts an ARM template that the Bicep compiler generated', () => {
    // Prepare
    const files = withFile('infra/main.json', JSON.stringify({ metadata: { _generator: { name: 'bicep', version: '0.30.23' } }, resources: [] }));
    // Act / Assess
    expect(checkCompiledArm(files)).toEqual([]);
  });
});
