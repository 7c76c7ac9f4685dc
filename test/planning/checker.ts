/**
 * An independent quality checker for plans (issue 11), written from docs/api.md §3 and the reference,
 * not from the planner: it shares no code with `src/planning/` and reads only the plan's sets and
 * per-demand placements.
 *
 * `checkPlan` lists every violation (empty = good):
 * - no bucket gets more than its `availableCount` less in-flight nodes, nor more than `maxCount`
 *   less active and in-flight nodes; nothing goes to an invalid bucket;
 * - no placement group ends over `maxPlacementGroupSize` (active + in flight + planned);
 * - every placed colocated demand is whole, in exactly one placement group of one bucket;
 * - an `allOrNothing` demand is whole in one bucket or absent;
 * - every node meets its demand's selectors (nodearray(s), machineTypes, minimums, InfiniBand);
 * - the sets add up to the demands' placements.
 *
 * `firstFit` is the baseline: a plain first-fit in CycleCloud's order (nodearray order, then bucket
 * order), each demand whole into the first bucket with room, a new group per colocated demand,
 * honouring the same bucket, nodearray and cluster limits. It ignores capacity-failure backoff.
 */
import type { Plan, PlanInput } from '../../src/planning/types.ts';
import type { BucketSnapshot, NodearraySnapshot } from '../../src/snapshots/model.ts';
import type { Demand } from '../../src/ledger/schemas.ts';

const low = (s: string): string => s.toLowerCase();

function fits(d: Demand, na: NodearraySnapshot, b: BucketSnapshot): string | null {
  if (d.nodearray !== undefined && d.nodearray !== na.name) return `nodearray ${na.name} is not ${d.nodearray}`;
  if (d.nodearrays !== undefined && !d.nodearrays.includes(na.name)) return `nodearray ${na.name} is not in ${d.nodearrays.join(',')}`;
  if (d.machineTypes !== undefined && !d.machineTypes.some((m) => low(m) === low(b.machineType))) return `${b.machineType} is not in machineTypes`;
  if (d.minVcpus !== undefined && b.vcpuCount < d.minVcpus) return `${b.vcpuCount} vCPUs < ${d.minVcpus}`;
  if (d.minMemoryGB !== undefined && b.memoryGB < d.minMemoryGB) return `${b.memoryGB} GB < ${d.minMemoryGB}`;
  if (d.minGpus !== undefined && (b.gpuCount ?? 0) < d.minGpus) return `${b.gpuCount ?? 0} GPUs < ${d.minGpus}`;
  if (d.infiniband === true && !b.infiniband) return `${b.machineType} has no InfiniBand`;
  return null;
}

const colocated = (d: Demand): boolean => d.colocated === true || d.placementGroupId !== undefined;

/** In-flight nodes per bucket (`na/bucketId`) and per group (`na/bucketId/group`), as the reference counts them. */
function inFlightOf(input: PlanInput): { bucket: Map<string, number>; group: Map<string, number> } {
  const bucket = new Map<string, number>();
  const group = new Map<string, number>();
  for (const f of input.inFlight) {
    const na = input.snapshot.nodearrays.find((n) => n.name === f.nodearray);
    const same = na?.buckets.filter((b) => low(b.machineType) === low(f.machineType)) ?? [];
    const b = same.find((x) => x.valid) ?? same[0];
    if (!na || !b) continue;
    const key = `${na.name}/${b.bucketId}`;
    bucket.set(key, (bucket.get(key) ?? 0) + f.count);
    if (f.placementGroupId !== null) group.set(`${key}/${f.placementGroupId}`, (group.get(`${key}/${f.placementGroupId}`) ?? 0) + f.count);
  }
  return { bucket, group };
}

