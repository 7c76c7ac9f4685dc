// The scaler itself: a Flex Consumption Function App running the esbuild bundle (dist/main.js) on
// Node 22. Every setting the app reads (docs/api.md §2, src/platform/config.ts) is set here; secrets
// are never settings: the app reads them from Key Vault with its managed identity.
param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param keyVaultName string

@description('Subnet for VNet integration (delegated to Microsoft.App/environments). Empty = no integration.')
param subnetId string = ''

param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048

param cycleCloudUrl string
param cycleCloudClusters string
param snapshotSchedule string
param scaleRequestsQueue string
param credentialsSecretName string
param signingSecretName string

@description('Key Vault secret with CycleCloud\'s CA PEM; empty = no CYCLECLOUD_CA_PEM setting.')
param cycleCloudCaPemSecretName string = ''

@description('Further settings (the app\'s tuning knobs), applied last.')
param extraAppSettings object = {}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the deployment target of service `api` (azure.yaml) by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Resolves @Microsoft.KeyVault(...) settings (CYCLECLOUD_CA_PEM) with the same identity.
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // The runtime is chosen here on Flex Consumption, not with FUNCTIONS_WORKER_RUNTIME or
      // linuxFxVersion (both are rejected or ignored on this plan).
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

var caPemSetting = empty(cycleCloudCaPemSecretName)
  ? {}
  : { CYCLECLOUD_CA_PEM: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${cycleCloudCaPemSecretName})' }

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(
    {
      // Host storage through the managed identity: no connection string, no account key.
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      // Telemetry ingestion with Entra ID (the component has local auth disabled).
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // DefaultAzureCredential in the app (Key Vault) picks the user-assigned identity.
      AZURE_CLIENT_ID: identityClientId
      AZURE_TOKEN_CREDENTIALS: 'ManagedIdentityCredential'
      CYCLECLOUD_URL: cycleCloudUrl
      CYCLECLOUD_CLUSTERS: cycleCloudClusters
      KEY_VAULT_URL: vault.properties.vaultUri
      CYCLECLOUD_CREDENTIALS_SECRET: credentialsSecretName
      SIGNING_SECRET_NAME: signingSecretName
      SNAPSHOT_SCHEDULE: snapshotSchedule
      SCALE_REQUESTS_QUEUE: scaleRequestsQueue
    },
    caPemSetting,
    extraAppSettings
  )
}

output name string = site.name
output id string = site.id
output url string = 'https://${site.properties.defaultHostName}'
