// A virtual network with one subnet for the Function App's outbound traffic, so it can reach a
// CycleCloud server that has only a private address. Flex Consumption requires the integration
// subnet to be delegated to Microsoft.App/environments and used by no other app.
param name string
param location string
param tags object = {}
param addressPrefix string
param appSubnetAddressPrefix string

var appSubnetName = 'snet-app'

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [addressPrefix] }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetAddressPrefix
          delegations: [
            {
              name: 'flex-consumption'
              properties: { serviceName: 'Microsoft.App/environments' }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
    ]
  }

  resource appSubnet 'subnets' existing = {
    name: appSubnetName
  }
}

output vnetId string = vnet.id
output vnetName string = vnet.name
output appSubnetId string = vnet::appSubnet.id