export function checkPlan(input: PlanInput, p: Plan): string[] {
  const errors: string[] = [];
  const flights = inFlightOf(input);
  const perBucket = new Map<string, number>();
  const perGroup = new Map<string, number>();
  const find = (nodearray: string, bucketId: string) => {
    const na = input.snapshot.nodearrays.find((n) => n.name === nodearray);
    return { na, b: na?.buckets.find((x) => x.bucketId === bucketId) };
  };
  for (const [i, s] of p.sets.entries()) {
    const { na, b } = find(s.nodearray, s.bucketId);
    if (!na || !b) {
      errors.push(`set ${i}: no bucket ${s.nodearray}/${s.bucketId}`);
      continue;
    }
    if (!b.valid) errors.push(`set ${i}: bucket ${s.nodearray}/${b.machineType} is invalid`);
    if (low(s.set.definition?.machineType ?? '') !== low(b.machineType)) errors.push(`set ${i}: definition ${s.set.definition?.machineType} is not the bucket's ${b.machineType}`);
    if (s.set.count !== s.count || s.demands.reduce((a, d) => a + d.count, 0) !== s.count) errors.push(`set ${i}: counts do not add up`);
    const key = `${na.name}/${b.bucketId}`;
    perBucket.set(key, (perBucket.get(key) ?? 0) + s.count);
    if (s.placementGroupId !== null) perGroup.set(`${key}/${s.placementGroupId}`, (perGroup.get(`${key}/${s.placementGroupId}`) ?? 0) + s.count);
    for (const part of s.demands) {
      const d = input.request.demands[part.index];
      if (!d) {
        errors.push(`set ${i}: unknown demand ${part.index}`);
        continue;
      }
      const why = fits(d, na, b);
      if (why) errors.push(`set ${i}: demand ${part.index}'s nodes do not meet its selectors: ${why}`);
      if (colocated(d) && s.placementGroupId === null) errors.push(`set ${i}: colocated demand ${part.index} has nodes outside a placement group`);
      if (!colocated(d) && s.placementGroupId !== null) errors.push(`set ${i}: loose demand ${part.index} is in a placement group`);
    }
  }
  for (const na of input.snapshot.nodearrays) {
    for (const b of na.buckets) {
      const key = `${na.name}/${b.bucketId}`;
      const planned = perBucket.get(key) ?? 0;
      const flying = flights.bucket.get(key) ?? 0;
      if (planned > Math.max(0, b.availableCount - flying)) errors.push(`bucket ${key}: ${planned} planned > availableCount ${b.availableCount} less ${flying} in flight`);
      if (planned > Math.max(0, b.maxCount - b.activeCount - flying))
        errors.push(`bucket ${key}: ${planned} planned > maxCount ${b.maxCount} less ${b.activeCount} active and ${flying} in flight`);
    }
  }
  for (const [gkey, planned] of perGroup) {
    const [naName, bucketId, ...rest] = gkey.split('/');
    const name = rest.join('/');
    const { b } = find(naName!, bucketId!);
    const active = b?.placementGroups.find((g) => g.name === name)?.activeCount ?? 0;
    const flying = flights.group.get(gkey) ?? 0;
    if (b && active + flying + planned > b.maxPlacementGroupSize)
      errors.push(`group ${gkey}: ${active} active + ${flying} in flight + ${planned} planned > maxPlacementGroupSize ${b.maxPlacementGroupSize}`);
  }
  // Per demand: what the sets hold for it.
  const held = new Map<number, { count: number; buckets: Set<string>; groups: Set<string | null> }>();
  for (const s of p.sets) {
    for (const part of s.demands) {
      const h = held.get(part.index) ?? { count: 0, buckets: new Set(), groups: new Set() };
      h.count += part.count;
      h.buckets.add(`${s.nodearray}/${s.bucketId}`);
      h.groups.add(s.placementGroupId);
      held.set(part.index, h);
    }
  }
  for (const dp of p.demands) {
    const d = input.request.demands[dp.index]!;
    const h = held.get(dp.index);
    const count = h?.count ?? 0;
    if (count !== dp.planned) errors.push(`demand ${dp.index}: sets hold ${count}, the plan says ${dp.planned}`);
    if (count > d.count) errors.push(`demand ${dp.index}: ${count} placed > count ${d.count}`);
    if (count === 0 || !h) continue;
    if (colocated(d) || d.allOrNothing === true) {
      if (count !== dp.requested) errors.push(`demand ${dp.index}: all or nothing, but ${count} of ${dp.requested} placed`);
      if (h.buckets.size !== 1) errors.push(`demand ${dp.index}: all or nothing, but spread over ${h.buckets.size} buckets`);
    }
    if (colocated(d) && h.groups.size !== 1) errors.push(`demand ${dp.index}: colocated, but in ${h.groups.size} placement groups`);
  }
  return errors;
}

