/**
 * The dependency direction of STYLE.md, enforced: Azure SDKs are constructed only in
 * `src/platform/` (others may import their types), the network client only in `src/cyclecloud/`,
 * `functions/` only wires, and the pure cores (planning, the tracker's state machine, the record
 * rules) import nothing that does I/O. Between the middle layers the direction is one way:
 * `src/ledger/` (the record, its rules, its storage) imports neither intake (`src/requests/`) nor
 * tracking; tracking may import the ledger but not intake; intake may import the ledger and only
 * the tracker's public types (`src/tracking/types.ts`); no folder reaches itself again at run time.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
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

/** The repository path an import resolves to (`src/ledger/record.ts`), or null for a package. */
const target = (i: Import): string | null => (i.from.startsWith('.') ? relative(root, resolve(root, dirname(i.file), i.from)) : null);
const folderOf = (path: string): string | null => /^src\/([^/]+)\//.exec(path)?.[1] ?? null;

/** Folder → folders it imports at run time (type-only imports are erased and do not count). */
function runtimeFolderGraph(imports: Import[]): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const i of imports) {
    const to = target(i);
    const a = folderOf(i.file);
    const b = to ? folderOf(to) : null;
    if (i.typeOnly || !a || !b || a === b) continue;
    graph.set(a, (graph.get(a) ?? new Set()).add(b));
  }
  return graph;
}

/** Every cycle's folders, as `a -> b -> a` (empty when the graph is acyclic). */
function folderCycles(graph: Map<string, Set<string>>): string[] {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): void => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'open') {
      cycles.push([...path.slice(path.indexOf(n)), n].join(' -> '));
      return;
    }
    state.set(n, 'open');
    path.push(n);
    for (const m of graph.get(n) ?? []) visit(m);
    path.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) visit(n);
  return cycles;
}

const all = [...tsFiles(join(root, 'src')), ...tsFiles(join(root, 'functions'))].flatMap(importsOf);
const AZURE_SDKS = ['@azure/data-tables', '@azure/storage-queue', '@azure/identity', '@azure/keyvault-secrets'];

describe('architecture', () => {
  it('sees the imports it checks (the patterns still match)', () => {
    expect(all.length).toBeGreaterThan(100);
    expect(all.some((i) => i.from === '@azure/data-tables' && !i.typeOnly)).toBe(true);
  });

  it('constructs Azure SDK clients only in src/platform (and the local host, which is a platform)', () => {
    const offenders = all.filter((i) => AZURE_SDKS.includes(i.from) && !i.typeOnly && !i.file.startsWith('src/platform/') && !i.file.startsWith('src/local/'));
    expect(offenders).toEqual([]);
  });

  it('speaks HTTP to CycleCloud only from src/cyclecloud', () => {
    const offenders = all.filter((i) => i.from === 'undici' && !i.typeOnly && !i.file.startsWith('src/cyclecloud/'));
    expect(offenders).toEqual([]);
  });

  it('keeps the pure cores free of I/O imports', () => {
    const pure = (f: string) => f.startsWith('src/planning/') || f === 'src/tracking/machine.ts' || f === 'src/ledger/record.ts';
    const io = (from: string) =>
      from.startsWith('@azure/') || from === 'undici' || /^node:(fs|http|https|net|child_process)/.test(from) || /platform\/(storage|credentials|config)\.ts$/.test(from);
    const offenders = all.filter((i) => pure(i.file) && !i.typeOnly && io(i.from));
    expect(offenders).toEqual([]);
  });

  it('keeps the ledger free of intake and tracking', () => {
    const offenders = all.filter((i) => i.file.startsWith('src/ledger/') && /^src\/(requests|tracking)\//.test(target(i) ?? ''));
    expect(all.some((i) => i.file.startsWith('src/ledger/'))).toBe(true);
    expect(offenders).toEqual([]);
  });

  it('lets tracking use the ledger but not intake', () => {
    const offenders = all.filter((i) => i.file.startsWith('src/tracking/') && (target(i) ?? '').startsWith('src/requests/'));
    expect(offenders).toEqual([]);
  });

  it('lets intake use only the public types of the tracker', () => {
    const offenders = all.filter((i) => i.file.startsWith('src/requests/') && (target(i) ?? '').startsWith('src/tracking/') && target(i) !== 'src/tracking/types.ts');
    expect(offenders).toEqual([]);
  });

  it('sends every terminate, shutdown and start through the one terminate path (src/tracking/terminate.ts)', () => {
    const senders = tsFiles(join(root, 'src'))
      .filter((f) => /\.(terminateNodes|shutdownNodes|startNodes)\(/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(root, f))
      .filter((f) => !f.startsWith('src/cyclecloud/') && !f.startsWith('src/simulator/'));
    expect(senders).toEqual(['src/tracking/terminate.ts']);
  });

  it('has no run-time cycle between folders of src/', () => {
    const graph = runtimeFolderGraph(all);
    expect(graph.get('requests')?.has('ledger')).toBe(true); // the check sees edges
    expect(folderCycles(graph)).toEqual([]);
  });

  it('finds a cycle when there is one (the check can fail)', () => {
    const fake = (file: string, from: string): Import => ({ file, from, typeOnly: false });
    const cyclic = runtimeFolderGraph([fake('src/a/x.ts', '../b/y.ts'), fake('src/b/y.ts', '../c/z.ts'), fake('src/c/z.ts', '../a/x.ts')]);
    expect(folderCycles(cyclic)).toEqual(['a -> b -> c -> a']);
    expect(
      folderCycles(
        runtimeFolderGraph([
          { file: 'src/a/x.ts', from: '../b/y.ts', typeOnly: false },
          { file: 'src/b/y.ts', from: '../a/x.ts', typeOnly: true },
        ]),
      ),
    ).toEqual([]);
  });

  it('keeps functions/ to registrations: no control flow beyond a loop over routes', () => {
    for (const file of tsFiles(join(root, 'functions'))) {
      const text = readFileSync(file, 'utf8');
      expect(text, relative(root, file)).not.toMatch(/\bif\s*\(|\bswitch\s*\(|\btry\s*\{|\bwhile\s*\(/);
    }
  });

  it('tests that build services on a fresh storage prefix give them a scale queue of their own too', () => {
    // The scale queue is not prefixed (CONTRACT); test files share one azurite, so a pump on the
    // default queue takes another file's messages (a CI flake of test/requests/lifecycle.test.ts).
    // test/helpers/scaler-env.ts gives both.
    const shared = tsFiles(join(root, 'test'))
      .filter((f) => {
        const text = readFileSync(f, 'utf8');
        return text.includes('createServices(') && /STORAGE_PREFIX: (?!')/.test(text) && !text.includes('SCALE_REQUESTS_QUEUE');
      })
      .map((f) => relative(root, f));
    expect(shared).toEqual([]);
  });
});
