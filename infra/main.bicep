// Entry point for `azd up` / `azd provision`: one resource group holding the scaler's Function App
// (Flex Consumption, Node 22), its user-assigned identity, storage, Key Vault and monitoring.
// Raw resources with pinned API versions, no registry modules: the templates must be readable and
// testable offline (test/infra/bicep.test.ts checks the invariants this file promises).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region for every resource (must offer the Flex Consumption plan).')
param location string

@description('Object id of the user or service principal running azd; gets Key Vault Secrets Officer (to store the CycleCloud credentials) and Storage Queue Data Contributor (to drain the poison queue). Empty = no operator grants.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
@description('Kind of principalId: User for a person running azd, ServicePrincipal for a pipeline.')
param principalType string = 'User'

@minLength(1)
@description('CycleCloud base URL, e.g. https://cyclecloud.contoso.internal:8443 (CYCLECLOUD_URL).')
param cycleCloudUrl string

@minLength(1)
@description('Comma-separated cluster names the snapshot timer covers (CYCLECLOUD_CLUSTERS).')
param cycleCloudClusters string

@description('NCRONTAB, 6 fields, of the snapshot timer (SNAPSHOT_SCHEDULE).')
param snapshotSchedule string = '0 */1 * * * *'

@description('Key Vault secret holding {"username":"…","password":"…"} for CycleCloud (CYCLECLOUD_CREDENTIALS_SECRET).')
param credentialsSecretName string = 'cyclecloud-credentials'

@description('Key Vault secret holding the HMAC key that signs callbacks and verifies webhooks (SIGNING_SECRET_NAME).')
param signingSecretName string = 'scaler-signing-key'

@description('Key Vault secret holding the PEM of CycleCloud\'s (self-signed) certificate. Empty = trust the system CAs only.')
param cycleCloudCaPemSecretName string = ''

@description('Create a virtual network and integrate the app with it (for a CycleCloud server without a public address).')
param vnetEnabled bool = false

@description('Resource id of an existing subnet delegated to Microsoft.App/environments to integrate with instead of creating a network. Wins over vnetEnabled.')
param existingSubnetId string = ''

@description('Address space of the created virtual network (vnetEnabled). Must not overlap the CycleCloud network when peering.')
param vnetAddressPrefix string = '10.250.0.0/16'

@description('Prefix of the created integration subnet (vnetEnabled); /27 or larger.')
param appSubnetAddressPrefix string = '10.250.0.0/24'

@description('Resource id of the virtual network CycleCloud runs in; when set (and a network is created), both directions of a peering are created. Empty = no peering.')
param cycleCloudVnetId string = ''

@description('More app settings for the tuning knobs of docs/api.md §2 / src/platform/config.ts (e.g. {"REQUEST_DEADLINE_MINUTES": "60"}). Set them here, not in the portal: every provision rewrites the app settings.')
param extraAppSettings object = {}

@minValue(1)
@maxValue(1000)
@description('Upper bound of Flex Consumption instances; also bounds concurrent calls into CycleCloud.')
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@description('E-mail address the alerts notify (docs/operations.md "Alerts"); empty = none.')
param alertEmail string = ''

@description('HTTPS webhook the alerts call with the common alert schema; empty = none.')
param alertWebhookUrl string = ''

@description('Seconds between snapshots, as SNAPSHOT_SCHEDULE says; the stale-snapshot alert fires past 3 of them.')
param snapshotPeriodSeconds int = 60

var tags = { 'azd-env-name': environmentName }
// Deterministic per subscription, environment and region, so re-provisioning finds the same resources.
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var createNetwork = vnetEnabled && empty(existingSubnetId)
var peerWithCycleCloud = createNetwork && !empty(cycleCloudVnetId)
var resourceGroupName = 'rg-${environmentName}'
var cycleCloudVnetParts = split(peerWithCycleCloud ? cycleCloudVnetId : '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroupName}/providers/Microsoft.Network/virtualNetworks/none', '/')

// The scaler's storage layout: src/platform/names.ts storageNames() with the default prefix
// `scaler` and the default SCALE_REQUESTS_QUEUE. The test compares these lists with that function.
var scaleRequestsQueue = 'scale-requests'
var queueNames = [
  scaleRequestsQueue
  '${scaleRequestsQueue}-poison'
  'scaler-tracker'
  'scaler-tracker-poison'
  'scaler-callbacks'
  'scaler-callbacks-poison'
]
var tableNames = [
  'scalerrequests'
  'scalersnapshots'
  'scaleroperations'
  'scalercapacity'
  'scalerstate'
]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    location: location
    tags: tags
    nameSuffix: resourceToken
    alertEmail: alertEmail
    alertWebhookUrl: alertWebhookUrl
    snapshotPeriodSeconds: snapshotPeriodSeconds
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
    queueNames: queueNames
    tableNames: tableNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
  }
}

module network 'modules/network.bicep' = if (createNetwork) {
  name: 'network'
  scope: rg
  params: {
    name: 'vnet-${resourceToken}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetAddressPrefix: appSubnetAddressPrefix
  }
}

// The CycleCloud network usually lives in another resource group (or subscription): peer both ways.
module peering 'modules/peering.bicep' = if (peerWithCycleCloud) {
  name: 'peering'
  scope: rg
  params: {
    localVnetName: 'vnet-${resourceToken}'
    remoteVnetId: cycleCloudVnetId
  }
  dependsOn: [network]
}

module remotePeering 'modules/peering.bicep' = if (peerWithCycleCloud) {
  name: 'peering-${resourceToken}'
  // Parsed from a stand-in id when not peering: ARM may evaluate the scope of a skipped deployment.
  scope: resourceGroup(cycleCloudVnetParts[2], cycleCloudVnetParts[4])
  params: {
    localVnetName: last(cycleCloudVnetParts)
    remoteVnetId: createNetwork ? network!.outputs.vnetId : ''
  }
}

var integrationSubnetId = !empty(existingSubnetId) ? existingSubnetId : (createNetwork ? network!.outputs.appSubnetId : '')

module app 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    subnetId: integrationSubnetId
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    cycleCloudUrl: cycleCloudUrl
    cycleCloudClusters: cycleCloudClusters
    snapshotSchedule: snapshotSchedule
    scaleRequestsQueue: scaleRequestsQueue
    credentialsSecretName: credentialsSecretName
    signingSecretName: signingSecretName
    cycleCloudCaPemSecretName: cycleCloudCaPemSecretName
    extraAppSettings: extraAppSettings
  }
  // The host starts as soon as the site exists; with its roles already in place it does not spend
  // its first minutes failing to reach storage and Key Vault.
  dependsOn: [rbac]
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
  }
}

// azd stores these outputs in the environment (azd env get-values); docs/deploy.md uses them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = app.outputs.name
output AZURE_FUNCTION_URL string = app.outputs.url
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