/** Nodes placed and distinct placement groups (bucket + name) used by a plan. */
export function planStats(p: Plan): { nodes: number; groups: number; demandsPlaced: number } {
  const groups = new Set(p.sets.filter((s) => s.placementGroupId !== null).map((s) => `${s.nodearray}/${s.bucketId}/${s.placementGroupId}`));
  return { nodes: p.sets.reduce((a, s) => a + s.count, 0), groups: groups.size, demandsPlaced: p.demands.filter((d) => d.status === 'placed').length };
}

/** The plain first-fit baseline; see the module comment. */
export function firstFit(input: PlanInput): { nodes: number; groups: number } {
  const { snapshot } = input;
  const flights = inFlightOf(input);
  const used = new Map<string, number>();
  const naUsed = new Map<string, { count: number; cores: number }>();
  let clusterCount = 0;
  let clusterCores = 0;
  const vcpuOf = (nodearray: string, machineType: string): number =>
    snapshot.nodearrays.find((n) => n.name === nodearray)?.buckets.find((b) => low(b.machineType) === low(machineType))?.vcpuCount ?? 0;
  for (const na of snapshot.nodearrays) {
    const u = { count: 0, cores: 0 };
    for (const b of na.buckets) {
      u.count += b.activeCount;
      u.cores += b.activeCount * b.vcpuCount;
    }
    naUsed.set(na.name, u);
    clusterCount += u.count;
    clusterCores += u.cores;
  }
  for (const f of input.inFlight) {
    const u = naUsed.get(f.nodearray);
    const cores = f.count * vcpuOf(f.nodearray, f.machineType);
    if (u) {
      u.count += f.count;
      u.cores += cores;
    }
    clusterCount += f.count;
    clusterCores += cores;
  }
  let nodes = 0;
  let groups = 0;
  input.request.demands.forEach((d, index) => {
    const need = input.remaining ? (input.remaining[index] ?? 0) : d.count;
    if (need <= 0) return;
    // A demand naming a nodearray the cluster does not have is refused as a whole.
    const named = d.nodearray !== undefined ? [d.nodearray] : (d.nodearrays ?? []);
    if (named.some((n) => !snapshot.nodearrays.some((na) => na.name === n))) return;
    for (const na of snapshot.nodearrays) {
      for (const b of na.buckets) {
        if (!b.valid || fits(d, na, b) !== null) continue;
        if (colocated(d) && b.maxPlacementGroupSize < need) continue;
        const key = `${na.name}/${b.bucketId}`;
        const u = naUsed.get(na.name)!;
        const vcpu = Math.max(1, b.vcpuCount);
        const room = Math.min(
          b.availableCount - (flights.bucket.get(key) ?? 0) - (used.get(key) ?? 0),
          na.maxCount - u.count,
          Math.floor((na.maxCoreCount - u.cores) / vcpu),
          snapshot.maxCount - clusterCount,
          Math.floor((snapshot.maxCoreCount - clusterCores) / vcpu),
        );
        if (room < need) continue;
        used.set(key, (used.get(key) ?? 0) + need);
        u.count += need;
        u.cores += need * b.vcpuCount;
        clusterCount += need;
        clusterCores += need * b.vcpuCount;
        nodes += need;
        if (colocated(d)) groups++;
        return;
      }
    }
  });
  return { nodes, groups };
}
