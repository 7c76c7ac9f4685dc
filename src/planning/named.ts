/**
 * Named demands: a demand with `names` asks for exactly those CycleCloud node names (Slurm's power
 * saving resumes `hpc-3`, not "some node of hpc"). The planner decides buckets, placement groups and
 * how many nodes fit; this pass then gives each placed node its name and splits every set into runs
 * of consecutive indices, because CycleCloud names a set's nodes `nameFormat % (nameOffset + i)`
 * (reference/cyclecloud-rest-api.md §3.5, §5.6).
 *
 * Names are handed out in list order, so the nodes created so far are always a prefix of `names`
 * and the planner's `remaining` count says which names are left (the last `remaining` of them).
 *
 * Pure, like the planner.
 */
import { plan as basePlan } from './planner.ts';
import type { DemandPlan, Plan, PlanInput, PlannedSet } from './types.ts';

/** `<prefix><digits>` with no zero padding and no `%`: what `nameFormat "<prefix>%d"` can produce. */
const NAMEABLE = /^((?:[^%]*[^%\d])?)([1-9]\d*|0)$/;

interface NamedNode {
  prefix: string;
  index: number;
}

function nameable(name: string): NamedNode | null {
  const m = NAMEABLE.exec(name);
  if (!m || !Number.isSafeInteger(Number(m[2]))) return null;
  return { prefix: m[1]!, index: Number(m[2]) };
}

/** Why a demand's names cannot be created as given, or null when they can. */
export function namesProblem(names: readonly string[], count: number): string | null {
  if (names.length !== count) return `names lists ${names.length} names but count is ${count}`;
  if (new Set(names).size !== names.length) return 'names has duplicates';
  const bad = names.filter((n) => nameable(n) === null);
  if (bad.length > 0) {
    return `CycleCloud's nameFormat "<prefix>%d" cannot produce ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''} (a name must end in a number without leading zeros and contain no %)`;
  }
  return null;
}

/**
 * The planner, then names: sets holding named demands are split into `nameFormat`/`nameOffset`
 * runs. A named demand whose names cannot be produced is rejected with the reason.
 */
export function planNamed(input: PlanInput, plan: (input: PlanInput) => Plan = basePlan): Plan {
  const named = input.request.demands.map((d) => d.names);
  if (named.every((n) => n === undefined)) return plan(input);

  const problems = new Map<number, string>();
  named.forEach((names, i) => {
    if (names === undefined) return;
    const problem = namesProblem(names, input.request.demands[i]!.count);
    if (problem) problems.set(i, problem);
  });
  // Demands that cannot be named are taken out before planning, so they take no capacity.
  const remaining: Record<number, number> = {};
  input.request.demands.forEach((d, i) => {
    remaining[i] = problems.has(i) ? 0 : input.remaining === undefined ? d.count : (input.remaining[i] ?? 0);
  });
  const result = plan({ ...input, remaining });

  // Next name per demand: the names before it were created by earlier generations.
  const cursor = new Map<number, number>();
  named.forEach((names, i) => {
    if (names) cursor.set(i, names.length - (remaining[i] ?? 0));
  });
  const sets: PlannedSet[] = [];
  const firstNewIndex: number[] = [];
  for (const ps of result.sets) {
    firstNewIndex.push(sets.length);
    if (!ps.demands.some((d) => named[d.index] !== undefined)) {
      sets.push(ps);
      continue;
    }
    // Each demand chunk of the set either is unnamed (kept together) or becomes runs of names.
    for (const chunk of ps.demands) {
      const names = named[chunk.index];
      if (names === undefined) {
        sets.push({ ...ps, count: chunk.count, demands: [chunk], set: { ...ps.set, count: chunk.count } });
        continue;
      }
      const start = cursor.get(chunk.index)!;
      const mine = names.slice(start, start + chunk.count).map((n) => nameable(n)!);
      cursor.set(chunk.index, start + chunk.count);
      for (let k = 0; k < mine.length; ) {
        const first = mine[k]!;
        let len = 1;
        while (k + len < mine.length && mine[k + len]!.prefix === first.prefix && mine[k + len]!.index === first.index + len) len++;
        sets.push({
          ...ps,
          count: len,
          demands: [{ index: chunk.index, count: len }],
          set: { ...ps.set, count: len, nameFormat: `${first.prefix}%d`, nameOffset: first.index },
        });
        k += len;
      }
    }
  }
  const demands: DemandPlan[] = result.demands.map((d) => {
    const problem = problems.get(d.index);
    if (problem) {
      return {
        index: d.index,
        requested: input.request.demands[d.index]!.count,
        planned: 0,
        placements: [],
        status: 'rejected',
        code: null,
        boundBy: 'node names',
        reason: `demand ${d.index}: ${problem}`,
        considered: [],
        nodearray: null,
        bucketId: null,
        choice: null,
      };
    }
    return { ...d, placements: d.placements.map((p) => ({ ...p, setIndex: firstNewIndex[p.setIndex] ?? p.setIndex })) };
  });
  return { sets, demands };
}
