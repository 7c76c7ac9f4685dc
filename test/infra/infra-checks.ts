/**
 * The invariants of the deployment (infra/*.bicep, main.parameters.json, azure.yaml, host.json,
 * .funcignore) as functions over an in-memory copy of those files. Each check returns the problems
 * it finds, in words; the test runs them on the real files (expecting none) and on deliberately
 * broken copies (expecting the break to be named), so no check can pass vacuously.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { arrayItems, entries, evalString, get, mask, objectBody, parseBicep, unbalanced, type BicepFile, type BicepResource } from './bicep-text.ts';
import { excludesNodeModules, packaged } from './funcignore.ts';
import { METRICS } from '../../src/platform/metrics.ts';

/** Repository-relative path → text. */
export type InfraFiles = Map<string, string>;

export const MAIN = 'infra/main.bicep';
export const PARAMETERS = 'infra/main.parameters.json';
export const ALERTS = 'infra/modules/alerts.bicep';
/** The runbook the alerts link to. */
export const OPERATIONS_DOC = 'docs/operations.md';

/** Reads every file the checks look at from the repository at `root`. */
export function loadInfraFiles(root: string): InfraFiles {
  const files: InfraFiles = new Map();
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else files.set(rel, readFileSync(join(root, rel), 'utf8'));
    }
  };
  walk('infra');
  for (const f of ['azure.yaml', 'host.json', '.funcignore', 'package.json', OPERATIONS_DOC]) {
    if (existsSync(join(root, f))) files.set(f, readFileSync(join(root, f), 'utf8'));
  }
  return files;
}

export function bicepPaths(files: InfraFiles): string[] {
  return [...files.keys()].filter((f) => f.endsWith('.bicep')).sort();
}

function parsed(files: InfraFiles, path: string): BicepFile | undefined {
  const text = files.get(path);
  if (text === undefined) return undefined;
  try {
    return parseBicep(text);
  } catch {
    return undefined;
  }
}

function allResources(files: InfraFiles): { path: string; file: BicepFile; resource: BicepResource }[] {
  const out: { path: string; file: BicepFile; resource: BicepResource }[] = [];
  for (const path of bicepPaths(files)) {
    const file = parsed(files, path);
    if (file) for (const resource of file.resources) out.push({ path, file, resource });
  }
  return out;
}

const unquote = (v: string | undefined): string | undefined => (v === undefined ? undefined : /^'(.*)'$/s.exec(v.trim())?.[1]);

/** The app settings resource (`Microsoft.Web/sites/config` named `appsettings`) and its file. */
export function appSettings(files: InfraFiles): { path: string; file: BicepFile; always: Map<string, string>; optional: Map<string, string> } | undefined {
  const found = allResources(files).find(({ resource }) => resource.type === 'Microsoft.Web/sites/config' && unquote(get(resource.body, 'name')) === 'appsettings');
  if (!found) return undefined;
  const props = get(found.resource.body, 'properties') ?? '';
  const always = new Map<string, string>();
  const optional = new Map<string, string>();
  // properties: { … } or union({ … }, someVar, …): the literal objects are always set; objects
  // reached through a variable (typically a ternary) only sometimes.
  const masked = mask(props);
  let depth = 0;
  for (let i = 0; i < masked.length; i++) {
    const c = masked[i];
    if (c === '{' && depth <= 1) {
      const body = objectBody(props.slice(i));
      if (body !== undefined) for (const [k, v] of entries(body)) always.set(k, v);
      i += (body?.length ?? 0) + 1;
      continue;
    }
    if (c === '(' || c === '[') depth++;
    if (c === ')' || c === ']') depth--;
  }
  for (const [name, value] of found.file.vars) {
    if (!new RegExp(`\\b${name}\\b`).test(masked)) continue;
    const vm = mask(value);
    for (let i = vm.indexOf('{'); i !== -1; i = vm.indexOf('{', i + 1)) {
      const body = objectBody(value.slice(i));
      if (body) for (const [k, v] of entries(body)) optional.set(k, v);
    }
  }
  return { path: found.path, file: found.file, always, optional };
}

// ---------------------------------------------------------------------------------------------

/** Every .bicep file scans (strings and comments closed) and its brackets balance; JSON parses. */
export function checkSyntax(files: InfraFiles): string[] {
  const problems: string[] = [];
  if (!files.has(MAIN)) problems.push(`${MAIN} is missing`);
  for (const path of bicepPaths(files)) {
    const bad = unbalanced(files.get(path)!);
    if (bad) problems.push(`${path}: ${bad}`);
  }
  for (const path of [PARAMETERS, 'host.json', 'package.json']) {
    const text = files.get(path);
    if (text === undefined) problems.push(`${path} is missing`);
    else {
      try {
        JSON.parse(text);
      } catch (e) {
        problems.push(`${path} is not JSON: ${(e as Error).message}`);
      }
    }
  }
  return problems;
}

