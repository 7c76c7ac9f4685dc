/**
 * docs/api.md §2 is the one table of settings. Its rows are checked against the code that reads
 * them: every setting read is in exactly one row, every row names a setting the code reads, and
 * each plain default in the table is the one `loadConfig` applies when the setting is unset.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/platform/config.ts';

const root = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Files that read settings: the parser, the local host, storage and the trigger registrations. */
const READERS = ['src/platform/config.ts', 'src/platform/storage.ts', 'src/platform/credentials.ts', 'src/local/main.ts', 'src/app/triggers.ts'];
/** Read but not settings: an error code, and the mode `npm start` sets for its own process. */
const NOT_SETTINGS = new Set(['CONFIG_INVALID', 'SCALER_MODE']);

function settingsRead(): Set<string> {
  const names = new Set<string>();
  for (const file of READERS) {
    const text = read(file);
    const literals = file.endsWith('config.ts') ? text.matchAll(/'([A-Z][A-Z0-9_]{3,}|AzureWebJobsStorage(?:__\w+)?)'/g) : [];
    for (const [, name] of literals) names.add(name!);
    for (const [, name] of text.matchAll(/\benv(?:\.|\[')([A-Z][A-Za-z0-9_]+)/g)) names.add(name!);
  }
  for (const n of NOT_SETTINGS) names.delete(n);
  return names;
}

interface Row {
  names: string[];
  meaning: string;
  defaults: string[];
}

function settingsTable(): Row[] {
  const doc = read('docs/api.md');
  const section = doc.slice(doc.indexOf('## 2. Settings'), doc.indexOf('## 3.'));
  const lines = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| setting ') && !l.startsWith('| ---'));
  return lines.map((line) => {
    const [names, meaning, defaults] = line
      .slice(2, -2)
      .split(' | ')
      .map((c) => c.trim());
    return {
      names: [...names!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!),
      meaning: meaning!,
      defaults: /^(`[^`]*`)(, `[^`]*`)*$/.test(defaults!) ? [...defaults!.matchAll(/`([^`]*)`/g)].map((m) => m[1]!) : [],
    };
  });
}

describe('docs/api.md §2, the one table of settings', () => {
  const table = settingsTable();
  const documented = table.flatMap((r) => r.names);

  it('names each setting the code reads exactly once (identity-based storage parts in the storage row)', () => {
    const storageRow = table.find((r) => r.names[0] === 'AzureWebJobsStorage')!;
    const missing = [...settingsRead()].filter((name) => {
      const part = /^AzureWebJobsStorage(__\w+)$/.exec(name)?.[1];
      return part ? !storageRow.meaning.includes(`\`${part}\``) && !storageRow.meaning.includes(name) : !documented.includes(name);
    });
    expect(missing).toEqual([]);
    expect(documented.filter((n, i) => documented.indexOf(n) !== i)).toEqual([]);
    expect(table.length).toBeGreaterThan(30);
  });

  it('documents no setting that nothing reads', () => {
    const known = settingsRead();
    // NO_COLOR is read through Node's own colour check (and ccscale's); the storage parts in storage.ts.
    const sources = [...READERS, 'src/cli/main.ts'].map(read).join('\n');
    const unread = table.flatMap((r) => r.names).filter((n) => !known.has(n) && !sources.includes(n));
    expect(unread).toEqual([]);
  });

  it('gives, for each plain default, the value loadConfig applies when the setting is unset', () => {
    const unset = loadConfig({}, { mode: 'local' });
    const checked: string[] = [];
    for (const row of table) {
      if (row.defaults.length !== row.names.length) continue; // "local: …", "unset", "generated": not a value
      row.names.forEach((name, i) => {
        if (!settingsRead().has(name) || !read('src/platform/config.ts').includes(`'${name}'`)) return;
        const value = row.defaults[i]!.replace(/\\\//g, '/');
        expect(loadConfig({ [name]: value }, { mode: 'local' }), `${name}=${value}`).toEqual(unset);
        checked.push(name);
      });
    }
    // Enough of the table is plain values for this to mean something (and a changed default fails it).
    expect(checked.length).toBeGreaterThan(20);
  });

  it('is the only copy: the README and config.ts point to it instead of repeating it', () => {
    for (const file of ['README.md', 'src/platform/config.ts']) {
      expect(read(file), file).not.toMatch(/\| setting \| meaning \| default \|/);
      expect(read(file), file).toMatch(/docs\/api\.md( |#2-settings| §2)/);
    }
    // The README stays a ten-minute read: the rest lives in docs/, once.
    expect(read('README.md').split('\n').length).toBeLessThanOrEqual(250);
  });
});
