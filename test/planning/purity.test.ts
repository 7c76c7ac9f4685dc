import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(import.meta.dirname, '../../src/planning');
const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));

describe('src/planning stays pure', () => {
  it.each(files)('%s imports only types from outside planning, and no clock or randomness', (file) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const imports = [...text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)].map((m) => ({ typeOnly: Boolean(m[1]), from: m[2]! }));
    // The pattern still sees this file's imports (a file may have none)
    expect(imports.length).toBe((text.match(/^import\s/gm) ?? []).length);
    for (const i of imports) {
      if (i.from.startsWith('./')) continue;
      expect({ file, ...i }).toMatchObject({ typeOnly: true });
    }
    expect(text).not.toMatch(/Date\.now\(|Math\.random\(|new Date\(\)|performance\.now\(/);
  });
});
