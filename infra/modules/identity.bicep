// The one identity the Function App uses for everything: host storage, queues and tables, Key Vault,
// Application Insights ingestion. User-assigned so that role assignments exist before the app starts
// (a system-assigned identity would only exist after the site, racing the first host start).
param name string
param location string
param tags object = {}

resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = uami.id
output name string = uami.name
output clientId string = uami.properties.clientId
output principalId string = uami.properties.principalId
