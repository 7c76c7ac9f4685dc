/** Parsing + validating a 10,000-node cluster status vs `JSON.parse` alone (goal ratio ≤ 2), and compacting it. */
import { ClusterStatus } from '../../src/cyclecloud/schemas.ts';
import { toSnapshot } from '../../src/snapshots/snapshot.ts';
import { bigStatusBody } from '../snapshots/wire.ts';
import { measure, measurePair } from './measure.ts';

export async function run(): Promise<object[]> {
  const text = JSON.stringify(bigStatusBody(200, 5, 10_000));
  const { a: jsonOnly, b: validated } = measurePair(
    () => JSON.parse(text),
    () => ClusterStatus.parse(JSON.parse(text)),
    { runs: 21, warmup: 4 },
  );
  const status = ClusterStatus.parse(JSON.parse(text));
  const compact = await measure(() => toSnapshot('big', status, 0), { runs: 21 });
  return [
    {
      bench: 'snapshot_parse_10000_nodes',
      ...validated,
      json_parse_median_ms: jsonOnly.median_ms,
      ratio: Math.round((validated.median_ms / jsonOnly.median_ms) * 100) / 100,
      goal_ratio: 2,
      body_bytes: text.length,
    },
    { bench: 'snapshot_compact_10000_nodes', ...compact },
  ];
}
