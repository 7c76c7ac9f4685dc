// One direction of a virtual network peering; main.bicep deploys it twice (ours → CycleCloud's in
// this resource group, CycleCloud's → ours in CycleCloud's resource group).
@description('Name of the virtual network in the resource group this module is deployed to.')
param localVnetName string

@description('Resource id of the virtual network to peer with.')
param remoteVnetId string

resource localVnet 'Microsoft.Network/virtualNetworks@2024-05-01' existing = {
  name: localVnetName
}

resource peering 'Microsoft.Network/virtualNetworks/virtualNetworkPeerings@2024-05-01' = {
  parent: localVnet
  name: 'peer-${last(split(remoteVnetId, '/'))}'
  properties: {
    remoteVirtualNetwork: { id: remoteVnetId }
    allowVirtualNetworkAccess: true
    allowForwardedTraffic: false
    allowGatewayTransit: false
    useRemoteGateways: false
  }
}
