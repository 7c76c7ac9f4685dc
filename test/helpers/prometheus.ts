/**
 * Reads Prometheus text with a real parser: the official Prometheus Python client's
 * `text_string_to_metric_families` (Debian's python3-prometheus-client, which .ci/run installs),
 * which raises on text Prometheus would refuse. Samples are then summed by name and labels.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const PYTHON = '/usr/bin/python3';
const PARSER = '/usr/lib/python3/dist-packages/prometheus_client/parser.py';

/** Why the parser cannot run here (for a skip line), or null when it can. */
export function prometheusParserMissing(): string | null {
  return existsSync(PYTHON) && existsSync(PARSER) ? null : 'the Prometheus text parser (Debian package python3-prometheus-client) is not installed';
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  name: string;
  type: string;
  samples: Sample[];
}

const SCRIPT = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)} for s in f.samples]})
print(json.dumps(out))
`;

/** Parses `text`; throws with the parser's own message when the text is not valid. */
export function parsePrometheus(text: string): Family[] {
  return JSON.parse(execFileSync(PYTHON, ['-c', SCRIPT], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })) as Family[];
}

const matches = (labels: Record<string, string>, want: Record<string, string>) => Object.entries(want).every(([k, v]) => labels[k] === v);

/** The sum of the samples named `sample` whose labels include `labels` (0 when none). */
export function sampleSum(families: Family[], sample: string, labels: Record<string, string> = {}): number {
  return families
    .flatMap((f) => f.samples)
    .filter((s) => s.name === sample && matches(s.labels, labels))
    .reduce((n, s) => n + s.value, 0);
}

/** A histogram's count and sum over the label sets that include `labels`. */
export function histogram(families: Family[], name: string, labels: Record<string, string> = {}): { count: number; sum: number } {
  return { count: sampleSum(families, `${name}_count`, labels), sum: Number(sampleSum(families, `${name}_sum`, labels).toFixed(9)) };
}

/** Every label name any sample of `families` carries. */
export function labelKeys(families: Family[]): Set<string> {
  return new Set(families.flatMap((f) => f.samples.flatMap((s) => Object.keys(s.labels))));
}