/** No template text left for a human to fill in. */
export function checkPlaceholders(files: InfraFiles): string[] {
  const problems: string[] = [];
  const patterns = [/<[A-Za-z][^<>\n]{0,60}>/, /\b(TODO|FIXME|TBD|XXX)\b/, /change-?me|replace-?me|your-[a-z]+-here/i];
  for (const [path, text] of files) {
    if (!(path.startsWith('infra/') || path === 'azure.yaml')) continue;
    text.split('\n').forEach((line, i) => {
      for (const p of patterns) if (p.test(line)) problems.push(`${path}:${i + 1} has a placeholder: ${line.trim()}`);
    });
  }
  return problems;
}

/** Flex Consumption plan, a site on Microsoft.Web ≥ 2024-04-01 whose functionAppConfig runs Node 22. */
export function checkRuntime(files: InfraFiles): string[] {
  const problems: string[] = [];
  const res = allResources(files);
  const sites = res.filter(({ resource }) => resource.type === 'Microsoft.Web/sites' && !resource.existing);
  if (sites.length !== 1) problems.push(`expected one Microsoft.Web/sites resource, found ${sites.length}`);
  for (const { path, resource } of sites) {
    if (resource.apiVersion < '2024-04-01') problems.push(`${path}: Microsoft.Web/sites@${resource.apiVersion} predates 2024-04-01`);
    if (unquote(get(resource.body, 'kind')) !== 'functionapp,linux') problems.push(`${path}: site kind is not 'functionapp,linux'`);
    const runtime = get(resource.body, 'properties', 'functionAppConfig', 'runtime');
    if (runtime === undefined) problems.push(`${path}: site has no properties.functionAppConfig.runtime`);
    else {
      const body = objectBody(runtime) ?? '';
      if (unquote(get(body, 'name')) !== 'node') problems.push(`${path}: functionAppConfig.runtime.name is not 'node'`);
      if (unquote(get(body, 'version')) !== '22') problems.push(`${path}: functionAppConfig.runtime.version is not '22'`);
    }
    const auth = get(resource.body, 'properties', 'functionAppConfig', 'deployment', 'storage', 'authentication');
    if (unquote(get(objectBody(auth) ?? '', 'type')) !== 'UserAssignedIdentity') problems.push(`${path}: the deployment container is not read with the user-assigned identity`);
    if (get(resource.body, 'properties', 'functionAppConfig', 'scaleAndConcurrency') === undefined) problems.push(`${path}: functionAppConfig has no scaleAndConcurrency`);
  }
  const plans = res.filter(({ resource }) => resource.type === 'Microsoft.Web/serverfarms' && !resource.existing);
  if (plans.length !== 1) problems.push(`expected one Microsoft.Web/serverfarms resource, found ${plans.length}`);
  for (const { path, resource } of plans) {
    const sku = objectBody(get(resource.body, 'sku')) ?? '';
    if (unquote(get(sku, 'name')) !== 'FC1' || unquote(get(sku, 'tier')) !== 'FlexConsumption') problems.push(`${path}: the plan is not FC1 / FlexConsumption`);
  }
  // Flex Consumption rejects or ignores the classic ways of choosing a runtime.
  for (const path of bicepPaths(files)) {
    const code = mask(files.get(path)!, { keepStrings: true });
    for (const legacy of ['FUNCTIONS_WORKER_RUNTIME', 'WEBSITE_NODE_DEFAULT_VERSION', 'linuxFxVersion', 'WEBSITE_RUN_FROM_PACKAGE', 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'])
      if (code.includes(legacy)) problems.push(`${path}: sets ${legacy}, which Flex Consumption does not use`);
  }
  return problems;
}

/** Shared keys are off and nothing reads or embeds an account key. */
export function checkNoSharedKeys(files: InfraFiles): string[] {
  const problems: string[] = [];
  const accounts = allResources(files).filter(({ resource }) => resource.type === 'Microsoft.Storage/storageAccounts' && !resource.existing);
  if (accounts.length === 0) problems.push('no storage account is created');
  for (const { path, resource } of accounts) {
    if (get(resource.body, 'properties', 'allowSharedKeyAccess') !== 'false') problems.push(`${path}: storage account ${resource.symbol} does not set allowSharedKeyAccess: false`);
  }
  for (const path of bicepPaths(files)) {
    const code = mask(files.get(path)!, { keepStrings: true });
    const forbidden: [RegExp, string][] = [
      [/listKeys\s*\(/i, 'calls listKeys('],
      [/listAccountSas\s*\(|listServiceSas\s*\(/i, 'lists a SAS'],
      [/AccountKey\s*=/i, 'embeds AccountKey='],
      [/DefaultEndpointsProtocol\s*=/i, 'builds a storage connection string'],
      [/SharedAccessSignature\s*=/i, 'embeds a SAS'],
      [/\bprimaryKey\b|\bkeys\s*\[\s*0\s*\]/, 'reads an access key'],
    ];
    for (const [re, what] of forbidden) if (re.test(code)) problems.push(`${path}: ${what}`);
  }
  const settings = appSettings(files);
  if (!settings) problems.push('no appsettings resource');
  else {
    const all = new Map([...settings.always, ...settings.optional]);
    if (all.has('AzureWebJobsStorage')) problems.push('AzureWebJobsStorage is set as a connection string');
    if (unquote(settings.always.get('AzureWebJobsStorage__credential')) !== 'managedidentity') problems.push("AzureWebJobsStorage__credential is not 'managedidentity'");
    for (const k of ['AzureWebJobsStorage__accountName', 'AzureWebJobsStorage__clientId']) if (!settings.always.has(k)) problems.push(`${k} is not set`);
  }
  return problems;
}

/** Role definition ids by name (built-in roles; the same in every tenant). */
export const ROLES = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6',
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb',
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
} as const;

/** The app identity's roles and the resource type each must be scoped to. */
const APP_ROLES: [string, string][] = [
  [ROLES.storageBlobDataOwner, 'Microsoft.Storage/storageAccounts'],
  [ROLES.storageQueueDataContributor, 'Microsoft.Storage/storageAccounts'],
  [ROLES.storageTableDataContributor, 'Microsoft.Storage/storageAccounts'],
  [ROLES.keyVaultSecretsUser, 'Microsoft.KeyVault/vaults'],
  [ROLES.monitoringMetricsPublisher, 'Microsoft.Insights/components'],
];

/**
 * Follows a module parameter back to main.bicep: which expression does main pass for `param` of
 * the module at `modulePath`? Undefined when main does not call that module.
 */
function passedByMain(files: InfraFiles, modulePath: string, param: string): string | undefined {
  const main = parsed(files, MAIN);
  const call = main?.modules.find((m) => posix.join('infra', m.path) === modulePath);
  return call ? get(objectBody(get(call.body, 'params')) ?? '', param) : undefined;
}

/** `x.outputs.y` in main → the output expression in the module x refers to. */
function moduleOutput(files: InfraFiles, expr: string | undefined): { path: string; file: BicepFile; value: string } | undefined {
  const m = /^(\w+)!?\.outputs\.(\w+)$/.exec(expr?.trim() ?? '');
  const main = parsed(files, MAIN);
  const call = m && main?.modules.find((x) => x.symbol === m[1]);
  if (!m || !call) return undefined;
  const path = posix.join('infra', call.path);
  const file = parsed(files, path);
  const value = file?.outputs.get(m[2]!);
  return file && value ? { path, file, value } : undefined;
}

/** Is `principalExpr` (in the file at `path`) the principal id of a user-assigned identity? */
function isUamiPrincipal(files: InfraFiles, path: string, file: BicepFile, principalExpr: string): boolean {
  const expr = principalExpr.trim();
  const local = /^(\w+)\.properties\.principalId$/.exec(expr);
  if (local) return file.resources.some((r) => r.symbol === local[1] && r.type === 'Microsoft.ManagedIdentity/userAssignedIdentities');
  if (file.params.some((p) => p.name === expr && p.defaultText === undefined)) {
    const out = moduleOutput(files, passedByMain(files, path, expr));
    return out !== undefined && isUamiPrincipal(files, out.path, out.file, out.value);
  }
  return false;
}

/** Least privilege: exactly the five data roles for the app identity, each on its own resource. */
export function checkRoles(files: InfraFiles): string[] {
  const problems: string[] = [];
  const assignments = allResources(files).filter(({ resource }) => resource.type === 'Microsoft.Authorization/roleAssignments' && !resource.existing);
  const appRoles = new Map<string, string[]>();
  for (const { path, file, resource } of assignments) {
    const props = objectBody(get(resource.body, 'properties')) ?? '';
    const roleId = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/i.exec(get(props, 'roleDefinitionId') ?? '')?.[1]?.toLowerCase();
    const principal = get(props, 'principalId') ?? '';
    if (!roleId) {
      problems.push(`${path}: ${resource.symbol} has no literal role definition id`);
      continue;
    }
    if (!isUamiPrincipal(files, path, file, principal)) continue;
    if (unquote(get(props, 'principalType')) !== 'ServicePrincipal') problems.push(`${path}: ${resource.symbol} lacks principalType 'ServicePrincipal'`);
    const scopeSymbol = get(resource.body, 'scope')?.trim();
    const scopeType = file.resources.find((r) => r.symbol === scopeSymbol)?.type ?? '(none)';
    appRoles.set(roleId, [...(appRoles.get(roleId) ?? []), scopeType]);
  }
  for (const [roleId, scopeType] of APP_ROLES) {
    const scopes = appRoles.get(roleId);
    if (!scopes) problems.push(`role ${roleId} is not assigned to the app's user-assigned identity`);
    else if (!scopes.every((s) => s === scopeType)) problems.push(`role ${roleId} is scoped to ${scopes.join(', ')}, not only ${scopeType}`);
  }
  for (const roleId of appRoles.keys()) if (!APP_ROLES.some(([r]) => r === roleId)) problems.push(`the app identity also gets role ${roleId}, beyond least privilege`);

  // The person running azd can store the CycleCloud credentials.
  const officer = assignments.find(({ path, resource }) => {
    const props = objectBody(get(resource.body, 'properties')) ?? '';
    if (!(get(props, 'roleDefinitionId') ?? '').includes(ROLES.keyVaultSecretsOfficer)) return false;
    return passedByMain(files, path, (get(props, 'principalId') ?? '').trim()) === 'principalId';
  });
  if (!officer) problems.push('the deploying principal (principalId) does not get Key Vault Secrets Officer');
  return problems;
}

/** Key Vault with RBAC authorization, soft delete and purge protection, no access policies. */
export function checkKeyVault(files: InfraFiles): string[] {
  const problems: string[] = [];
  const vaults = allResources(files).filter(({ resource }) => resource.type === 'Microsoft.KeyVault/vaults' && !resource.existing);
  if (vaults.length !== 1) problems.push(`expected one Key Vault, found ${vaults.length}`);
  for (const { path, resource } of vaults) {
    const props = objectBody(get(resource.body, 'properties')) ?? '';
    for (const key of ['enableRbacAuthorization', 'enableSoftDelete', 'enablePurgeProtection'])
      if (get(props, key) !== 'true') problems.push(`${path}: Key Vault ${key} is not true`);
    if (get(props, 'accessPolicies') !== undefined) problems.push(`${path}: Key Vault has access policies (RBAC only)`);
  }
  const settings = appSettings(files);
  if (!/\.properties\.vaultUri$/.test(settings?.always.get('KEY_VAULT_URL')?.trim() ?? '')) problems.push("KEY_VAULT_URL is not the vault's vaultUri");
  return problems;
}

/** Application Insights on a Log Analytics workspace, local auth disabled, Entra ID ingestion. */
export function checkMonitoring(files: InfraFiles): string[] {
  const problems: string[] = [];
  const components = allResources(files).filter(({ resource }) => resource.type === 'Microsoft.Insights/components' && !resource.existing);
  if (components.length !== 1) problems.push(`expected one Application Insights component, found ${components.length}`);
  for (const { path, file, resource } of components) {
    const props = objectBody(get(resource.body, 'properties')) ?? '';
    if (get(props, 'DisableLocalAuth') !== 'true') problems.push(`${path}: Application Insights DisableLocalAuth is not true`);
    const ws = /^(\w+)\.id$/.exec(get(props, 'WorkspaceResourceId')?.trim() ?? '')?.[1];
    if (!ws || !file.resources.some((r) => r.symbol === ws && r.type === 'Microsoft.OperationalInsights/workspaces'))
      problems.push(`${path}: Application Insights has no WorkspaceResourceId of a Log Analytics workspace`);
  }
  const settings = appSettings(files);
  if (!settings?.always.has('APPLICATIONINSIGHTS_CONNECTION_STRING')) problems.push('APPLICATIONINSIGHTS_CONNECTION_STRING is not set');
  if (!/Authorization=AAD/.test(settings?.always.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING') ?? ''))
    problems.push('APPLICATIONINSIGHTS_AUTHENTICATION_STRING does not use Authorization=AAD');
  return problems;
}

export interface ExpectedStorage {
  tables: string[];
  queues: string[];
  scaleQueue: string;
}

/** Every queue and table the app uses is created, and the app is told the scale queue's name. */
export function checkStorageNames(files: InfraFiles, expected: ExpectedStorage): string[] {
  const problems: string[] = [];
  const main = parsed(files, MAIN);
  if (!main) return [`${MAIN} cannot be read`];
  const storageCall = main.modules.find((m) => /storage\.bicep$/.test(m.path));
  if (!storageCall) return ['main.bicep does not call a storage module'];
  const storagePath = posix.join('infra', storageCall.path);
  const storage = parsed(files, storagePath);
  const callParams = objectBody(get(storageCall.body, 'params')) ?? '';
  for (const [kind, type, want] of [
    ['queue', 'Microsoft.Storage/storageAccounts/queueServices/queues', expected.queues],
    ['table', 'Microsoft.Storage/storageAccounts/tableServices/tables', expected.tables],
  ] as const) {
    const loop = storage?.resources.find((r) => r.type === type && r.loop);
    const listParam = /\bin\s+(\w+)$/.exec(loop?.loopHeader ?? '')?.[1];
    if (!loop || !listParam) {
      problems.push(`${storagePath} creates no ${kind}s from a list`);
      continue;
    }
    const items = arrayItems(main.vars.get(get(callParams, listParam)?.trim() ?? '') ?? get(callParams, listParam));
    const names = (items ?? []).map((i) => evalString(i, main));
    if (names.some((n) => n === undefined)) problems.push(`main.bicep: the ${kind} list has entries that are not constant`);
    for (const name of want) if (!names.includes(name)) problems.push(`${kind} ${name} is not created`);
  }
  const settings = appSettings(files);
  const queueSetting = settings?.always.get('SCALE_REQUESTS_QUEUE')?.trim();
  const passed = queueSetting && settings ? passedByMain(files, settings.path, queueSetting) : undefined;
  if (passed === undefined || evalString(passed, main) !== expected.scaleQueue) problems.push(`SCALE_REQUESTS_QUEUE is not set to ${expected.scaleQueue}`);
  return problems;
}

export interface AppSettingsCheckOptions {
  /** Parses settings as the app does in Azure; throws (naming the setting) when they do not do. */
  load: (env: Record<string, string>) => void;
  /**
   * Values standing in for what only exists at deployment time, by app setting or by main.bicep
   * parameter name (the identity's client id, the vault URL, the CycleCloud URL…).
   */
  samples: Record<string, string>;
  /** Whether the app (or the Functions platform) reads a setting of this name. */
  known: (setting: string) => boolean;
}

/**
 * The value an app setting takes when deployed with main.bicep's defaults: string literals and
 * `${…}` interpolations are evaluated, parameters are followed to what main.bicep passes (its
 * defaults and vars), and what only Azure knows comes from `samples`.
 */
export function deployedSettingValue(files: InfraFiles, key: string, expr: string, samples: Record<string, string>): string | undefined {
  const settings = appSettings(files);
  const main = parsed(files, MAIN);
  if (!settings || !main) return undefined;
  const resolveName = (name: string): string | undefined => {
    if (samples[name] !== undefined) return samples[name];
    const passed = passedByMain(files, settings.path, name);
    if (passed === undefined) return undefined;
    const direct = evalString(passed, main);
    if (direct !== undefined) return direct;
    const mainParam = main.params.find((p) => p.name === passed.trim());
    return mainParam ? samples[mainParam.name] : undefined;
  };
  const e = expr.trim();
  if (/^\w+$/.test(e)) return resolveName(e) ?? samples[key];
  const lit = /^'((?:[^'\\]|\\.)*)'$/.exec(e);
  if (lit) {
    let failed = false;
    const out = lit[1]!.replace(/\$\{([^}]*)\}/g, (_, inner: string) => {
      const v = /^\w+$/.test(inner.trim()) ? resolveName(inner.trim()) : undefined;
      if (v === undefined) failed = true;
      return v ?? '';
    });
    return failed ? samples[key] : out;
  }
  return samples[key];
}

/**
 * The settings the site always gets, evaluated as deployed, satisfy the app's own config schema in
 * Azure mode (so every setting it requires is there and every default is valid), and each one is
 * a setting something actually reads.
 */
export function checkAppSettings(files: InfraFiles, options: AppSettingsCheckOptions): string[] {
  const settings = appSettings(files);
  if (!settings) return ['no appsettings resource'];
  const problems: string[] = [];
  const env: Record<string, string> = {};
  for (const [k, v] of settings.always) {
    if (v.trim() === "''") problems.push(`app setting ${k} is set to an empty string`);
    const value = deployedSettingValue(files, k, v, options.samples);
    if (value === undefined) problems.push(`app setting ${k} cannot be evaluated (${v.trim()})`);
    else env[k] = value;
  }
  for (const k of [...settings.always.keys(), ...settings.optional.keys()]) if (!options.known(k)) problems.push(`app setting ${k} is read by nothing (misspelt?)`);
  try {
    options.load(env);
  } catch (e) {
    problems.push(`the deployed settings fail the app's config: ${(e as Error).message}`);
  }
  return problems;
}

/** azd finds the resource group by azd-env-name and the app by azd-service-name: 'api'. */
export function checkTags(files: InfraFiles): string[] {
  const problems: string[] = [];
  const main = parsed(files, MAIN);
  if (main?.targetScope !== 'subscription') problems.push("main.bicep: targetScope is not 'subscription'");
  const rg = main?.resources.find((r) => r.type === 'Microsoft.Resources/resourceGroups');
  if (!rg || !main) problems.push('main.bicep creates no resource group');
  else {
    const tagsExpr = get(rg.body, 'tags')?.trim() ?? '';
    const tags = objectBody(main.vars.get(tagsExpr) ?? tagsExpr) ?? '';
    if (get(tags, 'azd-env-name')?.trim() !== 'environmentName') problems.push('the resource group is not tagged azd-env-name: environmentName');
  }
  const site = allResources(files).find(({ resource }) => resource.type === 'Microsoft.Web/sites' && !resource.existing);
  const siteTags = site ? (get(site.resource.body, 'tags') ?? '') : '';
  if (!/'azd-service-name'\s*:\s*'api'/.test(siteTags)) problems.push("the function app is not tagged azd-service-name: 'api'");
  return problems;
}

/** Modules exist; each call supplies every parameter without a default and no unknown ones. */
export function checkModules(files: InfraFiles): string[] {
  const problems: string[] = [];
  for (const path of bicepPaths(files)) {
    const file = parsed(files, path);
    if (!file) {
      problems.push(`${path} cannot be read`);
      continue;
    }
    for (const call of file.modules) {
      const target = posix.join(dirname(path), call.path);
      const module = parsed(files, target);
      if (!module) {
        problems.push(`${path}: module ${call.symbol} refers to ${call.path}, which does not exist`);
        continue;
      }
      const given = entries(objectBody(get(call.body, 'params')) ?? '');
      for (const p of module.params) if (p.defaultText === undefined && !given.has(p.name)) problems.push(`${path}: module ${call.symbol} does not pass required param ${p.name}`);
      for (const k of given.keys()) if (!module.params.some((p) => p.name === k)) problems.push(`${path}: module ${call.symbol} passes ${k}, which ${target} does not declare`);
    }
  }
  const main = parsed(files, MAIN);
  let parameters: Record<string, unknown> = {};
  try {
    parameters = (JSON.parse(files.get(PARAMETERS) ?? '{}') as { parameters?: Record<string, unknown> }).parameters ?? {};
  } catch {
    problems.push(`${PARAMETERS} is not JSON`);
  }
  for (const p of main?.params ?? []) if (p.defaultText === undefined && !(p.name in parameters)) problems.push(`${PARAMETERS} does not supply required param ${p.name}`);
  for (const k of Object.keys(parameters)) if (!main?.params.some((p) => p.name === k)) problems.push(`${PARAMETERS} supplies ${k}, which main.bicep does not declare`);
  for (const [name, env] of [
    ['environmentName', 'AZURE_ENV_NAME'],
    ['location', 'AZURE_LOCATION'],
    ['principalId', 'AZURE_PRINCIPAL_ID'],
    ['cycleCloudUrl', 'CYCLECLOUD_URL'],
    ['cycleCloudClusters', 'CYCLECLOUD_CLUSTERS'],
  ])
    if ((parameters[name!] as { value?: unknown } | undefined)?.value !== `\${${env}}`) problems.push(`${PARAMETERS}: ${name} is not mapped to \${${env}}`);
  return problems;
}

/** main.bicep outputs what azd and the docs use. */
export function checkOutputs(files: InfraFiles): string[] {
  const main = parsed(files, MAIN);
  return ['AZURE_FUNCTION_NAME', 'AZURE_FUNCTION_URL', 'AZURE_KEY_VAULT_NAME', 'AZURE_KEY_VAULT_URL', 'AZURE_RESOURCE_GROUP']
    .filter((o) => !main?.outputs.has(o))
    .map((o) => `main.bicep does not output ${o}`);
}

/** The site can join a subnet, and the subnet main.bicep creates is delegated as Flex requires. */
export function checkNetwork(files: InfraFiles): string[] {
  const problems: string[] = [];
  const site = allResources(files).find(({ resource }) => resource.type === 'Microsoft.Web/sites' && !resource.existing);
  if (!site || get(site.resource.body, 'properties', 'virtualNetworkSubnetId') === undefined) problems.push('the site has no virtualNetworkSubnetId');
  const vnets = allResources(files).filter(({ resource }) => resource.type === 'Microsoft.Network/virtualNetworks' && !resource.existing);
  if (vnets.length === 0) problems.push('no virtual network can be created');
  for (const { path, resource } of vnets) {
    const subnets = arrayItems(get(resource.body, 'properties', 'subnets')) ?? [];
    const delegated = subnets.some((s) =>
      (arrayItems(get(objectBody(s) ?? '', 'properties', 'delegations')) ?? []).some(
        (d) => unquote(get(objectBody(d) ?? '', 'properties', 'serviceName')) === 'Microsoft.App/environments',
      ),
    );
    if (!delegated) problems.push(`${path}: no subnet is delegated to Microsoft.App/environments`);
  }
  return problems;
}

/** Parses an hh:mm:ss TimeSpan (optionally d.hh:mm:ss) into seconds. */
export function timeSpanSeconds(value: unknown): number | undefined {
  const m = typeof value === 'string' ? /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$/.exec(value) : null;
  if (!m) return undefined;
  return Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

/** host.json agrees with the queue contract (base64), the routes (/api) and the Flex limits. */
export function checkHostJson(files: InfraFiles): string[] {
  const problems: string[] = [];
  let host: {
    version?: string;
    functionTimeout?: string;
    extensions?: { queues?: Record<string, unknown>; http?: { routePrefix?: string } };
    logging?: { applicationInsights?: { samplingSettings?: { isEnabled?: boolean; excludedTypes?: string } } };
  };
  try {
    host = JSON.parse(files.get('host.json') ?? '');
  } catch {
    return ['host.json is missing or not JSON'];
  }
  const queues = host.extensions?.queues ?? {};
  if (host.version !== '2.0') problems.push('host.json version is not 2.0');
  if (queues.messageEncoding !== 'base64') problems.push('host.json queues.messageEncoding is not base64 (docs/api.md §3)');
  const dequeue = queues.maxDequeueCount;
  if (typeof dequeue !== 'number' || dequeue < 2 || dequeue > 10) problems.push('host.json queues.maxDequeueCount is not between 2 and 10');
  const batch = queues.batchSize;
  if (typeof batch !== 'number' || batch < 1 || batch > 32) problems.push('host.json queues.batchSize is not between 1 and 32');
  for (const key of ['visibilityTimeout', 'maxPollingInterval']) if (timeSpanSeconds(queues[key]) === undefined) problems.push(`host.json queues.${key} is not a TimeSpan`);
  // Flex Consumption has no hard maximum, but a finite timeout keeps a hung CycleCloud call from
  // holding an instance; 30 minutes is the plan's default and far above any handler's budget.
  const timeout = timeSpanSeconds(host.functionTimeout);
  if (timeout === undefined || timeout < 230 || timeout > 30 * 60) problems.push('host.json functionTimeout is not a TimeSpan between 00:03:50 and 00:30:00');
  if (host.extensions?.http?.routePrefix !== 'api') problems.push("host.json http.routePrefix is not 'api'");
  const sampling = host.logging?.applicationInsights?.samplingSettings;
  // Metrics are log lines (traces): sampling them would make Kusto sums wrong.
  if (sampling?.isEnabled !== false && !/\bTrace\b/.test(sampling?.excludedTypes ?? '')) problems.push('host.json samples traces, which would drop metric lines');
  return problems;
}

/** The synthetic project tree the .funcignore is evaluated against. */
export function projectTree(files: InfraFiles): string[] {
  const main = (JSON.parse(files.get('package.json') ?? '{}') as { main?: string }).main ?? 'dist/main.js';
  return [
    main,
    `${main}.map`,
    'host.json',
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'vitest.config.ts',
    'azure.yaml',
    'local.settings.json',
    'local.settings.example.json',
    '.gitignore',
    '.git/config',
    '.azure/dev/.env',
    'src/platform/config.ts',
    'src/cyclecloud/schemas.ts',
    'functions/scale.ts',
    'test/infra/bicep.test.ts',
    'infra/main.bicep',
    'docs/deploy.md',
    'scripts/build.mjs',
    'node_modules/zod/package.json',
    'node_modules/.bin/vitest',
    'node_modules/@azure/functions/package.json',
    '__azurite_db_queue__.json',
    'coverage/index.html',
  ];
}

/** Only the bundle, host.json and package.json ship, under both azd's and git's reading. */
export function checkFuncignore(files: InfraFiles): string[] {
  const text = files.get('.funcignore');
  if (text === undefined) return ['.funcignore is missing'];
  const problems: string[] = [];
  const tree = projectTree(files);
  const main = tree[0]!;
  const mustShip = [main, 'host.json', 'package.json'];
  for (const dialect of ['azd', 'git'] as const) {
    const shipped = packaged(text, tree, dialect);
    for (const f of mustShip) if (!shipped.includes(f)) problems.push(`.funcignore (${dialect}) drops ${f}`);
    for (const f of shipped) if (!mustShip.includes(f) && !f.startsWith('dist/')) problems.push(`.funcignore (${dialect}) ships ${f}`);
  }
  if (excludesNodeModules(text)) problems.push('.funcignore excludes node_modules itself, which azd rejects with remoteBuild: false');
  return problems;
}

/** A tiny reader for the block-mapping YAML of azure.yaml (no sequences, no anchors). */
export function readYamlMapping(text: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  const stack: { indent: number; node: Record<string, unknown> }[] = [{ indent: -1, node: root }];
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*(#|$)/.test(raw)) continue;
    const m = /^(\s*)([^:#\s][^:]*?):(?:\s+(.*))?$/.exec(raw);
    if (!m) throw new Error(`azure.yaml: cannot read line: ${raw.trim()}`);
    const indent = m[1]!.length;
    while (stack.at(-1)!.indent >= indent) stack.pop();
    const parent = stack.at(-1)!.node;
    let value = m[3]?.trim();
    if (value === undefined || value === '') {
      const child: Record<string, unknown> = {};
      parent[m[2]!] = child;
      stack.push({ indent, node: child });
      continue;
    }
    if (/^'.*'$/.test(value)) value = value.slice(1, -1).replace(/''/g, "'");
    else if (/^".*"$/.test(value)) value = JSON.parse(value) as string;
    else value = value.replace(/\s+#.*$/, '');
    parent[m[2]!] = value === 'true' ? true : value === 'false' ? false : value;
  }
  return root;
}

/** azure.yaml deploys service api as a TypeScript function from a local build. */
export function checkAzureYaml(files: InfraFiles): string[] {
  const text = files.get('azure.yaml');
  if (text === undefined) return ['azure.yaml is missing'];
  let doc: Record<string, unknown>;
  try {
    doc = readYamlMapping(text);
  } catch (e) {
    return [(e as Error).message];
  }
  const problems: string[] = [];
  const api = (doc.services as Record<string, Record<string, unknown>> | undefined)?.api;
  if (!api) return ['azure.yaml has no service api'];
  if (api.project !== '.') problems.push('azure.yaml services.api.project is not .');
  if (api.language !== 'ts') problems.push('azure.yaml services.api.language is not ts');
  if (api.host !== 'function') problems.push('azure.yaml services.api.host is not function');
  if (api.remoteBuild !== false) problems.push('azure.yaml services.api.remoteBuild is not false');
  const hook = (api.hooks as Record<string, Record<string, Record<string, unknown>>> | undefined)?.prepackage;
  for (const os of ['posix', 'windows']) {
    const run = String(hook?.[os]?.run ?? '');
    if (!/npm ci\b/.test(run) || !/npm run build\b/.test(run)) problems.push(`azure.yaml prepackage hook (${os}) does not run npm ci and npm run build`);
  }
  const infra = doc.infra as Record<string, unknown> | undefined;
  if (infra && infra.path !== undefined && infra.path !== 'infra') problems.push('azure.yaml infra.path is not infra');
  return problems;
}

/** A compiled ARM template may only be committed when the real Bicep compiler produced it. */
export function checkCompiledArm(files: InfraFiles): string[] {
  const problems: string[] = [];
  for (const [path, text] of files) {
    if (!path.startsWith('infra/') || !path.endsWith('.json') || path === PARAMETERS) continue;
    let generator: string | undefined;
    try {
      generator = (JSON.parse(text) as { metadata?: { _generator?: { name?: string } } }).metadata?._generator?.name;
    } catch {
      /* not JSON: reported below */
    }
    if (generator !== 'bicep') problems.push(`${path} is not a template compiled by Bicep`);
  }
  return problems;
}

/** The alerts issue 23 asks for, by runbook anchor (docs/operations.md "Runbook"). */
export const EXPECTED_ALERTS = ['requests-past-their-deadline', 'cyclecloud-unreachable', 'snapshot-stale', 'poison-queue-not-empty', 'over-ask', 'callbacks-failing'];

/** GitHub's anchor of a Markdown heading. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');
}

/** Metric names a KQL query reads (`name == "…"` or `name in ("…", …)`). */
function metricsRead(query: string): string[] {
  const out = [...query.matchAll(/name == "([^"]+)"/g)].map((m) => m[1]!);
  for (const m of query.matchAll(/name in \(([^)]*)\)/g)) out.push(...[...m[1]!.matchAll(/"([^"]+)"/g)].map((x) => x[1]!));
  return out;
}

/**
 * Each expected alert is a scheduled query rule on the Application Insights component that reads
 * metrics the scaler records, notifies the one action group (e-mail and webhook from parameters) and
 * names a runbook section that exists; the workbook charts metrics that exist; main deploys both.
 */
export function checkAlerts(files: InfraFiles): string[] {
  const problems: string[] = [];
  const file = parsed(files, ALERTS);
  if (!file) return [`${ALERTS} is missing or does not parse`];
  const known = new Set(Object.keys(METRICS));
  const anchors = new Set([...(files.get(OPERATIONS_DOC) ?? '').matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchorOf(m[1]!)));

  const groups = file.resources.filter((r) => r.type === 'Microsoft.Insights/actionGroups');
  if (groups.length !== 1) problems.push(`expected one action group, found ${groups.length}`);
  const group = groups[0];
  const gp = objectBody(get(group?.body ?? '', 'properties')) ?? '';
  if (!/alertEmail/.test(get(gp, 'emailReceivers') ?? '')) problems.push('the action group has no e-mail receiver from the alertEmail parameter');
  if (!/alertWebhookUrl/.test(get(gp, 'webhookReceivers') ?? '')) problems.push('the action group has no webhook receiver from the alertWebhookUrl parameter');
  for (const p of ['alertEmail', 'alertWebhookUrl']) if (!file.params.some((x) => x.name === p)) problems.push(`${ALERTS}: no parameter ${p}`);

  const rulesText = file.vars.get('rules') ?? '';
  const rules = (arrayItems(rulesText) ?? []).map((item) => ({ key: /key: '([^']+)'/.exec(item)?.[1] ?? '', query: /query: '((?:[^']|'')*)'/.exec(item)?.[1] ?? '' }));
  const keys = rules.map((r) => r.key);
  for (const want of EXPECTED_ALERTS) if (!keys.includes(want)) problems.push(`alert ${want} is not defined`);
  for (const r of rules) {
    if (!anchors.has(r.key)) problems.push(`alert ${r.key}: ${OPERATIONS_DOC} has no section #${r.key}`);
    const read = metricsRead(r.query);
    if (read.length === 0) problems.push(`alert ${r.key}: its query reads no metric`);
    for (const m of read) if (!known.has(m)) problems.push(`alert ${r.key}: reads ${m}, which the scaler does not record`);
  }
  const alertRules = file.resources.filter((r) => r.type === 'Microsoft.Insights/scheduledQueryRules');
  if (alertRules.length !== 1 || !/\bin rules\b/.test(alertRules[0]?.loopHeader ?? alertRules[0]?.body ?? ''))
    problems.push('expected one scheduled query rule resource looping over rules');
  for (const r of alertRules) {
    const props = objectBody(get(r.body, 'properties')) ?? '';
    if (!/applicationInsightsId/.test(get(props, 'scopes') ?? '')) problems.push('the alert rules are not scoped to the Application Insights component');
    if (!/#\$\{rule\.key\}/.test(get(props, 'description') ?? '')) problems.push('the alert rules do not name their runbook section in the description');
    if (!new RegExp(`\\b${group?.symbol ?? 'actionGroup'}\\.id\\b`).test(get(props, 'actions') ?? '')) problems.push('the alert rules do not notify the action group');
  }

  const workbooks = file.resources.filter((r) => r.type === 'Microsoft.Insights/workbooks');
  if (workbooks.length !== 1) problems.push(`expected one workbook, found ${workbooks.length}`);
  for (const w of workbooks)
    if (!/applicationInsightsId/.test(get(objectBody(get(w.body, 'properties')) ?? '', 'sourceId') ?? ''))
      problems.push('the workbook does not read the Application Insights component');
  const charts = (arrayItems(file.vars.get('charts') ?? '') ?? []).map((c) => /query: '((?:[^']|'')*)'/.exec(c)?.[1] ?? '');
  if (charts.length < 5) problems.push(`the workbook has ${charts.length} charts, fewer than 5`);
  for (const q of charts) for (const m of metricsRead(q)) if (!known.has(m)) problems.push(`a workbook chart reads ${m}, which the scaler does not record`);

  const main = parsed(files, MAIN);
  const mod = main?.modules.find((m) => m.path === 'modules/alerts.bicep');
  if (!mod) problems.push(`${MAIN} does not deploy modules/alerts.bicep`);
  else if (!/applicationInsightsId: monitoring\.outputs\.applicationInsightsId/.test(mod.body)) problems.push('the alerts module is not given the Application Insights component');
  return problems;
}
