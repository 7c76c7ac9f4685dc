/** CycleCloud `GET /clusters/{c}/status` bodies for snapshot tests and benches (wire format, unparsed). */

/** The seed's status (reference/cyclecloud-rest-api.md, [HOWTO] example), verbatim numbers. */
export function seedStatusBody(): Record<string, unknown> {
  return {
    state: 'Started',
    targetState: 'Started',
    maxCount: 100,
    maxCoreCount: 10000,
    nodearrays: [
      {
        name: 'ondemand',
        maxCount: 100,
        maxCoreCount: 500,
        buckets: [
          {
            bucketId: 'cd56af52-abcd-1234-a4e7-e6a91ca519a2',
            definition: { machineType: 'Standard_Fs32_v2' },
            maxCount: 3,
            maxCoreCount: 96,
            activeCount: 0,
            activeCoreCount: 0,
            availableCount: 3,
            availableCoreCount: 96,
            quotaCount: 3,
            quotaCoreCount: 100,
            consumedCoreCount: 0,
            maxPlacementGroupSize: 40,
            maxPlacementGroupCoreSize: 1280,
            valid: true,
            placementGroups: [],
            virtualMachine: { vcpuCount: 32, memory: 64.0, infiniband: false },
          },
          {
            bucketId: 'd81e001a-abcd-1234-9754-79815cb7b225',
            definition: { machineType: 'Standard_Hc44rs' },
            maxCount: 11,
            maxCoreCount: 484,
            activeCount: 0,
            activeCoreCount: 0,
            availableCount: 11,
            availableCoreCount: 484,
            quotaCount: 200,
            quotaCoreCount: 8800,
            consumedCoreCount: 44,
            maxPlacementGroupSize: 40,
            maxPlacementGroupCoreSize: 1760,
            valid: true,
            placementGroups: [],
            virtualMachine: { vcpuCount: 44, memory: 327.83, infiniband: true },
          },
        ],
      },
    ],
  };
}

/** A big status: `nodearrays` × `buckets`, and `nodes` node records shaped like real ones (many keys). */
export function bigStatusBody(nodearrays: number, buckets: number, nodes: number): Record<string, unknown> {
  return {
    state: 'Started',
    maxCount: 1_000_000,
    maxCoreCount: 100_000_000,
    nodearrays: Array.from({ length: nodearrays }, (_, n) => ({
      name: `na${n}`,
      maxCount: 5000,
      maxCoreCount: 320_000,
      nodearray: { Name: `na${n}`, Region: 'westeurope', SubnetId: '/subscriptions/x/subnets/compute', Configuration: { autoscale: { enabled: true } } },
      buckets: Array.from({ length: buckets }, (_, k) => ({
        bucketId: `00000000-0000-0000-${String(n).padStart(4, '0')}-${String(k).padStart(12, '0')}`,
        definition: { machineType: `Standard_T${k}` },
        maxCount: 1000,
        maxCoreCount: 16_000 * (k + 1),
        activeCount: 10,
        activeCoreCount: 160 * (k + 1),
        availableCount: 990,
        availableCoreCount: 990 * 16 * (k + 1),
        quotaCount: 1000,
        quotaCoreCount: 16_000 * (k + 1),
        consumedCoreCount: 160,
        maxPlacementGroupSize: 100,
        maxPlacementGroupCoreSize: 1600 * (k + 1),
        valid: true,
        placementGroups: [{ name: `na${n}-b${k}-pg0`, activeCount: 10, activeCoreCount: 160 * (k + 1) }],
        lastCapacityFailure: -1,
        virtualMachine: { vcpuCount: 16 * (k + 1), memory: 64 * (k + 1), infiniband: k % 2 === 1, gpuCount: 0 },
      })),
    })),
    nodes: Array.from({ length: nodes }, (_, i) => ({
      Name: `na${i % nodearrays}-${i}`,
      NodeId: `6f1c${String(i).padStart(8, '0')}-abcd-1234-b290-b54ea23f1b68`,
      Template: `na${i % nodearrays}`,
      MachineType: `Standard_T${i % buckets}`,
      Status: i % 17 === 0 ? 'Acquiring' : 'Ready',
      TargetState: 'Started',
      State: 'Started',
      Hostname: `ip-0a00${i.toString(16).padStart(4, '0')}`,
      PrivateIp: `10.0.${(i >> 8) & 255}.${i & 255}`,
      InstanceId: `/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/${i}`,
      PlacementGroupId: i % 3 === 0 ? `na${i % nodearrays}-b0-pg0` : undefined,
      KeepAlive: false,
      Configuration: { autoscale: { enabled: true }, cyclecloud: { hosts: { standalone_dns: { enabled: false } } } },
      Tags: { job: `j${i % 50}` },
      CoreCount: 16,
      Memory: 64,
    })),
  };
}
