/**
 * The dependency direction of STYLE.md, enforced: Azure SDKs are constructed only in
 * `src/platform/` (others may import their types), the network client only in `src/cyclecloud/`,
 * `functions/` only wires, and the pure cores (planning, the tracker's state machine, the record
 * rules) import nothing that does I/O.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

interface Import {
  file: string;
  from: string;
  typeOnly: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const rel = relative(root, file);
  const statics = [...text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)].map((m) => ({ file: rel, from: m[2]!, typeOnly: Boolean(m[1]) }));
  const dynamics = [...text.matchAll(/import\(\s*'([^']+)'\s*\)/g)].map((m) => ({ file: rel, from: m[1]!, typeOnly: false }));
  return [...statics, ...dynamics];
}

const all = [...tsFiles(join(root, 'src')), ...tsFiles(join(root, 'functions'))].flatMap(importsOf);
const AZURE_SDKS = ['@azure/data-tables', '@azure/storage-queue', '@azure/identity', '@azure/keyvault-secrets'];

describe('architecture', () => {
  it('sees the imports it checks (the patterns still match)', () => {
    expect(all.length).toBeGreaterThan(100);
    expect(all.some((i) => i.from === '@azure/data-tables' && !i.typeOnly)).toBe(true);
  });

  it('constructs Azure SDK clients only in src/platform (and the local host, which is a platform)', () => {
    const offenders = all.filter(
      (i) => AZURE_SDKS.includes(i.from) && !i.typeOnly && !i.file.startsWith('src/platform/') && !i.file.startsWith('src/local/'),
    );
    expect(offenders).toEqual([]);
  });

  it('speaks HTTP to CycleCloud only from src/cyclecloud', () => {
    const offenders = all.filter((i) => i.from === 'undici' && !i.typeOnly && !i.file.startsWith('src/cyclecloud/'));
    expect(offenders).toEqual([]);
  });

  it('keeps the pure cores free of I/O imports', () => {
    const pure = (f: string) => f.startsWith('src/planning/') || f === 'src/tracking/machine.ts' || f === 'src/ledger/record.ts';
    const io = (from: string) => from.startsWith('@azure/') || from === 'undici' || /^node:(fs|http|https|net|child_process)/.test(from) || /platform\/(storage|credentials|config)\.ts$/.test(from);
    const offenders = all.filter((i) => pure(i.file) && !i.typeOnly && io(i.from));
    expect(offenders).toEqual([]);
  });

  it('keeps functions/ to registrations: no control flow beyond a loop over routes', () => {
    for (const file of tsFiles(join(root, 'functions'))) {
      const text = readFileSync(file, 'utf8');
      expect(text, relative(root, file)).not.toMatch(/\bif\s*\(|\bswitch\s*\(|\btry\s*\{|\bwhile\s*\(/);
    }
  });
});
